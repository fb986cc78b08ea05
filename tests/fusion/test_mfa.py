"""Marginal Fisher Analysis: graphs, the generalised eigenproblem, the fusion projector."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.fusion import MarginalFisherAnalysis, MFAProjector
from emofuse.fusion.mfa import mfa_graphs


def _data(n_per: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per)
    X = rng.normal(size=(len(y), 10))
    X[:, 0] += 2.5 * y                        # the classes differ along one direction only
    X[:, 1:] *= 3.0                           # ... buried under larger noise
    return X, y


def test_graphs_join_the_right_pairs():
    X, y = _data(10)
    W_w, W_b = mfa_graphs(X, y, k1=3, k2=5)
    assert np.allclose(W_w, W_w.T) and np.allclose(W_b, W_b.T)
    i, j = np.nonzero(W_w)
    assert np.all(y[i] == y[j]) and np.all(i != j)
    assert np.all(W_w.sum(1) >= 3)                      # each sample has its k1 neighbours
    i, j = np.nonzero(W_b)
    assert np.all(y[i] != y[j])
    # k2 pairs per class, counted from the class's own side
    for c in range(3):
        inside = y == c
        assert W_b[np.ix_(inside, ~inside)].sum() >= 5


def test_mfa_recovers_the_discriminative_direction():
    X, y = _data()
    mfa = MarginalFisherAnalysis(1, k1=5, k2=30, reg=1e-3).fit(X, y)
    w = mfa.components_[0] / np.linalg.norm(mfa.components_[0])
    assert abs(w[0]) > 0.9
    Z = mfa.transform(X)
    assert Z.shape == (len(X), 1)
    # class means are far apart relative to the within-class spread after projection
    means = np.array([Z[y == c, 0].mean() for c in range(3)])
    within = np.mean([Z[y == c, 0].std() for c in range(3)])
    assert np.min(np.abs(np.diff(np.sort(means)))) > within


def test_mfa_validates_its_input():
    X, y = _data(5)
    with pytest.raises(ValueError):
        MarginalFisherAnalysis(k1=0)
    with pytest.raises(ValueError, match="two classes"):
        MarginalFisherAnalysis().fit(X, np.zeros(len(X)))
    with pytest.raises(RuntimeError):
        MarginalFisherAnalysis().transform(X)


def test_projector_fits_on_training_rows_and_projects_new_ones():
    X, y = _data(40, seed=1)
    Xt, yt = _data(20, seed=2)
    audio = {"audio": np.hstack([X, np.random.default_rng(3).normal(size=(len(X), 50))]),
             "face": X[:, :4]}
    proj = MFAProjector(size=8, n_components=5, k1=5, k2=40).fit(audio, y)
    assert [pca.n_components_ for _, _, pca in proj.reducers_.values()] == [8, 4]
    Z = proj.transform(audio)
    assert Z.shape == (len(X), 5)
    assert np.allclose(Z.mean(0), 0, atol=1e-4)
    new = {"audio": np.hstack([Xt, np.zeros((len(Xt), 50))]), "face": Xt[:, :4]}
    assert proj.transform(new).shape == (len(Xt), 5)
    with pytest.raises(ValueError, match="missing modality"):
        proj.transform({"audio": new["audio"]})
