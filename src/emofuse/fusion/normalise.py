"""Feature normalisation for clip-level fusion: training-fold standardisation and per-speaker
normalisation.

* :class:`Standardiser` - z-scores from the rows it is fitted on (the training fold), applied
  unchanged to validation and test rows: the *inductive* setting.
* :func:`speaker_normalise` - each speaker's rows z-scored with that speaker's own statistics,
  computed over whatever rows of that speaker are given (unlabelled; for the test speakers this
  uses their test clips): the *speaker-normalised* (``_spknorm``) setting, transductive in the
  speaker's unlabelled data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Standardiser", "speaker_normalise"]

_EPS = 1e-6


class Standardiser:
    """Column z-scores fitted on ``X[rows where present]``; absent rows stay zero.

    Constant columns get a unit scale, so they map to zero rather than to infinities.
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray, present: np.ndarray | None = None) -> Standardiser:
        X = np.asarray(X, np.float64)
        rows = X if present is None else X[np.asarray(present, bool)]
        if len(rows) == 0:
            self.mean_, self.scale_ = np.zeros(X.shape[1]), np.ones(X.shape[1])
            return self
        self.mean_ = rows.mean(0)
        sd = rows.std(0)
        self.scale_ = np.where(sd > _EPS, sd, 1.0)
        return self

    def transform(self, X: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("Standardiser used before fit")
        out = ((np.asarray(X, np.float64) - self.mean_) / self.scale_).astype(np.float32)
        if present is not None:
            out[~np.asarray(present, bool)] = 0.0
        return out

    def fit_transform(self, X: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, present).transform(X, present)


def speaker_normalise(X: np.ndarray, speakers: Sequence[str], *,
                      present: np.ndarray | None = None, reference: np.ndarray | None = None,
                      reference_present: np.ndarray | None = None) -> np.ndarray:
    """Z-score each speaker's rows with the mean and standard deviation of that speaker's
    present rows (absent rows stay zero). A speaker with one row keeps a zero vector.

    With ``reference`` (the same rows under other conditions, e.g. the clean recordings of
    noisy ``X``) the statistics come from the speaker's present ``reference`` rows instead:
    enrolment statistics, so that a change of condition stays visible after normalisation."""
    X = np.asarray(X, np.float64)
    ok = np.ones(len(X), bool) if present is None else np.asarray(present, bool)
    ref = X if reference is None else np.asarray(reference, np.float64)
    if ref.shape != X.shape:
        raise ValueError(f"reference has shape {ref.shape}, X {X.shape}")
    ref_ok = ok if reference is None else (
        np.ones(len(ref), bool) if reference_present is None
        else np.asarray(reference_present, bool))
    spk = np.asarray(speakers, dtype=object)
    out = np.zeros_like(X)
    for s in dict.fromkeys(spk.tolist()):
        rows = (spk == s) & ok
        stat_rows = (spk == s) & ref_ok
        if not rows.any() or not stat_rows.any():
            continue
        mu, sd = ref[stat_rows].mean(0), ref[stat_rows].std(0)
        out[rows] = (X[rows] - mu) / np.where(sd > _EPS, sd, 1.0)
    return out.astype(np.float32)
