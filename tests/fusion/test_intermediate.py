"""Intermediate fusion with auxiliary losses: L = L_av + alpha L_a + beta L_v."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from emofuse.fusion import IntermediateFusion


def _net(**kw) -> IntermediateFusion:
    torch.manual_seed(0)
    return IntermediateFusion(input_dims={"audio": 10, "face": 6}, n_classes=4, enc_hidden=8,
                              hidden=[12], **kw).eval()


def test_shapes_and_aux_heads():
    net = _net()
    x = {"audio": torch.randn(5, 10), "face": torch.randn(5, 6)}
    out = net(x)
    assert out["logits"].shape == (5, 4)
    assert {m: v.shape for m, v in out["aux"].items()} == {"audio": (5, 4), "face": (5, 4)}


def test_loss_is_fused_plus_weighted_auxiliaries():
    net = _net(aux_weights={"audio": 0.3, "face": 0.7})
    x = {"audio": torch.randn(6, 10), "face": torch.randn(6, 6)}
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    mask = torch.ones(6, 2, dtype=torch.bool)
    out = net(x, mask)
    expected = (F.cross_entropy(out["logits"], y) + 0.3 * F.cross_entropy(out["aux"]["audio"], y)
                + 0.7 * F.cross_entropy(out["aux"]["face"], y))
    assert torch.allclose(net.loss(out, y, mask), expected)
    # a modality absent in some rows only counts where present
    mask[:3, 1] = False
    out = net(x, mask)
    expected = (F.cross_entropy(out["logits"], y) + 0.3 * F.cross_entropy(out["aux"]["audio"], y)
                + 0.7 * F.cross_entropy(out["aux"]["face"][3:], y[3:]))
    assert torch.allclose(net.loss(out, y, mask), expected)


def test_absent_modality_contributes_nothing():
    net = _net()
    x = {"audio": torch.randn(3, 10), "face": torch.randn(3, 6)}
    mask = torch.tensor([[True, False]] * 3)
    a = net(x, mask)["logits"]
    b = net({**x, "face": torch.randn(3, 6) * 50}, mask)["logits"]
    assert torch.allclose(a, b)


def test_unknown_aux_weight_is_an_error():
    with pytest.raises(ValueError, match="unknown modalities"):
        _net(aux_weights={"text": 1.0})
