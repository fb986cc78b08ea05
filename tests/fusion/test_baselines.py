"""Baselines (early concatenation, decision averaging, RBF-SVMs) and normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.fusion import (Standardiser, decision_average, early_concat, fit_svm,
                            speaker_normalise, svm_proba)


def test_early_concat_order_and_errors():
    X = {"a": np.ones((3, 2)), "b": np.zeros((3, 1))}
    assert early_concat(X).tolist() == [[1, 1, 0]] * 3
    assert early_concat(X, ["b", "a"]).tolist() == [[0, 1, 1]] * 3
    with pytest.raises(ValueError):
        early_concat({})


def test_decision_average_weights_and_absent_modalities():
    pa = np.array([[0.8, 0.2], [0.6, 0.4]])
    pf = np.array([[0.2, 0.8], [0.0, 1.0]])
    assert np.allclose(decision_average([pa, pf]), [[0.5, 0.5], [0.3, 0.7]])
    assert np.allclose(decision_average([pa, pf], weights=[3, 1])[0], [0.65, 0.35])
    out = decision_average([pa, pf], present=[np.array([True, False]), np.array([True, True])])
    assert np.allclose(out[1], pf[1])               # audio absent: face alone decides


def _blobs(seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 40)
    X = rng.normal(size=(len(y), 4)) + 2.0 * np.eye(3, 4)[y]
    groups = np.tile(np.arange(8), 15)
    return X, y, groups


def test_fit_svm_chooses_by_grouped_cv_and_maps_classes():
    X, y, g = _blobs()
    svm = fit_svm(X, y, groups=g, C=[0.01, 1.0], gamma=["scale", "scale*2"])
    assert len(svm.cv_scores) == 4
    assert svm.params["C"] in (0.01, 1.0)
    p = svm.predict_proba(X)
    assert np.array_equal(p.argmax(1), svm.model.predict(X))
    assert (p.argmax(1) == y).mean() > 0.8
    # a class the SVM never saw keeps its column (probability 0)
    keep = y != 1
    sub = fit_svm(X[keep], y[keep])
    p4 = sub.predict_proba(X, n_classes=4)
    assert p4.shape == (len(X), 4) and np.all(p4[:, [1, 3]] == 0)
    with pytest.raises(ValueError, match="groups"):
        fit_svm(X, y, C=[1, 10])


def test_calibrated_svm_gives_probabilities():
    X, y, g = _blobs(1)
    svm = fit_svm(X, y, groups=g, probability=True)
    p = svm_proba(svm.model, X, n_classes=3)
    assert np.allclose(p.sum(1), 1) and (p.argmax(1) == y).mean() > 0.8


def test_standardiser_uses_fit_rows_only_and_keeps_absent_rows_zero():
    X = np.array([[1.0, 5.0], [3.0, 5.0], [100.0, -7.0]])
    present = np.array([True, True, False])
    sc = Standardiser().fit(X[:2])
    out = sc.transform(X, present)
    assert np.allclose(out[:2, 0], [-1, 1]) and np.allclose(out[:2, 1], 0)   # constant column
    assert np.all(out[2] == 0)
    with pytest.raises(RuntimeError):
        Standardiser().transform(X)


def test_speaker_normalise_uses_each_speakers_own_rows():
    X = np.array([[1.0], [3.0], [10.0], [30.0], [99.0]])
    spk = ["a", "a", "b", "b", "c"]
    out = speaker_normalise(X, spk)
    assert np.allclose(out[:, 0], [-1, 1, -1, 1, 0])
    out = speaker_normalise(X, spk, present=np.array([True, True, True, False, True]))
    assert out[3, 0] == 0 and out[2, 0] == 0            # b: one present row, absent row zero


def test_speaker_normalise_with_clean_reference_keeps_a_condition_shift():
    clean = np.array([[1.0], [3.0], [10.0], [30.0]])
    noisy = clean + 5.0                                  # every clip shifted by the noise
    spk = ["a", "a", "b", "b"]
    own = speaker_normalise(noisy, spk)                  # its own statistics: shift removed
    assert np.allclose(own, speaker_normalise(clean, spk))
    enrol = speaker_normalise(noisy, spk, reference=clean)
    assert np.allclose(enrol[:2, 0], [4.0, 6.0]) and np.allclose(enrol[2:, 0], [-0.5, 1.5])
    with pytest.raises(ValueError):
        speaker_normalise(noisy, spk, reference=clean[:3])
