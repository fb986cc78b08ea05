"""Classical classifiers over utterance feature vectors (eGeMAPS, fused hand-crafted vectors).

>>> clf = build_model("svm", C=10.0, gamma="scale")          # doctest: +SKIP
>>> clf.fit(X, y); proba = clf.predict_proba(X_test)         # doctest: +SKIP

``svm`` is a standardiser + RBF support-vector machine whose one-vs-rest scores are turned
into probabilities by a softmax (keeping the SVM's own decisions); ``logreg`` a standardiser +
multinomial logistic regression (both weight classes by inverse frequency by default);
``lda`` a standardiser + linear discriminant analysis with a shrunk covariance (equal class
priors by default), the strongest single model on the fused vector in the speaker-independent
RAVDESS folds (validation UA 58.3 against 50.3 for the RBF-SVM).

:func:`grid_search` picks hyper-parameters by speaker-grouped cross-validation inside the
training data (balanced accuracy); :func:`to_tensors` / :func:`from_tensors` turn a fitted
model into plain arrays + JSON and back, so classical models are saved as safetensors like the
neural ones (no pickle; only an allow-list of scikit-learn classes can be rebuilt).
"""

from __future__ import annotations

import importlib
import itertools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.svm import SVC

from ..errors import ConfigError, DataError
from . import register_model

__all__ = ["svm", "logreg", "lda", "SoftmaxSVC", "BalancedLDA", "ColumnSelect", "CLASSICAL_MODELS", "grid_search", "to_tensors",
           "from_tensors"]

#: Registered names of the classical models.
CLASSICAL_MODELS = ("svm", "logreg", "lda")


class SoftmaxSVC(ClassifierMixin, BaseEstimator):
    """An SVM whose probabilities are the softmax of its one-vs-rest scores (times
    ``temperature``), so that their argmax is the SVM's own decision (sigmoid or isotonic
    calibration shifts it: 46.7 instead of 49.0 UA with eGeMAPS on RAVDESS)."""

    def __init__(self, C: float = 1.0, gamma: float | str = "scale", kernel: str = "rbf",
                 class_weight: str | None = "balanced", temperature: float = 1.0) -> None:
        self.C, self.gamma, self.kernel = C, gamma, kernel
        self.class_weight, self.temperature = class_weight, temperature

    def fit(self, X: np.ndarray, y: np.ndarray) -> SoftmaxSVC:
        self.svc_ = SVC(C=self.C, gamma=self.gamma, kernel=self.kernel,
                        class_weight=self.class_weight, decision_function_shape="ovr").fit(X, y)
        self.classes_ = self.svc_.classes_
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        d = self.svc_.decision_function(X)
        return np.stack([-d, d], axis=1) if d.ndim == 1 else d

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.temperature * self.decision_function(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]


@register_model("svm")
def svm(*, C: float = 1.0, gamma: float | str = "scale", kernel: str = "rbf",
        class_weight: str | None = "balanced", temperature: float = 1.0,
        columns: Sequence[Sequence[int]] | None = None,
        n_classes: int | None = None, dim: int | None = None) -> Any:
    """Standardiser + SVM (``kernel``, ``C``, ``gamma``); probabilities are the softmax of the
    one-vs-rest scores times ``temperature``. ``columns``: keep only these ``[start, stop]``
    column ranges of the feature vector.

    ``n_classes`` and ``dim`` are accepted (and ignored) so every model is built alike."""
    return _pipeline(columns, SoftmaxSVC(C=C, gamma=gamma, kernel=kernel,
                                         class_weight=class_weight, temperature=temperature))


@register_model("logreg")
def logreg(*, C: float = 1.0, class_weight: str | None = "balanced", max_iter: int = 3000,
           columns: Sequence[Sequence[int]] | None = None,
           n_classes: int | None = None, dim: int | None = None) -> Any:
    """Standardiser + multinomial logistic regression (L2, inverse regularisation ``C``);
    ``columns``: keep only these ``[start, stop]`` column ranges of the feature vector."""
    from sklearn.linear_model import LogisticRegression

    return _pipeline(columns, LogisticRegression(C=C, class_weight=class_weight,
                                                 max_iter=max_iter))


class ColumnSelect(TransformerMixin, BaseEstimator):
    """Keeps the feature columns in ``ranges`` (``[[start, stop], ...]``, stop exclusive)."""

    def __init__(self, ranges: Sequence[Sequence[int]] = ()) -> None:
        self.ranges = ranges

    def fit(self, X: np.ndarray, y: Any = None) -> ColumnSelect:
        self.idx_ = np.concatenate([np.arange(int(a), min(int(b), X.shape[1]))
                                    for a, b in self.ranges]).astype(np.int64)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X)[:, self.idx_]


