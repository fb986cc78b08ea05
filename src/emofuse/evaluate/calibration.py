"""Confidence calibration: expected calibration error and temperature scaling.

Keyword-only where it matters, numpy in and out::

    t = fit_temperature([proba_val], [y_val])          # on validation data only
    ece(apply_temperature(proba_test, t), y_test)      # 15 equal-width bins
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["ece", "apply_temperature", "fit_temperature", "nll"]


def ece(proba: np.ndarray, y: np.ndarray, *, bins: int = 15) -> float:
    """Expected calibration error of the top label (``bins`` equal-width confidence bins)."""
    proba = np.asarray(proba, np.float64)
    if not len(y):
        return float("nan")
    conf = proba.max(1)
    correct = (proba.argmax(1) == np.asarray(y)).astype(float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def apply_temperature(proba: np.ndarray, t: float) -> np.ndarray:
    """``softmax(log p / t)`` (zero probabilities stay zero)."""
    p = np.asarray(proba, np.float64)
    zero = p <= 0
    z = np.where(zero, -np.inf, np.log(np.where(zero, 1.0, p)) / t)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(proba: np.ndarray, y: np.ndarray, *, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels ``y`` under ``proba`` at ``temperature``."""
    p = apply_temperature(np.asarray(proba, np.float64), temperature)
    y = np.asarray(y)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def fit_temperature(probas: Sequence[np.ndarray], ys: Sequence[np.ndarray], *,
                    bounds: tuple[float, float] = (0.05, 50.0)) -> float:
    """Temperature within ``bounds`` minimising the mean over the given sets (equal weight
    each) of their mean negative log-likelihood; 1 when there is nothing to fit on."""
    from scipy.optimize import minimize_scalar

    sets = [(np.asarray(p, np.float64), np.asarray(y)) for p, y in zip(probas, ys) if len(y)]
    if not sets:
        return 1.0
    lo, hi = bounds
    if not 0 < lo < hi:
        raise ValueError(f"fit_temperature: bounds must satisfy 0 < low < high, got {bounds}")

    def mean_nll(log_t: float) -> float:
        return float(np.mean([nll(p, y, temperature=math.exp(log_t)) for p, y in sets]))

    res = minimize_scalar(mean_nll, bounds=(math.log(lo), math.log(hi)), method="bounded",
                          options={"xatol": 1e-3})
    return round(float(math.exp(res.x)), 4)
