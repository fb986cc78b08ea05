"""Nested leave-one-corpus-out exploration: Whisper-base states + eGeMAPS functionals.

Does appending the 88 eGeMAPS v02 functionals (openSMILE; prosody, voice quality, spectral
balance) to the Whisper layers of ``configs/xcorpus-speech.yaml`` carry emotion across corpora
better? Prints only nested (inner) figures, as docs/notes/xcorpus_explore.py does: for each
outer test corpus T, the mean UA over T's training corpora held out in turn. The outer test
corpora's own figures are never computed here.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_egemaps_explore.py SETTING [TAG]

Feature sets (the Table's columns used as a whole): ``w34`` / ``w345`` (Whisper layers 3+4 or
3+4+5, mean and std), ``ege`` (eGeMAPS alone), ``w34+ege<k>`` / ``w345+ege<k>`` (both, the
eGeMAPS block multiplied by k after standardisation, which lowers its L2 penalty by k^2).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

from emofuse.recipes.xcorpus import Candidate, Table, _ordered, load_table, select
from emofuse.recipes._xcorpus_data import BLOCK

CORPORA = ["ravdess", "savee", "ased", "nemo", "urdu"]
PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}


def tables() -> dict[str, Table]:
    w, _ = load_table(CORPORA, feature="whisper", params=PARAMS, log=None)
    e, _ = load_table(CORPORA, feature="egemaps", params={}, log=None)
    if w.ids != e.ids:
        raise SystemExit("whisper and egemaps tables differ in their items")
    cols = {k: w.x[:, BLOCK * (k - 1):BLOCK * k] for k in (3, 4, 5)}
    sets = {"w34": np.hstack([cols[3], cols[4]]), "w345": np.hstack([cols[3], cols[4], cols[5]]),
            "ege": e.x}
    out = {}
    for name, x in sets.items():
        out[name] = (x, None)
    for base in ("w34", "w345"):
        for k in (1, 3):
            out[f"{base}+ege{k}"] = (np.hstack([sets[base], e.x]), (sets[base].shape[1], k))
    tabs = {}
    for name, (x, blockw) in out.items():
        t = Table(x, w.labels, w.corpus, [s.split(":", 1)[1] for s in w.speaker], w.ids, None)
        t.blockw = blockw
        tabs[name] = t
    return tabs


def main() -> None:
    setting = sys.argv[1]
    tag = sys.argv[2] if len(sys.argv) > 2 else "run"
    names = sys.argv[3].split(",") if len(sys.argv) > 3 else None
    import emofuse.recipes.xcorpus as xc

    orig = xc.transform

    def transform(table, train, test, cand, setting, **kw):  # the eGeMAPS block weight
        a, b, spk = orig(table, train, test, cand, setting, **kw)
        if getattr(table, "blockw", None):
            start, k = table.blockw
            a, b = a.copy(), b.copy()
            a[:, start:] *= k
            b[:, start:] *= k
        return a, b, spk

    xc.transform = transform
    norms = ["global", "corpus"] if setting == "inductive" else ["global"]
    tabs = tables()
    rows = {}
    t0 = time.time()
    for name, t in tabs.items():
        if names and name not in names:
            continue
        Cs = [0.01, 0.1, 1.0] if name == "ege" else [0.001, 0.01]
        cands = [Candidate(norm=n, C=C) for n in norms for C in Cs]
        for T in CORPORA:
            train = [c for c in CORPORA if c != T]
            classes = _ordered(t.classes_of(train) & t.classes_of([T]))
            sel = select(t, train, classes, cands, setting)
            for c, m in zip(cands, sel["mean"]):
                rows.setdefault(f"{name} {c.short(setting)}", {})[T] = round(float(m), 4)
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    print(f"\n{setting} {tag}: nested LOCO UA (mean over held-out training corpora), per outer"
          " cell; avg4 = mean over ravdess, savee, ased, nemo")
    print(f"{'candidate':60s} " + " ".join(f"{o:>8s}" for o in CORPORA) + "     avg4")
    for name, r in rows.items():
        a4 = np.mean([r[o] for o in ["ravdess", "savee", "ased", "nemo"]])
        print(f"{name:60s} " + " ".join(f"{100 * r[o]:8.2f}" for o in CORPORA)
              + f" {100 * a4:8.2f}")
    Path(f"/tmp/xcorpus_egemaps_{setting}_{tag}.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
