"""Nested leave-one-corpus-out probe: shrinkage LDA in place of the logistic regression.

Linear discriminant analysis (sklearn, lsqr solver, uniform class priors: the class-balanced
counterpart of the suite's weighting) on the candidates' standardised Whisper columns, with
shrinkage 'auto' (Ledoit-Wolf; written C 1 below) or a fixed shrinkage (C < 1: that value).
Prints only nested (inner) figures, as docs/notes/xcorpus_explore.py does: for each outer test
corpus T, the mean UA over T's training corpora held out in turn.

    OMP_NUM_THREADS=1 .venv/bin/python docs/notes/xcorpus_lda_explore.py SETTING
"""
import sys

import numpy as np
import sklearn.linear_model as lm
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

sys.path.insert(0, "docs/notes")
import xcorpus_explore as xe  # noqa: E402

from emofuse.recipes.xcorpus import candidates  # noqa: E402


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
    xe.print_rows(xe.nested_rows([("lda", t, None)], setting, candidates(grid)), setting)


if __name__ == "__main__":
    main()
