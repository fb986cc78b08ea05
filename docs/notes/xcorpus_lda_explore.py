"""Nested leave-one-corpus-out probe: shrinkage LDA in place of the logistic regression.

Linear discriminant analysis (sklearn, lsqr solver, uniform class priors: the class-balanced
counterpart of the suite's weighting) on the candidates' standardised Whisper columns, with
shrinkage 'auto' (Ledoit-Wolf; written C 1 below) or a fixed shrinkage (C < 1: that value).
Prints only nested (inner) figures, as docs/notes/xcorpus_explore.py does: for each outer test
corpus T, the mean UA over T's training corpora held out in turn.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_lda_explore.py SETTING
"""
import sys
import time

import numpy as np
import sklearn.linear_model as lm
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402

from emofuse.recipes.xcorpus import _ordered, candidates, select  # noqa: E402


class LDA:
    """The logistic regression's interface over shrinkage LDA (``C``: the shrinkage)."""

    def __init__(self, C=1.0, **_):
        self.C = C

    def set_params(self, C=None, **_):
        self.C = self.C if C is None else C
        return self

    def fit(self, x, y, sample_weight=None):
        k = len(np.unique(y))
        shrink = "auto" if self.C >= 1 else self.C
        self.m = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrink,
                                            priors=np.full(k, 1 / k)).fit(x, y)
        return self

    def predict_proba(self, x):
        return self.m.predict_proba(x)


def main() -> None:
    setting = sys.argv[1]
    lm.LogisticRegression = LDA            # fit_predict imports it from here at call time
    grid = {"layers": [[3, 4], [3, 4, 5]], "C": [1.0, 0.5, 0.2]}
    if setting == "inductive":
        grid["norm"] = ["global", "corpus"]
    t = xe.table()
    cands = candidates(grid)
    rows: dict[str, dict[str, float]] = {}
    t0 = time.time()
    for T in xe.CORPORA:
        train = [c for c in xe.CORPORA if c != T]
        classes = _ordered(t.classes_of(train) & t.classes_of([T]))
        sel = select(t, train, classes, cands, setting)
        for c, m in zip(cands, sel["mean"]):
            rows.setdefault(c.short(setting), {})[T] = float(m)
        print(T, f"{time.time() - t0:.0f} s", flush=True)
    for name, r in rows.items():
        a4 = np.mean([r[o] for o in ["ravdess", "savee", "ased", "nemo"]])
        print(f"lda {setting} {name:50s} " + " ".join(f"{100 * r[o]:6.2f}" for o in xe.CORPORA)
              + f" | {100 * a4:6.2f}", flush=True)


if __name__ == "__main__":
    main()
