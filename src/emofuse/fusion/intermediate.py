"""Intermediate fusion with auxiliary losses (the Wavegram audio-visual paper).

Each modality is encoded by fully connected layers (``A``, ``V``), the concatenation
``F = [A, V]`` goes through further fully connected layers to the fused prediction, and each
modality's own head gives an auxiliary prediction; the loss is
``L = L_av + alpha * L_a + beta * L_v`` (``aux_weights={"audio": alpha, "face": beta}``).
An absent modality contributes a zero block to ``F``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ._torch import masked_cross_entropy

__all__ = ["IntermediateFusion"]


class IntermediateFusion(nn.Module):
    """``F = [enc_a(a), enc_v(v), ...]`` -> FC layers -> logits, with auxiliary heads.

    Parameters
    ----------
    input_dims
        ``{modality: input size}`` in mask-column order.
    n_classes
        Outputs.
    enc_hidden
        Width of each modality's encoder (two FC layers).
    hidden
        Widths of the fusion FC layers after the concatenation.
    dropout, input_dropout
        Dropout after each hidden layer / on the inputs.
    aux_weights
        ``{modality: weight}`` of each auxiliary loss (missing: 0.5).
    """

    def __init__(self, *, input_dims: Mapping[str, int], n_classes: int, enc_hidden: int = 128,
                 hidden: tuple[int, ...] | list[int] = (128,), dropout: float = 0.3,
                 input_dropout: float = 0.1,
                 aux_weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.modalities = list(input_dims)
        self.encoders = nn.ModuleDict({
            m: nn.Sequential(nn.Dropout(input_dropout), nn.Linear(int(d), enc_hidden), nn.ReLU(),
                             nn.Dropout(dropout), nn.Linear(enc_hidden, enc_hidden), nn.ReLU())
            for m, d in input_dims.items()})
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        width = enc_hidden * len(self.modalities)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_classes))
        self.fusion = nn.Sequential(*layers)
        self.aux = nn.ModuleDict({m: nn.Sequential(nn.Dropout(dropout),
                                                   nn.Linear(enc_hidden, n_classes))
                                  for m in self.modalities})
        weights = dict(aux_weights or {})
        unknown = set(weights) - set(self.modalities)
        if unknown:
            raise ValueError(f"aux_weights for unknown modalities {sorted(unknown)}")
        self.aux_weights = {m: float(weights.get(m, 0.5)) for m in self.modalities}

    def forward(self, x: Mapping[str, torch.Tensor],
                mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        h = {m: self.encoders[m](x[m]) for m in self.modalities}
        if mask is not None:
            h = {m: h[m] * mask[:, j:j + 1] for j, m in enumerate(self.modalities)}
        logits = self.fusion(torch.cat([h[m] for m in self.modalities], dim=1))
        return {"logits": logits, "aux": {m: self.aux[m](h[m]) for m in self.modalities}}

    def loss(self, out: dict, y: torch.Tensor, mask: torch.Tensor,
             class_weight: torch.Tensor | None = None) -> torch.Tensor:
        """``L_av + sum_m aux_weights[m] * L_m`` (``L_m`` over rows where ``m`` is present)."""
        loss = masked_cross_entropy(out["logits"], y, None, class_weight)
        for j, m in enumerate(self.modalities):
            if self.aux_weights[m]:
                loss = loss + self.aux_weights[m] * masked_cross_entropy(
                    out["aux"][m], y, mask[:, j], class_weight)
        return loss
