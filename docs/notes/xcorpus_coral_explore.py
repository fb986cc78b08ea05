"""Per-corpus whitening (CORAL-style, Sun et al. 2016) for the *folder* setting of
configs/xcorpus-speech.yaml, on inner folds only.

In the folder setting a corpus may be standardised with its own unlabelled statistics; this
goes one step further: each corpus (training corpora and the test folder alike) is standardised
and then whitened with its own regularised covariance, ``z (C + eps I)^(-1/2) sqrt(1 + eps)``,
so second-order differences between recording set-ups are removed too. The nested LOCO
selection of the suite is run on the whitened table (``select``, setting folder), which prints
only inner figures (mean UA over the training corpora held out in turn, per outer cell); the
outer test corpora's figures are never computed here.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_coral_explore.py
"""
import time

import numpy as np

from emofuse.recipes._xcorpus_data import BLOCK, Table
from emofuse.recipes._xcorpus_grid import Candidate
from emofuse.recipes.xcorpus import _ordered, load_table, select

CORPORA = ["ravdess", "savee", "ased", "nemo", "urdu"]
PARAMS = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}


def whitened(t: Table, layers, eps: float) -> Table:
    cols = np.concatenate([np.arange(BLOCK * t.layers.index(k), BLOCK * (t.layers.index(k) + 1))
                           for k in layers])
    x = t.x[:, cols].astype(np.float64)
    out = np.empty_like(x)
    for c in np.unique(t.corpus):
        i = np.flatnonzero(t.corpus == c)
        z = (x[i] - x[i].mean(0)) / np.sqrt(x[i].var(0) + 1e-8)
        cov = np.cov(z, rowvar=False)
        w, v = np.linalg.eigh(cov + eps * np.eye(len(cov)))
        out[i] = (z @ (v * (1 / np.sqrt(w))) @ v.T) * np.sqrt(1 + eps)
    spk = np.array([s.split(":", 1)[1] for s in t.speaker], dtype=object)
    return Table(out.astype(np.float32), t.labels, t.corpus, spk, t.ids, None)


def main() -> None:
    t, _ = load_table(CORPORA, feature="whisper", params=PARAMS)
    t.records = []
    rows = {}
    for layers in ([3, 4], [3, 4, 5]):
        for eps in (1.0, 0.1):
            t0 = time.time()
            w = whitened(t, layers, eps)
            cands = [Candidate(layers=None, C=c) for c in (0.001, 0.01)]
            for T in CORPORA:
                train = [c for c in CORPORA if c != T]
                classes = _ordered(w.classes_of(train) & w.classes_of([T]))
                sel = select(w, train, classes, cands, "folder")
                for c, m in zip(cands, sel["mean"]):
                    rows.setdefault(f"L{'+'.join(map(str, layers))} coral eps={eps} C={c.C:g}",
                                    {})[T] = 100 * float(m)
            print(f"L{layers} eps {eps}: {time.time() - t0:.0f} s", flush=True)
    print("\nfolder, per-corpus whitening: nested LOCO UA per outer cell; avg4 = mean over "
          "ravdess, savee, ased, nemo")
    print(f"{'candidate':40s} " + " ".join(f"{o:>8s}" for o in CORPORA) + "     avg4")
    for name, r in rows.items():
        a4 = np.mean([r[o] for o in CORPORA[:4]])
        print(f"{name:40s} " + " ".join(f"{r[o]:8.2f}" for o in CORPORA) + f" {a4:8.2f}")


if __name__ == "__main__":
    main()
