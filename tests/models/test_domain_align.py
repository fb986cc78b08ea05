"""The domain-aligned MLP: every method learns, deterministic seeds, the gradient reversal,
the alignment penalties and bad specifications."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emofuse.models import domain_align as D


def shifted(seed: int = 0, n: int = 240) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Three classes, three domains; each domain adds a large offset."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    dom = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 20)).astype(np.float32)
    x[:, :3] += 3 * np.eye(3)[y]
    x[:, 3:6] += 4 * np.eye(3)[dom]
    return x, y, np.array([f"c{d}" for d in dom])


@pytest.mark.parametrize("method", D.METHODS)
def test_every_method_learns_and_is_deterministic(method: str) -> None:
    torch.set_num_threads(1)
    x, y, dom = shifted()
    spec = D.AlignSpec(method=method, hidden=16, latent=8, pca=10, lam=0.5, epochs=6,
                       batch=64, lr=3e-3)
    m = D.fit_aligned(x, y, dom, n_classes=3, spec=spec, seed=1)
    p = m.predict_proba(x)
    assert p.shape == (len(x), 3) and np.allclose(p.sum(1), 1)
    assert (p.argmax(1) == y).mean() > 0.6          # chance 0.33
    assert m.hidden(x[:5]).shape == (5, 8 if method == "aae" else 16)
    again = D.fit_aligned(x, y, dom, n_classes=3, spec=spec, seed=1).predict_proba(x)
    np.testing.assert_array_equal(p, again)


def test_gradient_reversal_and_penalties() -> None:
    grl = D._grl()
    v = torch.ones(3, requires_grad=True)
    grl(v, 0.5).sum().backward()
    assert torch.allclose(v.grad, torch.full((3,), -0.5))
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(32, 4, generator=g), torch.randn(32, 4, generator=g)
    assert D._mmd(a, b + 3) > 5 * D._mmd(a, b)
    assert D._coral(a, 3 * b) > 10 * D._coral(a, b)


def test_pca_basis_and_bad_specs() -> None:
    x, _, _ = shifted()
    mean, proj = D.pca_basis(x, 4)
    assert mean.shape == (20,) and proj.shape == (20, 4)
    assert D.pca_basis(x, 0)[1] is None and D.pca_basis(x, 50)[1] is None
    with pytest.raises(ValueError, match="method"):
        D.AlignSpec(method="gan")
    with pytest.raises(ValueError, match="dropout"):
        D.AlignSpec(dropout=1.0)
    with pytest.raises(ValueError, match="same non-zero length"):
        D.fit_aligned(x, np.zeros(3, int), np.zeros(3), n_classes=2)
