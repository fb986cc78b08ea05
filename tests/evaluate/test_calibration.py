"""ECE and temperature scaling (evaluate.calibration)."""

from __future__ import annotations

import numpy as np

from emofuse.evaluate.calibration import apply_temperature, ece, fit_temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_overconfident() -> None:
    y = np.array([0] * 8 + [1] * 2)
    calibrated = np.tile([0.8, 0.2], (10, 1))          # says 0.8, right 8 times in 10
    assert ece(calibrated, y) == 0.0
    over = np.tile([0.99, 0.01], (10, 1))
    assert abs(ece(over, y) - 0.19) < 1e-9
    assert np.isnan(ece(np.zeros((0, 2)), np.zeros(0, int)))


def test_fitted_temperature_recovers_the_true_one_and_keeps_the_argmax() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (4000, 5))
    y = np.array([rng.choice(5, p=p) for p in _softmax(logits)])   # calibrated at T = 1
    sharp = _softmax(3.0 * logits)                                  # overconfident by 3
    t = fit_temperature([sharp], [y])
    assert 2.6 < t < 3.4
    fixed = apply_temperature(sharp, t)
    assert np.array_equal(fixed.argmax(1), sharp.argmax(1))
    assert ece(fixed, y) < ece(sharp, y) / 3
    assert fit_temperature([], []) == 1.0
