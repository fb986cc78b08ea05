"""Nested exploration: SmolLM2-135M hidden states as sentence features for cross-corpus text.

The prompted forward pass of :func:`emofuse.features.llm_text.llm_text_features` ("Text:
{text}\\nThe emotion expressed is") gives, per hidden state of ``LAYERS``, the mean over the
prompt's tokens and the last token's state (the one that predicts the emotion word). Items: every
dev and test split, and per corpus at most ``TRAIN_CAP`` train items (stratified, seed 0).

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_llm_explore.py extract
    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_text_llm_explore.py explore

``explore`` prints only nested figures, as xcorpus_text_transfer_explore.py does: the inner
transfers train split of A -> dev split of B (macro-F1 over the classes the cell and both
corpora share) and, per held-out cell T, the mean of the two transfers between the other
corpora. No test split is read and no dev split of a cell's own held-out corpus counts for it.
Features are standardised with the statistics of the fitting corpus' train rows.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from emofuse.evaluate.metrics import classification_metrics
from emofuse.labels import BASIC7
from emofuse.recipes import xcorpus_text as xt

CORPORA = ["dair", "meld", "goemotions"]
LAYERS = (6, 12, 18, 24, -1)
TRAIN_CAP = 4000
MODEL_ID = "smollm2-135m-instruct-q4_1"


def chosen_rows(table: xt.TextTable) -> dict[tuple[str, str], np.ndarray]:
    from sklearn.model_selection import train_test_split

    out = {}
    for part in ("val", "train", "test"):
        for c in CORPORA:
            rows = table.rows([c], part)
            if part == "train" and len(rows) > TRAIN_CAP:
                rows, _ = train_test_split(rows, train_size=TRAIN_CAP, random_state=0,
                                           stratify=table.labels[rows])
                rows = np.sort(rows)
            out[c, part] = rows
    return out


def features(table: xt.TextTable, parts=("train", "val", "test")) -> dict:
    import torch

    from emofuse.augment.text import _load_smollm2, smollm2_gguf
    from emofuse.features.llm_text import llm_text_features

    torch.set_num_threads(1)
    tok, model = _load_smollm2(str(smollm2_gguf()))
    out = {}
    for (c, part), rows in chosen_rows(table).items():   # dev splits first
        if part not in parts:
            continue
        t0 = time.perf_counter()
        out[c, part] = (rows, llm_text_features(
            [table.texts[i] for i in rows], tokenizer=tok, model=model, model_id=MODEL_ID,
            labels=list(BASIC7), layers=LAYERS, batch_size=32))
        print(f"  {c} {part}: {len(rows)} items in {time.perf_counter() - t0:.0f} s", flush=True)
    return out


def _inner(table: xt.TextTable, t: str, a: str, b: str) -> list[str]:
    return [c for c in BASIC7 if c in table.labels_of([t], "val")
            and c in table.labels_of([a], "train") and c in table.labels_of([b], "val")]


def explore(table: xt.TextTable, feats: dict) -> None:
    from sklearn.linear_model import LogisticRegression

    d = feats["dair", "train"][1]["last"].shape[1] // len(LAYERS)
    sets = {}
    for i, layer in enumerate(LAYERS):
        sets[f"last{layer}"] = ("last", [i])
        sets[f"mean{layer}"] = ("mean", [i])
    sets["last12+18"] = ("last", [1, 2])
    sets["mean12+18"] = ("mean", [1, 2])
    sets["scores"] = ("scores", None)
    if "--combined" in sys.argv:   # MiniLM (+ prototypes) with the last layer's last token
        sets = {"minilm": ("minilm", None), "minilm+last-1": ("minilm+last", [4]),
                "minilm+last24": ("minilm+last", [3]),
                "minilm+proto+last-1": ("minilm+proto+last", [4])}

    def mat(c, part, kind, idx):
        from emofuse.features.text_prototypes import prototype_features

        rows, f = feats[c, part]
        blocks = []
        if kind.startswith("minilm"):
            blocks.append(table.x[rows])
        if "proto" in kind:
            blocks.append(prototype_features(table.x[rows], labels=list(BASIC7),
                                             pooling="meanmax"))
        if kind == "scores":
            blocks.append(f["scores"])
        elif kind.endswith("last") or kind.endswith("mean"):
            k = kind.rsplit("+", 1)[-1]
            blocks.append(np.hstack([f[k][:, d * i:d * (i + 1)] for i in idx]))
        return np.hstack(blocks)

    inner = [(t, a, b) for t in CORPORA for a in CORPORA for b in CORPORA if len({t, a, b}) == 3]
    print("set | C cb | " + " ".join(f"-{t[:4]}:{a[:4]}>{b[:4]}" for t, a, b in inner)
          + " | per cell " + " ".join(f"-{t[:4]}" for t in CORPORA) + " | mean", flush=True)
    for name, (kind, idx) in sets.items():
        for cb in (0.75,):
            for C in ((0.01, 0.1, 1.0) if kind == "scores" else (0.0003, 0.001, 0.01)
                      if kind.startswith("minilm") else (0.001, 0.01, 0.1)):
                t0 = time.perf_counter()
                f = {}
                for t, a, b in inner:
                    classes = _inner(table, t, a, b)
                    ra, rb = feats[a, "train"][0], feats[b, "val"][0]
                    ma = np.isin(table.labels[ra], classes)
                    mb = np.isin(table.labels[rb], classes)
                    xa, xb = mat(a, "train", kind, idx)[ma], mat(b, "val", kind, idx)[mb]
                    mu, sd = xa.mean(0), xa.std(0) + 1e-6
                    ya = np.array([classes.index(v) for v in table.labels[ra][ma]])
                    yb = np.array([classes.index(v) for v in table.labels[rb][mb]])
                    cnt = np.bincount(ya, minlength=len(classes)).astype(float)
                    w = (cnt[ya] ** -cb)
                    w *= len(w) / w.sum()
                    clf = LogisticRegression(C=C, max_iter=300)
                    clf.fit((xa - mu) / sd, ya, sample_weight=w)
                    p = clf.predict((xb - mu) / sd)
                    f[t, a, b] = classification_metrics(yb, p, classes=classes)["macro_f1"]
                cells = [np.mean([v for k, v in f.items() if k[0] == t]) for t in CORPORA]
                print(f"{name} | C{C:g} cb{cb:g} | " + " ".join(f"{100 * f[k]:14.2f}" for k in inner)
                      + " | " + " ".join(f"{100 * v:5.2f}" for v in cells)
                      + f" | {100 * np.mean(cells):5.2f} ({time.perf_counter() - t0:.0f} s)",
                      flush=True)


def main() -> None:
    table, _ = xt.load_table(CORPORA, log=print)
    if sys.argv[1] == "extract":
        features(table)
    else:
        explore(table, features(table, parts=("train", "val")))


if __name__ == "__main__":
    main()
