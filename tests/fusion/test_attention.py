"""Attention late fusion: weights, masking, pluggable encoders, modality dropout, training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from emofuse.fusion import AttentionFusion, FusionDataset, MLPEncoder, predict_net, train_net
from emofuse.fusion._torch import keep_one_present


def _inputs(b: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"audio": torch.randn(b, 12, generator=g), "face": torch.randn(b, 7, generator=g)}


def test_weights_are_a_distribution_over_present_modalities():
    net = AttentionFusion(input_dims={"audio": 12, "face": 7}, n_classes=4, dim=8, hidden=16).eval()
    mask = torch.tensor([[True, True], [True, False], [False, True], [True, True], [False, True]])
    out = net(_inputs(), mask)
    assert out["logits"].shape == (5, 4)
    w = out["weights"]
    assert w.shape == (5, 2)
    assert torch.allclose(w.sum(1), torch.ones(5))
    assert torch.all(w[~mask] == 0)
    assert torch.allclose(w[1], torch.tensor([1.0, 0.0]))
    assert torch.allclose(w[2], torch.tensor([0.0, 1.0]))
    assert set(out["aux"]) == {"audio", "face"}


def test_masked_modality_content_does_not_matter():
    net = AttentionFusion(input_dims={"audio": 12, "face": 7}, n_classes=3, dim=8).eval()
    x = _inputs(3)
    mask = torch.tensor([[False, True]] * 3)
    a = net(x, mask)["logits"]
    b = net({**x, "audio": torch.randn(3, 12) * 100}, mask)["logits"]
    assert torch.allclose(a, b)


def test_weights_depend_on_content():
    net = AttentionFusion(input_dims={"audio": 12, "face": 7}, n_classes=3, dim=8).eval()
    w = net(_inputs(5))["weights"]
    assert w[:, 0].std() > 0          # scored per sample, not one fixed weight


def test_pluggable_encoder_and_linear_variant():
    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(1, keepdim=True).expand(-1, 8)

    net = AttentionFusion(input_dims={"audio": 12, "face": 7}, n_classes=3, dim=8, hidden=0,
                          head_hidden=0, encoders={"audio": Mean()})
    assert isinstance(net.encoders["audio"], Mean)
    assert isinstance(net.encoders["face"], MLPEncoder)
    assert net(_inputs(2))["logits"].shape == (2, 3)
    with pytest.raises(ValueError):
        AttentionFusion(input_dims={}, n_classes=3)


def test_keep_one_present_never_empties_a_row():
    torch.manual_seed(0)
    mask = torch.ones(200, 3, dtype=torch.bool)
    mask[:50, 0] = False
    new = keep_one_present(mask, torch.ones(200, 3, dtype=torch.bool))
    assert torch.all(new.sum(1) == 1)
    assert not torch.any(new & ~mask)


def test_dataset_batches_dropout_and_variants():
    n = 40
    X = {"audio": np.ones((n, 4), np.float32), "face": np.ones((n, 2), np.float32)}
    variants = {"audio": np.full((2, n, 4), 7.0, np.float32)}
    ds = FusionDataset(X, np.ones((n, 2), bool), np.zeros(n, int), variants=variants,
                       variant_p=1.0, modality_dropout=0.5)
    torch.manual_seed(0)
    batch = ds[list(range(n))]
    assert batch["x"]["audio"].shape == (n, 4) and batch["y"].shape == (n,)
    assert batch["mask"].any(1).all() and not batch["mask"].all()
    kept = batch["mask"][:, 0]
    assert torch.all(batch["x"]["audio"][kept] == 7.0)        # the variant replaced the input
    assert torch.all(batch["x"]["audio"][~kept] == 0.0)       # a dropped modality is zeroed
    one = ds[3]
    assert one["x"]["face"].shape == (2,) and one["mask"].shape == (2,)
    with pytest.raises(ValueError):
        FusionDataset(X, np.ones((n - 1, 2), bool))


def test_training_learns_and_uses_the_informative_modality(tmp_path):
    rng = np.random.default_rng(0)
    n, C = 240, 3
    y = rng.integers(0, C, n)
    centers = rng.normal(size=(C, 6)) * 3
    X = {"audio": (centers[y] + rng.normal(size=(n, 6))).astype(np.float32),
         "face": rng.normal(size=(n, 5)).astype(np.float32)}                 # pure noise
    mask = np.ones((n, 2), bool)
    tr, va, te = np.arange(0, 160), np.arange(160, 200), np.arange(200, n)
    net = AttentionFusion(input_dims={"audio": 6, "face": 5}, n_classes=C, dim=8, hidden=16)
    ds = lambda idx, **kw: FusionDataset({m: x[idx] for m, x in X.items()}, mask[idx], y[idx],
                                        **kw)
    info = train_net(net, ds(tr, modality_dropout=0.3), ds(va), n_classes=C, seed=0,
                     max_epochs=12, patience=12, batch_size=32, lr=5e-3)
    assert info["epochs"] >= 1
    out = predict_net(net, {m: x[te] for m, x in X.items()}, mask[te])
    assert out["proba"].shape == (len(te), C)
    assert np.allclose(out["proba"].sum(1), 1, atol=1e-5)
    assert (out["proba"].argmax(1) == y[te]).mean() > 0.8
    assert out["weights"][:, 0].mean() > 0.5          # attention prefers the informative audio
    face_only = predict_net(net, {m: x[te] for m, x in X.items()},
                            np.tile([False, True], (len(te), 1)))
    assert np.allclose(face_only["weights"][:, 1], 1.0)