def _pipeline(columns: Sequence[Sequence[int]] | None, clf: Any) -> Any:
    """Optional :class:`ColumnSelect` + standardiser + ``clf``."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if columns:
        return make_pipeline(ColumnSelect([list(c) for c in columns]), StandardScaler(), clf)
    return make_pipeline(StandardScaler(), clf)


class BalancedLDA(ClassifierMixin, BaseEstimator):
    """Linear discriminant analysis (least-squares solver, shrunk covariance) whose class priors
    are equal (``balanced=True``) or the training frequencies.

    ``solver="lsqr"`` is scikit-learn's (the shrunk covariance solved by ``scipy.linalg.lstsq``,
    an SVD); ``"cholesky"`` solves the same system by a Cholesky factorisation (the shrunk
    covariance is positive definite for a float ``shrinkage`` > 0): the same discriminant up to
    rounding, 5-10 times faster on 1000-3000 columns (the Whisper vectors)."""

    def __init__(self, shrinkage: float | str = 0.5, balanced: bool = True,
                 solver: str = "lsqr") -> None:
        self.shrinkage, self.balanced, self.solver = shrinkage, balanced, solver

    def fit(self, X: np.ndarray, y: np.ndarray) -> BalancedLDA:
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        k = len(np.unique(y))
        priors = np.full(k, 1.0 / k) if self.balanced else None
        if getattr(self, "solver", "lsqr") == "cholesky":
            self.lda_ = _cholesky_lda(X, y, float(self.shrinkage), priors)
        else:
            self.lda_ = LinearDiscriminantAnalysis(
                solver="lsqr", shrinkage=self.shrinkage, priors=priors).fit(X, y)
        # prediction uses coef_ and intercept_ only: the (d, d) covariance would make a saved
        # model 20 MB for the 1609-dim fused vector
        self.lda_.covariance_ = None
        self.classes_ = self.lda_.classes_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.lda_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.lda_.predict(X)


def _cholesky_lda(X: np.ndarray, y: np.ndarray, shrinkage: float,
                  priors: np.ndarray | None) -> Any:
    """A fitted scikit-learn ``LinearDiscriminantAnalysis`` (``lsqr`` with a float
    ``shrinkage``) computed with a Cholesky solve instead of ``lstsq``: class means, the
    prior-weighted average of the classes' shrunk covariances
    (``(1 - a) S + a tr(S) / d I``), ``coef = cov^-1 means``."""
    from scipy.linalg import cho_factor, cho_solve
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    if not 0.0 < shrinkage <= 1.0:
        raise ValueError(f"the cholesky solver needs a shrinkage in (0, 1], got {shrinkage}")
    X = np.asarray(X, np.float64)
    classes, yi = np.unique(np.asarray(y), return_inverse=True)
    counts = np.bincount(yi, minlength=len(classes))
    priors = counts / counts.sum() if priors is None else np.asarray(priors, np.float64)
    d = X.shape[1]
    means = np.stack([X[yi == c].mean(0) for c in range(len(classes))])
    cov = np.zeros((d, d))
    for c in range(len(classes)):
        xc = X[yi == c] - means[c]
        s = xc.T @ xc / len(xc)
        mu = np.trace(s) / d
        s *= 1.0 - shrinkage
        s.flat[:: d + 1] += shrinkage * mu
        cov += priors[c] * s
    coef = cho_solve(cho_factor(cov, check_finite=False), means.T, check_finite=False).T
    lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=shrinkage, priors=priors)
    lda.classes_, lda.priors_, lda.means_ = classes, priors, means
    lda.coef_ = coef
    lda.intercept_ = -0.5 * np.einsum("ij,ij->i", means, coef) + np.log(priors)
    lda.n_features_in_ = d
    lda._max_components = min(len(classes) - 1, d)
    return lda


@register_model("lda")
def lda(*, shrinkage: float | str = 0.5, balanced: bool = True, solver: str = "lsqr",
        columns: Sequence[Sequence[int]] | None = None,
        n_classes: int | None = None, dim: int | None = None) -> Any:
    """Standardiser + linear discriminant analysis with the covariance shrunk towards a scaled
    identity by ``shrinkage`` (in [0, 1], or ``"auto"`` for Ledoit-Wolf); ``balanced``: equal
    class priors (the counterpart of the other models' class weights); ``solver``: ``lsqr``
    (scikit-learn's) or ``cholesky`` (same model, faster; float ``shrinkage`` > 0 only);
    ``columns``: keep only these ``[start, stop]`` column ranges of the feature vector."""
    if solver not in ("lsqr", "cholesky"):
        raise ConfigError(f"lda: solver is 'lsqr' or 'cholesky', got {solver!r}")
    if solver == "cholesky" and (isinstance(shrinkage, str) or not 0 < float(shrinkage) <= 1):
        raise ConfigError("lda: the cholesky solver needs a numeric shrinkage in (0, 1]")
    return _pipeline(columns, BalancedLDA(shrinkage=shrinkage, balanced=balanced,
                                          solver=solver))


def grid_search(name: str, X: np.ndarray, y: np.ndarray, groups: Sequence[Any], *,
                grid: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None,
                n_splits: int = 5) -> tuple[dict[str, Any], float]:
    """Best ``params`` for model ``name`` by speaker-grouped cross-validation on (X, y).

    Parameters
    ----------
    X, y, groups
        Training data only (never a test fold); ``groups`` are the speakers.
    grid
        Parameter name -> candidate values; every combination is tried.
    base
        Fixed parameters added to every candidate.
    n_splits
        Folds (at most the number of speakers; leave-one-speaker-out when fewer).

    Returns
    -------
    params, score
        The best combination (with ``base``) and its mean balanced accuracy.
    """
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    from . import build_model

    groups = np.asarray(groups)
    k = min(n_splits, len(set(groups.tolist())))
    if k < 2:
        raise DataError(None, "grid search needs training data from at least two speakers")
    folds = list(GroupKFold(n_splits=k).split(X, y, groups))
    keys = list(grid)
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    for values in itertools.product(*(grid[key] for key in keys)):
        params = {**(base or {}), **dict(zip(keys, values))}
        scores = []
        for tr, va in folds:
            clf = build_model(name, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf.fit(X[tr], y[tr])
            scores.append(balanced_accuracy_score(y[va], clf.predict(X[va])))
        score = float(np.mean(scores))
        if score > best[0]:
            best = (score, params)
    return best[1], best[0]


# --------------------------------------------------------------------------------------------
# Arrays + JSON instead of pickle

_ALLOWED = {
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.svm._classes.SVC",
    "sklearn.linear_model._logistic.LogisticRegression",
    "emofuse.models.classical.SoftmaxSVC",
    "emofuse.models.classical.BalancedLDA",
    "emofuse.models.classical.ColumnSelect",
    "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
}


def to_tensors(model: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A fitted model as ``(arrays, tree)``: named numeric arrays and a JSON tree that
    :func:`from_tensors` rebuilds it from. Raises ``TypeError`` for unsupported content."""
    arrays: dict[str, np.ndarray] = {}

    def enc(v: Any) -> Any:
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject or v.dtype.kind not in "biuf":
                raise TypeError(f"cannot store an array of dtype {v.dtype}")
            key = f"a{len(arrays)}"
            arrays[key] = np.ascontiguousarray(v)
            return {"t": "arr", "k": key}
        if isinstance(v, np.generic):
            return {"t": "np", "d": v.dtype.str, "v": v.item()}
        if v is None or isinstance(v, (bool, int, float, str)):
            return {"t": "v", "v": v}
        if isinstance(v, (list, tuple)):
            return {"t": type(v).__name__, "i": [enc(x) for x in v]}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise TypeError("only dicts with string keys can be stored")
            return {"t": "dict", "i": {k: enc(x) for k, x in v.items()}}
        path = f"{type(v).__module__}.{type(v).__qualname__}"
        if path not in _ALLOWED:
            raise TypeError(f"cannot store an object of type {path}")
        return {"t": "obj", "c": path, "a": {k: enc(x) for k, x in vars(v).items()}}

    return arrays, enc(model)


def from_tensors(arrays: Mapping[str, Any], tree: Mapping[str, Any]) -> Any:
    """Rebuild a model stored by :func:`to_tensors` (only allow-listed scikit-learn classes).

    Raises
    ------
    DataError
        When the tree names a class outside the allow-list or an array that is missing.
    """

    def dec(n: Mapping[str, Any]) -> Any:
        t = n["t"]
        if t == "arr":
            if n["k"] not in arrays:
                raise DataError(None, f"classical model: array {n['k']!r} missing")
            a = arrays[n["k"]]
            return np.asarray(a.numpy() if hasattr(a, "numpy") else a)
        if t == "np":
            return np.dtype(n["d"]).type(n["v"])
        if t == "v":
            return n["v"]
        if t in ("list", "tuple"):
            items = [dec(x) for x in n["i"]]
            return items if t == "list" else tuple(items)
        if t == "dict":
            return {k: dec(x) for k, x in n["i"].items()}
        if t == "obj":
            path = n["c"]
            if path not in _ALLOWED:
                raise DataError(None, f"classical model: class {path!r} is not allowed")
            module, _, name = path.rpartition(".")
            cls = getattr(importlib.import_module(module), name)
            obj = cls.__new__(cls)
            obj.__dict__.update({k: dec(x) for k, x in n["a"].items()})
            return obj
        raise DataError(None, f"classical model: unknown node type {t!r}")

    return dec(tree)
