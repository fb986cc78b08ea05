"""Statistics of the augmentation ablations (``aug-text``, ``aug-face``, ``aug-speech-*``):
paired tests over seeds and a paired bootstrap over test items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["paired_tests", "bootstrap_diff"]


def paired_tests(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Paired t-test and Wilcoxon signed-rank test of ``b - a`` (per seed)."""
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    out: dict[str, Any] = {"diff_mean": float(d.mean()), "diff_std": float(d.std(ddof=1))
                           if len(d) > 1 else 0.0, "per_seed": d.tolist()}
    if len(d) > 1 and np.ptp(d) > 0:
        out["t_p"] = float(stats.ttest_rel(b, a).pvalue)
    else:
        out["t_p"] = None  # constant differences: the t statistic is undefined
    if len(d) > 1 and np.any(d != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(b, a).pvalue)
    else:
        out["wilcoxon_p"] = None
    return out


def _ua(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    tp = np.bincount(y[pred == y], minlength=k)
    n = np.bincount(y, minlength=k)
    present = n > 0
    return float(np.mean(tp[present] / n[present]))


def bootstrap_diff(y: np.ndarray, preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray],
                   n_classes: int, *, n: int = 1000, seed: int = 0) -> dict[str, float]:
    """Paired bootstrap over test items of the seed-mean UA and accuracy difference ``b - a``:
    95 % percentile CIs (the same resampled items for both arms and every seed)."""
    rng = np.random.default_rng(seed)
    ua, acc = np.empty(n), np.empty(n)
    for k in range(n):
        idx = rng.integers(0, len(y), len(y))
        yy = y[idx]
        ua[k] = np.mean([_ua(yy, pb[idx], n_classes) - _ua(yy, pa[idx], n_classes)
                         for pa, pb in zip(preds_a, preds_b)])
        acc[k] = np.mean([np.mean(pb[idx] == yy) - np.mean(pa[idx] == yy)
                          for pa, pb in zip(preds_a, preds_b)])
    return {"ua_ci_low": float(np.percentile(ua, 2.5)), "ua_ci_high": float(np.percentile(ua, 97.5)),
            "accuracy_ci_low": float(np.percentile(acc, 2.5)),
            "accuracy_ci_high": float(np.percentile(acc, 97.5)), "n": n}
