"""Attention late fusion (the generative multimodal framework's fusion stage).

Each modality's encoder turns its input into an embedding, projected to a common size ``dim``
and layer-normalised; a per-modality scorer rates each embedding from its content, absent
modalities are masked out, a softmax over the remaining ones gives the per-sample modality
weights, and the weighted sum of embeddings goes to the classifier. Auxiliary unimodal heads
(optional) keep every embedding discriminative on its own, and training with modality dropout
(:class:`~emofuse.fusion._torch.FusionDataset`) makes any subset of modalities work at test
time. Every forward pass returns the weights with the logits.

>>> net = AttentionFusion(input_dims={"audio": 585, "face": 35}, n_classes=8)
>>> out = net({"audio": a, "face": v}, mask)        # doctest: +SKIP
>>> out["logits"].shape, out["weights"].shape       # doctest: +SKIP
((B, 8), (B, 2))

Encoders are pluggable: pass ``encoders={"audio": module}`` with any ``nn.Module`` mapping the
modality's input to a ``(B, dim)`` embedding (e.g. a learned speech model); the default is
:class:`MLPEncoder` over a clip-level feature or embedding vector.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ._torch import masked_cross_entropy

__all__ = ["MLPEncoder", "AttentionFusion"]


def _mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """``in -> hidden -> out`` (linear, GELU, dropout, linear), or one linear layer when
    ``hidden`` is 0."""
    if hidden <= 0:
        return nn.Sequential(nn.Linear(in_dim, out_dim))
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))


class MLPEncoder(nn.Module):
    """``in_dim -> hidden -> dim`` after input dropout (``hidden=0``: a linear projection)."""

    def __init__(self, *, in_dim: int, dim: int = 64, hidden: int = 256, dropout: float = 0.3,
                 input_dropout: float = 0.1) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Dropout(input_dropout), *_mlp(in_dim, hidden, dim, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class AttentionFusion(nn.Module):
    """Content-based attention over modality embeddings, then a classifier.

    Parameters
    ----------
    input_dims
        ``{modality: input size}``, in the order of the mask's columns.
    n_classes
        Outputs.
    dim
        Common embedding size.
    hidden, dropout, input_dropout
        Hidden size (0: linear) and dropout of the default encoders.
    head_hidden
        Hidden size of the classifier (0: linear); ``None``: as ``hidden``.
    attn_hidden
        Hidden size of each modality's scorer.
    aux_weight
        Weight of the auxiliary unimodal cross-entropies in :meth:`loss` (0: no aux heads).
    encoders
        Replacement encoders by modality (each outputs ``(B, dim)``).
    norm
        How each projected embedding is normalised: ``"layer"`` (per sample, LayerNorm),
        ``"batch"`` (per feature over the batch, BatchNorm; keeps each sample's magnitude) or
        ``"none"``.
    fuse
        ``"sum"``: the classifier sees the weighted sum of embeddings (``dim``); ``"concat"``:
        the weighted embeddings side by side (``M * dim``, an absent modality's block is zero).
    """

    def __init__(self, *, input_dims: Mapping[str, int], n_classes: int, dim: int = 64,
                 hidden: int = 256, dropout: float = 0.3, input_dropout: float = 0.1,
                 head_hidden: int | None = None, attn_hidden: int = 32, aux_weight: float = 0.5,
                 encoders: Mapping[str, nn.Module] | None = None, fuse: str = "sum",
                 norm: str = "layer") -> None:
        super().__init__()
        if not input_dims:
            raise ValueError("AttentionFusion needs at least one modality")
        if fuse not in ("sum", "concat"):
            raise ValueError(f"fuse must be 'sum' or 'concat', got {fuse!r}")
        self.fuse = fuse
        self.modalities = list(input_dims)
        encoders = dict(encoders or {})
        self.encoders = nn.ModuleDict({
            m: encoders.get(m) or MLPEncoder(in_dim=int(d), dim=dim, hidden=hidden,
                                             dropout=dropout, input_dropout=input_dropout)
            for m, d in input_dims.items()})
        norms = {"layer": lambda: nn.LayerNorm(dim), "batch": lambda: nn.BatchNorm1d(dim),
                 "none": nn.Identity}
        if norm not in norms:
            raise ValueError(f"norm must be one of {', '.join(norms)}, got {norm!r}")
        self.norms = nn.ModuleDict({m: norms[norm]() for m in self.modalities})
        self.scorers = nn.ModuleDict({
            m: nn.Sequential(nn.Linear(dim, attn_hidden), nn.Tanh(), nn.Linear(attn_hidden, 1))
            for m in self.modalities})
        head = hidden if head_hidden is None else head_hidden
        width = dim * (len(self.modalities) if fuse == "concat" else 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), *_mlp(width, head, n_classes, dropout))
        self.aux_weight = float(aux_weight)
        self.aux = nn.ModuleDict({m: nn.Linear(dim, n_classes) for m in self.modalities}) \
            if aux_weight > 0 else None

    def embed(self, x: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, M, dim)`` normalised embeddings."""
        return torch.stack([self.norms[m](self.encoders[m](x[m])) for m in self.modalities], 1)

    def forward(self, x: Mapping[str, torch.Tensor],
                mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        e = self.embed(x)
        if mask is None:
            mask = torch.ones(e.shape[:2], dtype=torch.bool, device=e.device)
        scores = torch.cat([self.scorers[m](e[:, j]) for j, m in enumerate(self.modalities)], 1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        weights = torch.nan_to_num(weights, nan=0.0)  # a row with no modality at all
        weighted = weights.unsqueeze(-1) * e
        fused = weighted.flatten(1) if self.fuse == "concat" else weighted.sum(1)
        out: dict[str, torch.Tensor] = {"logits": self.classifier(fused), "weights": weights}
        if self.aux is not None:
            out["aux"] = {m: self.aux[m](e[:, j]) for j, m in enumerate(self.modalities)}
        return out

    def loss(self, out: dict, y: torch.Tensor, mask: torch.Tensor,
             class_weight: torch.Tensor | None = None) -> torch.Tensor:
        """Fused cross-entropy plus ``aux_weight`` x each present modality's own."""
        loss = masked_cross_entropy(out["logits"], y, None, class_weight)
        if self.aux is not None:
            for j, m in enumerate(self.modalities):
                loss = loss + self.aux_weight * masked_cross_entropy(
                    out["aux"][m], y, mask[:, j], class_weight)
        return loss
