"""Quality gates of a synthetic set, computed in an embedding of our own encoder (for text the
frozen MiniLM of :mod:`emofuse.features.text`):

- **confidence**: the probability a classifier trained on real training data gives the intended
  class (mean) and how often it predicts that class (``agreement``);
- **diversity**: mean pairwise cosine distance between synthetic items (real data at the same
  size as a reference);
- **memorisation**: cosine distance of each synthetic item to its nearest real training item
  (mean, 5th percentile, share of near copies below ``copy_threshold``);
- **Fréchet distance** between the Gaussian fits of real and synthetic embeddings (with the
  distance between two disjoint real samples of the same size as a reference).

>>> import numpy as np
>>> a = np.random.default_rng(0).normal(size=(200, 4))
>>> round(frechet_distance(a, a), 6)
0.0
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["frechet_distance", "diversity", "nearest_real", "confidence", "quality_report",
           "text_quality"]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def frechet_distance(a: np.ndarray, b: np.ndarray, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to rows of ``a`` and ``b`` (FID's formula)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singular products (few items, many dims) are expected
        covmean = _sqrtm(s1 @ s2)
        if not np.isfinite(covmean).all():
            off = np.eye(len(s1)) * eps
            covmean = _sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return max(d, 0.0)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    from scipy import linalg

    out = linalg.sqrtm(m)
    return out[0] if isinstance(out, tuple) else out


def diversity(emb: np.ndarray, *, max_items: int = 2000, seed: int = 0) -> float:
    """Mean pairwise cosine distance (``1 - cos``) over distinct pairs (a random subsample of
    ``max_items`` when larger)."""
    x = _unit(emb)
    if len(x) < 2:
        return float("nan")
    if len(x) > max_items:
        x = x[np.random.default_rng(seed).choice(len(x), max_items, replace=False)]
    sim = x @ x.T
    n = len(x)
    return float(1.0 - (sim.sum() - np.trace(sim)) / (n * (n - 1)))


def nearest_real(syn: np.ndarray, real: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Cosine distance of each synthetic row to its nearest real row."""
    s, r = _unit(syn), _unit(real)
    out = np.empty(len(s))
    for k in range(0, len(s), chunk):
        out[k:k + chunk] = 1.0 - (s[k:k + chunk] @ r.T).max(1)
    return out


def confidence(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Mean probability of the intended class and the share predicted as that class."""
    proba, y = np.asarray(proba), np.asarray(y, int)
    if len(y) == 0:
        return {"confidence": float("nan"), "agreement": float("nan")}
    return {"confidence": float(proba[np.arange(len(y)), y].mean()),
            "agreement": float((proba.argmax(1) == y).mean())}


def quality_report(syn_emb: np.ndarray, syn_y: Sequence[int], real_emb: np.ndarray,
                   real_y: Sequence[int], classes: Sequence[str], *,
                   proba: np.ndarray | None = None, copy_threshold: float = 0.05,
                   seed: int = 0) -> dict[str, Any]:
    """All gates, overall and per class (``classes[i]`` names index ``i``); ``proba`` is the
    real-data classifier's output on the synthetic items (confidence gates skipped when None).

    References computed on real data: ``real_diversity`` (same size as the synthetic set) and
    ``frechet_real_vs_real`` (two disjoint real samples of the synthetic set's size), so that
    the synthetic figures can be read against what real data gives.
    """
    syn_y, real_y = np.asarray(syn_y, int), np.asarray(real_y, int)
    rng = np.random.default_rng(seed)

    def block(mask_s: np.ndarray, mask_r: np.ndarray) -> dict[str, Any]:
        s, r = syn_emb[mask_s], real_emb[mask_r]
        out: dict[str, Any] = {"n": int(mask_s.sum())}
        if len(s) == 0:
            return out
        d = nearest_real(s, r) if len(r) else np.full(len(s), np.nan)
        out.update({"diversity": diversity(s, seed=seed),
                    "nearest_real_mean": float(np.mean(d)),
                    "nearest_real_p05": float(np.percentile(d, 5)),
                    "near_copies": float(np.mean(d < copy_threshold))})
        m = min(len(s), len(r) // 2)
        if len(r) >= 2:
            ref = r[rng.choice(len(r), min(len(s), len(r)), replace=False)]
            out["real_diversity"] = diversity(ref, seed=seed)
        out["frechet"] = frechet_distance(r, s) if len(s) >= 2 else float("nan")
        if m >= 2:
            perm = rng.permutation(len(r))
            out["frechet_real_vs_real"] = frechet_distance(r[perm[:m]], r[perm[m:2 * m]])
        if proba is not None:
            out.update(confidence(proba[mask_s], syn_y[mask_s]))
        return out

    report = {"overall": block(np.ones(len(syn_y), bool), np.ones(len(real_y), bool)),
              "per_class": {}, "copy_threshold": copy_threshold}
    for i, c in enumerate(classes):
        if (syn_y == i).any():
            report["per_class"][c] = block(syn_y == i, real_y == i)
    return report


def text_quality(texts: Sequence[str], labels: Sequence[str], real_texts: Sequence[str],
                 real_labels: Sequence[str], classes: Sequence[str], *, classifier: Any = None,
                 embed: Any = None, **opts: Any) -> dict[str, Any]:
    """:func:`quality_report` for text in MiniLM space (``embed``: texts -> matrix, default
    :func:`emofuse.features.text.embed_texts`); ``classifier`` has ``predict_proba(emb)``."""
    if embed is None:
        from ..features.text import embed_texts as embed
    index = {c: i for i, c in enumerate(classes)}
    se, re_ = embed(list(texts)), embed(list(real_texts))
    proba = classifier.predict_proba(se) if classifier is not None and len(texts) else None
    return quality_report(se, [index[x] for x in labels], re_, [index[x] for x in real_labels],
                          classes, proba=proba, **opts)
