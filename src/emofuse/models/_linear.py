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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = ["LinearProba", "fast_linear"]

_SCALER = "sklearn.preprocessing._data.StandardScaler"
_SELECT = "emofuse.models.classical.ColumnSelect"
_LDA = "sklearn.discriminant_analysis.LinearDiscriminantAnalysis"
_BLDA = "emofuse.models.classical.BalancedLDA"
_PIPELINE = "sklearn.pipeline.Pipeline"


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


class _Node(BaseModel):
    """One node of a stored scikit-learn tree, as :func:`emofuse.models.classical.to_tensors`
    writes it (``t``: ``obj``, ``arr``, ``v``, ``np``, ``list``, ``tuple`` or ``dict``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    #: the node's kind
    t: str
    #: ``obj``: the class path
    c: str | None = None
    #: ``obj``: its attributes
    a: dict[str, _Node] = Field(default_factory=dict)
    #: ``list`` / ``tuple``: the items (``dict``: by key)
    i: list[_Node] | dict[str, _Node] = Field(default_factory=list)
    #: ``arr``: the array's key among the stored arrays
    k: str | None = None
    #: ``v`` / ``np``: the value
    v: Any = None

    def attr(self, name: str) -> _Node | None:
        """The attribute ``name`` of an ``obj`` node (``None`` when absent)."""
        return self.a[name] if name in self.a else None

    def pair(self) -> _Node | None:
        """The second item of a two-item ``list``/``tuple`` node (a pipeline step's
        estimator), else ``None``."""
        if self.t in ("tuple", "list") and isinstance(self.i, list) and len(self.i) == 2:
            return self.i[1]
        return None


def _arr(arrays: Mapping[str, Any], node: _Node | None) -> np.ndarray | None:
    if node is None or node.t != "arr" or node.k not in arrays:
        return None
    a = arrays[node.k]
    return np.asarray(a.numpy() if hasattr(a, "numpy") else a)


def _flag(node: _Node | None, default: bool = True) -> bool:
    if node is None or node.t != "v":
        return default
    return bool(node.v) if "v" in node.model_fields_set else default


def fast_linear(arrays: Mapping[str, Any], tree: Mapping[str, Any]) -> LinearProba | None:
    """A :class:`LinearProba` for a stored ``[ColumnSelect] + StandardScaler + LDA`` pipeline
    (as written by :func:`emofuse.models.classical.to_tensors`), else ``None``."""
    try:
        root = _Node.model_validate(tree)
    except ValidationError:
        return None
    if root.t != "obj" or root.c != _PIPELINE:
        return None
    steps_node = root.attr("steps")
    steps = steps_node.i if steps_node is not None and isinstance(steps_node.i, list) else []
    objs = [o for o in (s.pair() for s in steps) if o is not None]
    if len(objs) != len(steps) or any(o.t != "obj" for o in objs):
        return None
    idx = mean = scale = None
    for o in objs[:-1]:
        if o.c == _SELECT and idx is None and mean is None:
            idx = _arr(arrays, o.attr("idx_"))
            if idx is None:
                return None
        elif o.c == _SCALER and mean is None:
            with_mean, with_std = _flag(o.attr("with_mean")), _flag(o.attr("with_std"))
            mean = _arr(arrays, o.attr("mean_")) if with_mean else None
            scale = _arr(arrays, o.attr("scale_")) if with_std else None
            if (mean is None and with_mean) or (scale is None and with_std):
                return None
        else:
            return None
    last: _Node | None = objs[-1] if objs else None
    if last is not None and last.c == _BLDA:
        last = last.attr("lda_")
    if last is None or last.t != "obj" or last.c != _LDA:
        return None
    coef, intercept = _arr(arrays, last.attr("coef_")), _arr(arrays, last.attr("intercept_"))
    classes = _arr(arrays, last.attr("classes_"))
    if coef is None or intercept is None or classes is None:
        return None
    return LinearProba(idx=idx, mean=mean, scale=scale, coef=coef.astype(np.float64),
                       intercept=intercept.astype(np.float64), classes=classes)
