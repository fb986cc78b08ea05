"""Numpy-only prediction of stored linear pipelines matches scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.models import classical
from emofuse.models._linear import LinearProba, fast_linear


def _data(k: int, n: int = 120, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, d)) + y[:, None] * rng.normal(size=d) * 0.7
    return x.astype(np.float32), y


@pytest.mark.parametrize("k,columns", [(4, None), (4, [[0, 5], [8, 12]]), (2, None)])
def test_lda_pipeline_parity(k, columns):
    x, y = _data(k)
    model = classical.lda(shrinkage=0.3, columns=columns).fit(x, y)
    arrays, tree = classical.to_tensors(model)
    fast = fast_linear(arrays, tree)
    assert isinstance(fast, LinearProba)
    ref = model.predict_proba(x)
    got = fast.predict_proba(x)
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-6      # scikit-learn keeps float32 inputs in float32
    assert (fast.predict(x) == model.predict(x)).all()


def test_other_models_are_not_taken():
    x, y = _data(3)
    model = classical.svm(C=1.0).fit(x, y)
    arrays, tree = classical.to_tensors(model)
    assert fast_linear(arrays, tree) is None
    assert fast_linear({}, {"t": "v", "v": None}) is None


def test_missing_arrays_fall_back():
    x, y = _data(3)
    arrays, tree = classical.to_tensors(classical.lda().fit(x, y))
    assert fast_linear({}, tree) is None
