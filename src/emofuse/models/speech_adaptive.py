"""Linear speech heads over standardised encoder features that adapt to where the audio comes
from (numpy only; the bundled speech model v2, trained by the ``xcorpus-speech`` recipe).

Three ways to standardise a recording's feature vector before a class-balanced logistic
regression, each with its own head (columns, weights, temperature), as the recipe selected
them by leave-one-corpus-out validation inside its training corpora:

``inductive``
    Nothing known about the recording's source: the average of the training corpora's
    statistics (the default).
``folder``
    The unlabelled statistics of the recordings predicted together (one source, e.g. a
    folder of one corpus or one call centre).
``enrol``
    The unlabelled statistics of one speaker's other recordings.

Folder and enrol statistics are shrunk towards the pooled training statistics by
``prior`` pseudo-recordings, so a handful of recordings cannot blow the scale up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import DataError

__all__ = ["MODES", "AdaptiveHead", "AdaptiveLinear", "AdaptiveTree", "source_stats"]

MODES = ("inductive", "folder", "enrol")
_EPS = 1e-8


def source_stats(x: np.ndarray) -> np.ndarray:
    """``(3, d)`` unlabelled statistics of feature vectors ``x`` (``(n, d)``): the count (in
    every column), the mean and the variance."""
    x64 = np.asarray(x, np.float64)
    if x64.ndim != 2 or not len(x64):
        raise ValueError("source_stats needs a non-empty (n, d) array")
    return np.stack([np.full(x64.shape[1], float(len(x64))), x64.mean(0), x64.var(0)])


class _HeadMeta(BaseModel):
    """What the card stores of one head beside its arrays."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    temperature: float = 1.0
    pooled: bool = False


class AdaptiveTree(BaseModel):
    """The card's ``adaptive`` entry (:meth:`AdaptiveLinear.to_arrays`): the prior strength
    and each mode's head metadata."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    prior: float = 5.0
    heads: dict[str, _HeadMeta]


@dataclass
class AdaptiveHead:
    """One standardisation mode's classifier.

    columns
        Indices of the feature vector the head reads.
    mean, var
        Inductive standardisation (the average of the training groups' statistics).
    coef, intercept
        Logistic regression over the standardised columns, ``(C, d)`` and ``(C,)``.
    temperature
        Divides the logits (fitted on held-out training corpora).
    pooled
        ``True``: a source's own mean but the training scale ``var`` (``scale: pooled``).
    """

    columns: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float = 1.0
    pooled: bool = False


class AdaptiveLinear:
    """``predict_proba(x, mode=..., stats=...)`` over the heads of :data:`MODES` present.

    Parameters
    ----------
    labels
        Output classes, in order.
    heads
        Mode -> :class:`AdaptiveHead` (``inductive`` is required).
    prior_mean, prior_var
        Pooled statistics of every training vector (full width), the shrinkage target.
    prior
        Pseudo-recordings of the training statistics mixed into a source's statistics.
    """

    def __init__(self, labels: Sequence[str], heads: Mapping[str, AdaptiveHead], *,
                 prior_mean: np.ndarray, prior_var: np.ndarray, prior: float = 5.0) -> None:
        if "inductive" not in heads:
            raise ValueError("an adaptive speech model needs an 'inductive' head")
        if bad := sorted(set(heads) - set(MODES)):
            raise ValueError(f"unknown modes {bad}; known: {', '.join(MODES)}")
        self.labels = list(labels)
        self.heads = dict(heads)
        self.prior_mean = np.asarray(prior_mean, np.float64)
        self.prior_var = np.asarray(prior_var, np.float64)
        self.prior = float(prior)

    @property
    def modes(self) -> list[str]:
        return [m for m in MODES if m in self.heads]

    def standardise(self, x: np.ndarray, *, mode: str = "inductive",
                    stats: np.ndarray | None = None) -> np.ndarray:
        """The head's standardised columns of ``x`` (``stats``: :func:`source_stats` of the
        source, required for ``folder`` and ``enrol``)."""
        h = self.heads[mode]
        xs = np.asarray(x, np.float64)[:, h.columns]
        if mode == "inductive" or stats is None:
            return (xs - h.mean) / np.sqrt(h.var + _EPS)
        n = float(stats[0][0])
        k = self.prior
        pm, pv = self.prior_mean[h.columns], self.prior_var[h.columns]
        m = (n * stats[1][h.columns] + k * pm) / (n + k)
        if h.pooled:
            return (xs - m) / np.sqrt(h.var + _EPS)
        v = (n * stats[2][h.columns] + k * pv) / (n + k)
        return (xs - m) / np.sqrt(v + _EPS)

    def predict_proba(self, x: np.ndarray, *, mode: str = "inductive",
                      stats: np.ndarray | None = None) -> np.ndarray:
        """Calibrated class probabilities ``(n, C)``; a mode without its head, or without
        ``stats``, falls back to ``inductive``."""
        if mode not in self.heads or stats is None:
            mode = "inductive"
        h = self.heads[mode]
        z = self.standardise(x, mode=mode, stats=stats) @ h.coef.T + h.intercept
        z = z / h.temperature
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    # -- storage --------------------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays for safetensors and the JSON tree that goes into the card."""
        arrays: dict[str, np.ndarray] = {"prior.mean": self.prior_mean.astype(np.float32),
                                         "prior.var": self.prior_var.astype(np.float32)}
        tree: dict[str, Any] = {"prior": self.prior, "heads": {}}
        for mode, h in self.heads.items():
            for key in ("columns", "mean", "var", "coef", "intercept"):
                a = getattr(h, key)
                arrays[f"{mode}.{key}"] = np.ascontiguousarray(
                    a, np.int64 if key == "columns" else np.float32)
            tree["heads"][mode] = {"temperature": float(h.temperature), "pooled": h.pooled}
        return arrays, tree

    @classmethod
    def from_arrays(cls, labels: Sequence[str], arrays: Mapping[str, Any],
                    tree: Mapping[str, Any]) -> AdaptiveLinear:
        """Rebuild from :meth:`to_arrays` output (``KeyError`` when an array is missing,
        :class:`DataError` when the tree is malformed)."""
        def arr(key: str) -> np.ndarray:
            a = arrays[key]
            return np.asarray(a.numpy() if hasattr(a, "numpy") else a)

        try:
            meta_tree = AdaptiveTree.model_validate(tree)
        except ValidationError as exc:
            raise DataError(None, f"adaptive model: malformed card entry ({exc})") from None
        heads = {}
        for mode, meta in meta_tree.heads.items():
            heads[mode] = AdaptiveHead(
                columns=arr(f"{mode}.columns").astype(np.int64),
                mean=arr(f"{mode}.mean").astype(np.float64),
                var=arr(f"{mode}.var").astype(np.float64),
                coef=arr(f"{mode}.coef").astype(np.float64),
                intercept=arr(f"{mode}.intercept").astype(np.float64),
                temperature=meta.temperature, pooled=meta.pooled)
        return cls(labels, heads, prior_mean=arr("prior.mean"), prior_var=arr("prior.var"),
                   prior=meta_tree.prior)
