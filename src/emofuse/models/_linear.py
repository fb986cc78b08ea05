"""Numpy-only prediction for stored linear pipelines (no scikit-learn import).

A bundled classical speech model is ``[ColumnSelect] + StandardScaler + LDA``; rebuilding it
through scikit-learn costs about a second of import time at every cold start. Prediction only
needs the stored arrays, so :func:`fast_linear` evaluates such a tree with numpy and returns
``None`` for anything else (the caller then rebuilds the scikit-learn objects).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["LinearProba", "fast_linear"]

_SCALER = "sklearn.preprocessing._data.StandardScaler"
_SELECT = "emofuse.models.classical.ColumnSelect"
_LDA = "sklearn.discriminant_analysis.LinearDiscriminantAnalysis"
_BLDA = "emofuse.models.classical.BalancedLDA"


class LinearProba:
    """``predict_proba`` of column selection, standardisation and a softmax-linear layer,
    identical to scikit-learn's ``LinearDiscriminantAnalysis.predict_proba``."""

    def __init__(self, *, idx: np.ndarray | None, mean: np.ndarray | None,
                 scale: np.ndarray | None, coef: np.ndarray, intercept: np.ndarray,
                 classes: np.ndarray) -> None:
        self.idx, self.mean, self.scale = idx, mean, scale
        self.coef, self.intercept, self.classes_ = coef, intercept, classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float64)
        if self.idx is not None:
            x = x[:, self.idx]
        if self.mean is not None:
            x = x - self.mean
        if self.scale is not None:
            x = x / self.scale
        z = x @ self.coef.T + self.intercept
        if z.shape[1] == 1:                                   # binary: one decision value
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.column_stack([1.0 - p, p])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def _arr(arrays: Mapping[str, Any], node: Mapping[str, Any] | None) -> np.ndarray | None:
    if not node or node.get("t") != "arr" or node.get("k") not in arrays:
        return None
    a = arrays[node["k"]]
    return np.asarray(a.numpy() if hasattr(a, "numpy") else a)


def _flag(node: Mapping[str, Any] | None, default: bool = True) -> bool:
    return bool(node.get("v", default)) if node and node.get("t") == "v" else default


def fast_linear(arrays: Mapping[str, Any], tree: Mapping[str, Any]) -> LinearProba | None:
    """A :class:`LinearProba` for a stored ``[ColumnSelect] + StandardScaler + LDA`` pipeline
    (as written by :func:`emofuse.models.classical.to_tensors`), else ``None``."""
    if tree.get("t") != "obj" or tree.get("c") != "sklearn.pipeline.Pipeline":
        return None
    steps = tree["a"].get("steps", {}).get("i", [])
    objs = [s["i"][1] for s in steps if s.get("t") in ("tuple", "list") and len(s["i"]) == 2]
    if len(objs) != len(steps) or any(o.get("t") != "obj" for o in objs):
        return None
    idx = mean = scale = None
    for o in objs[:-1]:
        a = o["a"]
        if o["c"] == _SELECT and idx is None and mean is None:
            idx = _arr(arrays, a.get("idx_"))
            if idx is None:
                return None
        elif o["c"] == _SCALER and mean is None:
            mean = _arr(arrays, a.get("mean_")) if _flag(a.get("with_mean")) else None
            scale = _arr(arrays, a.get("scale_")) if _flag(a.get("with_std")) else None
            if (mean is None and _flag(a.get("with_mean"))) or \
                    (scale is None and _flag(a.get("with_std"))):
                return None
        else:
            return None
    last = objs[-1]
    if last["c"] == _BLDA:
        last = last["a"].get("lda_", {})
    if last.get("t") != "obj" or last.get("c") != _LDA:
        return None
    a = last["a"]
    coef, intercept = _arr(arrays, a.get("coef_")), _arr(arrays, a.get("intercept_"))
    classes = _arr(arrays, a.get("classes_"))
    if coef is None or intercept is None or classes is None:
        return None
    return LinearProba(idx=idx, mean=mean, scale=scale, coef=coef.astype(np.float64),
                       intercept=intercept.astype(np.float64), classes=classes)
