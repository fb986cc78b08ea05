"""Fusion baselines: RBF-SVMs and logistic regression with speaker-grouped inner model choice,
early concatenation and decision-level averaging.

>>> Z = early_concat({"audio": A, "face": V})                      # (n, d_a + d_v)
>>> svm = fit_svm(Z_train, y_train, groups=speakers, C=[1, 10], gamma=["scale"])  # doctest: +SKIP
>>> p = decision_average([p_audio, p_face])                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["early_concat", "decision_average", "fit_svm", "fit_logistic", "svm_proba", "Fitted"]


def early_concat(X: Mapping[str, np.ndarray], modalities: Sequence[str] | None = None
                 ) -> np.ndarray:
    """Concatenate the modalities' feature matrices (in ``modalities`` order, default all)."""
    names = list(modalities or X)
    if not names:
        raise ValueError("early_concat needs at least one modality")
    return np.concatenate([np.asarray(X[m], np.float32) for m in names], axis=1)


def decision_average(probas: Sequence[np.ndarray], *, weights: Sequence[float] | None = None,
                     present: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """(Weighted) mean of class probabilities over models; with ``present`` (one bool vector
    per model), a model whose modality is absent for a row is left out of that row's mean."""
    P = np.stack([np.asarray(p, np.float64) for p in probas])            # (K, n, C)
    w = np.ones(len(P)) if weights is None else np.asarray(weights, np.float64)
    W = np.broadcast_to(w[:, None], P.shape[:2]).copy()
    if present is not None:
        W *= np.stack([np.asarray(p, bool) for p in present])
    total = W.sum(0, keepdims=True)
    W = np.where(total > 0, W / np.where(total > 0, total, 1), 1.0 / len(P))
    return (W[..., None] * P).sum(0)


class Fitted:
    """A fitted classifier with the chosen ``params`` and the inner-CV ``cv_scores``."""

    def __init__(self, model: Any, params: dict[str, Any], cv_scores: dict[str, float]) -> None:
        self.model, self.params, self.cv_scores = model, params, cv_scores

    def predict_proba(self, X: np.ndarray, n_classes: int | None = None) -> np.ndarray:
        return svm_proba(self.model, X, n_classes=n_classes)


def _gamma(value: Any, X: np.ndarray) -> float | str:
    """``"scale"`` or a number; ``"scale*2"`` style multiples of sklearn's ``scale``."""
    if isinstance(value, str) and value.startswith("scale*"):
        return float(value.split("*", 1)[1]) / (X.shape[1] * X.var())
    return value


def _as_list(v: Any) -> list[Any]:
    return [v] if isinstance(v, (str, int, float)) else list(v)


def _choose(make: Any, grid: list[dict[str, Any]], X: np.ndarray, y: np.ndarray,
            groups: Sequence[Any] | None, n_splits: int) -> tuple[dict[str, Any], dict[str, float]]:
    """The grid point with the best speaker-grouped inner-CV unweighted accuracy."""
    from sklearn.model_selection import GroupKFold, cross_val_score

    if len(grid) == 1:
        return grid[0], {}
    if groups is None:
        raise ValueError("choosing hyper-parameters needs the speakers (groups) of the rows")
    cv = list(GroupKFold(n_splits=min(n_splits, len(set(groups)))).split(X, y, groups))
    scores: dict[str, float] = {}
    best, best_score = grid[0], -1.0
    for point in grid:
        s = float(np.mean(cross_val_score(make(**point), X, y, cv=cv,
                                          scoring="balanced_accuracy")))
        scores[",".join(f"{k}={v}" for k, v in point.items())] = s
        if s > best_score:
            best, best_score = point, s
    return best, scores


def fit_svm(X: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
            C: float | Sequence[float] = 1.0, gamma: Any = "scale", n_splits: int = 5,
            probability: bool = False, seed: int = 0) -> Fitted:
    """RBF-SVM with balanced class weights (as the quoted baselines). With several ``C`` or
    ``gamma`` values the pair with the best speaker-grouped inner-CV unweighted accuracy over
    ``groups`` (the training fold's speakers) is chosen, then refitted on all of ``X``;
    ``probability`` adds Platt scaling on speaker-grouped folds."""
    from sklearn.model_selection import GroupKFold
    from sklearn.svm import SVC

    X = np.asarray(X, np.float64)

    def make(C: float, gamma: Any) -> Any:
        return SVC(C=C, gamma=_gamma(gamma, X), class_weight="balanced")

    grid = [{"C": c, "gamma": g} for c in _as_list(C) for g in _as_list(gamma)]
    best, scores = _choose(make, grid, X, y, groups, n_splits)
    model: Any = make(**best)
    if probability:
        from sklearn.calibration import CalibratedClassifierCV

        cv_cal: Any = 5
        if groups is not None and len(set(groups)) >= 2:
            cv_cal = list(GroupKFold(n_splits=min(n_splits, len(set(groups)))).split(X, y, groups))
        model = CalibratedClassifierCV(model, method="sigmoid", cv=cv_cal, ensemble=False)
    model.fit(X, y)
    return Fitted(model, best, scores)


def fit_logistic(X: np.ndarray, y: np.ndarray, *, groups: Sequence[Any] | None = None,
                 C: float | Sequence[float] = 0.01, n_splits: int = 5, seed: int = 0) -> Fitted:
    """L2-regularised multinomial logistic regression with balanced class weights; several
    ``C`` values are chosen between by speaker-grouped inner CV as in :func:`fit_svm`."""
    from sklearn.linear_model import LogisticRegression

    X = np.asarray(X, np.float64)

    def make(C: float) -> Any:
        return LogisticRegression(C=C, max_iter=3000, class_weight="balanced", random_state=seed)

    best, scores = _choose(make, [{"C": c} for c in _as_list(C)], X, y, groups, n_splits)
    return Fitted(make(**best).fit(X, y), best, scores)


def svm_proba(model: Any, X: np.ndarray, *, n_classes: int | None = None) -> np.ndarray:
    """Class probabilities of a fitted classifier: ``predict_proba`` where it has one
    (logistic regression, a calibrated SVM), else, for a plain SVM, a softmax of the
    one-vs-rest decision values (its argmax is the SVM's prediction).

    With ``n_classes``, columns follow class indices ``0..n_classes-1`` (classes the SVM never
    saw get probability 0)."""
    X = np.asarray(X, np.float64)
    if not hasattr(model, "support_"):
        p = model.predict_proba(X)   # a calibrated SVM
    else:
        d = model.decision_function(X)
        if d.ndim == 1:  # two classes
            d = np.stack([-d, d], axis=1)
        e = np.exp(d - d.max(1, keepdims=True))
        p = e / e.sum(1, keepdims=True)
    if n_classes is None:
        return p
    out = np.zeros((len(X), n_classes))
    out[:, np.asarray(model.classes_, int)] = p
    return out
