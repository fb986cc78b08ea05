"""Design exploration for xcorpus-text-transfer: nested figures only (no test split is read, and
no dev split of a cell's held-out corpus counts for that cell).

For each feature set and head, prints the single-corpus transfers train split of A -> dev split
of B (macro-F1 over the classes both share) -- the inner folds of the nested selection -- and,
per cell (T held out), the mean of the two transfers between the other corpora: what the
suite's nested selection maximises for that cell. Also the zero-shot prototype classifier (no
training: argmax of the mean template similarity) on each corpus' dev split.

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_transfer_explore.py \
        '[{"name": "minilm"}, {"name": "proto", "minilm": false, "prototypes": "all",
           "grid": {"head": "lr", "class_balance": 0.75, "C": [0.01, 0.1]}}]' \
        '{"head": "lr", "class_balance": 0.75, "C": [0.0001, 0.0003]}'
(first argument: feature sets, second: the default grid). ``--llm [N]``: the SmolLM2 zero-shot
probe on N (120) dev items per corpus instead. ``--std``: every feature set standardised per
(corpus, split) with that block's own statistics (transductive).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from emofuse.evaluate.metrics import classification_metrics
from emofuse.features.text_prototypes import prototype_features
from emofuse.labels import BASIC7
from emofuse.recipes import xcorpus_text as xt
from emofuse.recipes import xcorpus_text_transfer as xtt

CORPORA = ["dair", "meld", "goemotions"]


def _inner(table: xt.TextTable, t: str, a: str, b: str) -> list[str]:
    """Classes of the inner fold A -> B of the cell with T held out: the cell's classes (the
    label set of T, read from its dev split) shared by A's train and B's dev split."""
    return [c for c in BASIC7 if c in table.labels_of([t], "val")
            and c in table.labels_of([a], "train") and c in table.labels_of([b], "val")]


def zero_shot(table: xt.TextTable) -> None:
    print("zero-shot prototypes (argmax of mean template similarity), dev macro-F1 %:")
    for centre in (False, True):
        row = []
        for b in CORPORA:
            classes = [c for c in BASIC7 if c in table.labels_of([b], "val")]
            rows = table.rows([b], "val", classes)
            s = prototype_features(table.x[rows], labels=classes, pooling="mean", centre=centre)
            y = np.array([classes.index(v) for v in table.labels[rows]])
            f = classification_metrics(y, s.argmax(1), classes=classes)["macro_f1"]
            row.append(f"{b} {100 * f:.2f} ({len(classes)} cl.)")
        print(f"  centre={centre}: " + ", ".join(row))


def llm_probe(table: xt.TextTable, n: int = 120) -> None:
    """SmolLM2-135M zero-shot scorer (next-token log-probabilities of the emotion words) on a
    random sample of ``n`` dev items per corpus (seed 0), and its throughput."""
    import torch

    from emofuse.augment.text import _load_smollm2, smollm2_gguf
    from emofuse.features.llm_text import llm_text_features

    torch.set_num_threads(1)
    tok, model = _load_smollm2(str(smollm2_gguf()))
    rng = np.random.default_rng(0)
    for b in CORPORA:
        classes = [c for c in BASIC7 if c in table.labels_of([b], "val")]
        rows = rng.choice(table.rows([b], "val", classes), n, replace=False)
        t0 = time.perf_counter()
        f = llm_text_features([table.texts[i] for i in rows], tokenizer=tok, model=model,
                              model_id="smollm2-135m-instruct-q4_1", labels=classes)
        dt = time.perf_counter() - t0
        y = np.array([classes.index(v) for v in table.labels[rows]])
        m = classification_metrics(y, f["scores"].argmax(1), classes=classes)
        print(f"  smollm2 zero-shot {b} dev (n {n}, {len(classes)} cl.): macro-F1 "
              f"{100 * m['macro_f1']:.2f}, UA {100 * m['ua']:.2f} ({n / dt:.2f} sentences/s)",
              flush=True)


def standardise_blocks(x: np.ndarray, table: xt.TextTable) -> np.ndarray:
    """Each (corpus, split) block z-scored with its own statistics (transductive: a dev or test
    split with its own unlabelled statistics, as a user predicting a folder could)."""
    out = np.array(x, np.float32)
    for c in np.unique(table.corpus):
        for part in np.unique(table.part):
            m = (table.corpus == c) & (table.part == part)
            if m.any():
                out[m] = (x[m] - x[m].mean(0)) / np.maximum(x[m].std(0), 1e-6)
    return out


def main() -> None:
    std = "--std" in sys.argv
    if std:
        sys.argv.remove("--std")
    if sys.argv[1:2] == ["--llm"]:
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 120
        llm_probe(xt.load_table(CORPORA, log=print)[0], n=n)
        return
    sets = [xtt.FeatureSet.model_validate(s) for s in json.loads(sys.argv[1])] \
        if len(sys.argv) > 1 else [xtt.FeatureSet(name="minilm")]
    default = xt.candidates(json.loads(sys.argv[2]) if len(sys.argv) > 2 else {"head": "lr"})
    table, _ = xt.load_table(CORPORA, log=print)
    zero_shot(table)
    inner = [(t, a, b) for t in CORPORA for a in CORPORA for b in CORPORA
             if len({t, a, b}) == 3]
    print("\nfeature set | candidate | " + " ".join(f"-{t[:4]}:{a[:4]}>{b[:4]}"
                                                    for t, a, b in inner)
          + " | nested mean per held-out cell: " + " ".join(f"-{t[:4]}" for t in CORPORA)
          + " | mean")
    for fs in sets:
        x = xtt.feature_matrix(table.x, fs, labels=BASIC7)
        if std:
            x = standardise_blocks(x, table)
        ctx = xt.TextContext(xtt.dataclasses.replace(table, x=x))
        for cand in xtt._set_candidates(fs, default, quick=False):
            t0 = time.perf_counter()
            f = {}
            for t, a, b in inner:
                classes = _inner(table, t, a, b)
                head = xt.fit_on(ctx, [a], classes, cand)
                p, y = xt._scored(ctx, head, b, "val", classes)
                f[t, a, b] = classification_metrics(y, p.argmax(1), classes=classes)["macro_f1"]
            cells = [np.mean([v for k, v in f.items() if k[0] == t]) for t in CORPORA]
            print(f"{fs.name} | {cand.short()} | "
                  + " ".join(f"{100 * f[k]:14.2f}" for k in inner) + " | "
                  + " ".join(f"{100 * v:5.2f}" for v in cells) + f" | {100 * np.mean(cells):5.2f}"
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
