"""A small head over frozen Whisper-base encoder states: learned weights over layers, attentive
pooling over frames, a linear classifier.

Input: the frame-level hidden states of several encoder layers (``whisper_frames``, 50 frames a
second, 512 dims a layer; optionally averaged over ``stride`` frames when cached), as a padded
batch ``x`` of shape ``(batch, frames, stored_layers, 512)`` and a mask ``(batch, frames)``
(``True`` on real frames). The head:

1. standardises each (layer, dim) entry with its scaler (training-fold statistics, set with
   :meth:`WhisperAttnHead.set_scaler`; identity when the caller standardised already, as the
   speaker-normalised setting does);
2. keeps ``layers`` of the stored ones and mixes them with softmax weights (one learned logit a
   layer, initialised equal);
3. projects each frame to ``hidden`` dims (linear + GELU + dropout);
4. pools over frames with attention: scores from a small MLP (``hidden -> attn_hidden -> 1``,
   tanh), softmax over the real frames;
5. optionally concatenates the masked mean and std of the projected frames (``meanstd``);
6. dropout, then a linear layer to the class logits.

>>> head = build_model("whisper_attn", n_classes=8, layers=[2, 3, 4])   # doctest: +SKIP
>>> logits = head(x, mask)                                              # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from . import register_model

__all__ = ["WhisperAttnHead"]


@register_model("whisper_attn")
class WhisperAttnHead(nn.Module):
    """Layer-weighted, attention-pooled classifier over frozen Whisper encoder frames.

    Parameters
    ----------
    n_classes
        Output classes.
    layers
        Encoder layers used (1-6: blocks), a subset of ``stored_layers``.
    stored_layers
        The layers present in the input, in order (default 1-6).
    dim
        Width of a layer's states (512 for Whisper base).
    hidden
        Width of the per-frame projection.
    attn_hidden
        Width of the attention scorer's hidden layer.
    dropout
        Dropout after the projection and before the classifier.
    meanstd
        Concatenate the masked mean and std of the projected frames to the attentive pooling.
    """

    def __init__(self, n_classes: int, *, layers: Sequence[int] = (1, 2, 3, 4, 5, 6),
                 stored_layers: Sequence[int] = (1, 2, 3, 4, 5, 6), dim: int = 512,
                 hidden: int = 128, attn_hidden: int = 64, dropout: float = 0.3,
                 meanstd: bool = True) -> None:
        super().__init__()
        layers, stored_layers = [int(v) for v in layers], [int(v) for v in stored_layers]
        if not layers or any(v not in stored_layers for v in layers):
            raise ConfigError(f"whisper_attn: layers {layers} must be a non-empty subset of "
                              f"the stored layers {stored_layers}")
        if n_classes < 2 or hidden < 1 or attn_hidden < 1 or not 0 <= dropout < 1:
            raise ConfigError("whisper_attn: n_classes >= 2, hidden and attn_hidden >= 1, "
                              "dropout in [0, 1)")
        self.layers, self.stored_layers = layers, stored_layers
        self.meanstd = bool(meanstd)
        self.register_buffer("index", torch.tensor([stored_layers.index(v) for v in layers]))
        self.register_buffer("mu", torch.zeros(len(stored_layers), dim))
        self.register_buffer("sd", torch.ones(len(stored_layers), dim))
        self.layer_logits = nn.Parameter(torch.zeros(len(layers)))
        self.proj = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout))
        self.score = nn.Sequential(nn.Linear(hidden, attn_hidden), nn.Tanh(),
                                   nn.Linear(attn_hidden, 1))
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden * (3 if self.meanstd else 1), n_classes)

    def set_scaler(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Per-(stored layer, dim) standardisation applied first (``(stored_layers, dim)``)."""
        self.mu.copy_(torch.as_tensor(np.asarray(mean, np.float32)))
        self.sd.copy_(torch.as_tensor(np.maximum(np.asarray(std, np.float32), 1e-5)))

    def layer_weights(self) -> dict[int, float]:
        """The softmax weight of each used layer."""
        w = torch.softmax(self.layer_logits.detach(), 0).tolist()
        return {layer: round(float(v), 4) for layer, v in zip(self.layers, w)}

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Utterance vectors ``(batch, out_dim)`` and attention weights ``(batch, frames)``."""
        idx = self.index
        if idx.numel() != x.shape[2] or bool((idx != torch.arange(len(idx))).any()):
            x = x.index_select(2, idx)
        # standardisation folded into the layer mixing (one pass over x):
        # sum_l w_l (x_l - mu_l) / sd_l = sum_l (w_l / sd_l) x_l - sum_l w_l mu_l / sd_l
        w = torch.softmax(self.layer_logits, 0)[:, None] / self.sd[idx]      # (L, D)
        h = (x.float() * w).sum(2) - (w * self.mu[idx]).sum(0)   # (B, T, D)
        z = self.proj(h)                                            # (B, T, H)
        m = mask.to(z.dtype)
        s = self.score(z).squeeze(-1).masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=1)
        parts = [torch.einsum("bt,bth->bh", a, z)]
        if self.meanstd:
            n = m.sum(1, keepdim=True).clamp_min(1.0)
            mean = torch.einsum("bt,bth->bh", m, z) / n
            var = torch.einsum("bt,bth->bh", m, (z - mean[:, None]) ** 2) / n
            parts += [mean, (var + 1e-5).sqrt()]
        return torch.cat(parts, 1), a

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if mask is None:
            mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        return self.fc(self.drop(self.pool(x, mask)[0]))
