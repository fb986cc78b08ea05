"""Shared torch glue of the fusion networks: the clip-level dataset (with modality dropout and
corrupted-input variants), a Lightning module around any fusion net, training through
:func:`emofuse.train.fit` and batched prediction.

A fusion net is an ``nn.Module`` with ``modalities`` (list of names), ``forward(x, mask)``
taking ``{modality: (B, d_m)}`` and a ``(B, M)`` bool presence mask and returning a dict with
``logits`` (and optionally ``weights`` ``(B, M)`` and ``aux`` ``{modality: logits}``), and
``loss(out, y, mask, class_weight)``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FusionDataset", "VectorNet", "masked_cross_entropy", "balanced_class_weight",
           "train_net", "predict_net", "keep_one_present", "l2_penalty"]


def masked_cross_entropy(logits: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None = None,
                         weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy over the rows where ``keep`` (all rows when ``None``); 0 if none."""
    if keep is not None:
        if not bool(keep.any()):
            return logits.sum() * 0.0
        logits, y = logits[keep], y[keep]
    return F.cross_entropy(logits, y, weight=weight)


def balanced_class_weight(y: np.ndarray, n_classes: int) -> np.ndarray:
    """``n / (C * count_c)`` per class (1 for classes absent from ``y``)."""
    counts = np.bincount(np.asarray(y, int), minlength=n_classes).astype(float)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 1.0)
    return w.astype(np.float32)


def keep_one_present(mask: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """``mask & ~drop`` per row, except that a row left empty keeps its originally present
    modality with the largest random priority (so at least one modality stays)."""
    new = mask & ~drop
    empty = ~new.any(dim=-1) & mask.any(dim=-1)
    if bool(empty.any()):
        prio = torch.rand(mask.shape) * mask
        choice = prio.argmax(dim=-1)
        new = new.clone()
        rows = torch.nonzero(empty).flatten()
        new[rows, choice[rows]] = True
    return new


class FusionDataset(torch.utils.data.Dataset):
    """Clip-level items ``{"x": {m: (d_m,)}, "mask": (M,), "y": ()}``.

    Parameters
    ----------
    X
        ``{modality: (n, d_m)}`` in the net's modality order.
    mask
        ``(n, M)`` presence.
    y
        Class indices (``None`` for unlabelled prediction).
    variants
        ``{modality: (V, n, d_m)}`` alternative versions of a modality (e.g. features of noisy
        audio); each item uses one of them at random with probability ``variant_p``.
    modality_dropout
        Probability of hiding each present modality of an item (at least one stays).
    """

    def __init__(self, X: Mapping[str, np.ndarray], mask: np.ndarray, y: np.ndarray | None = None,
                 *, variants: Mapping[str, np.ndarray] | None = None, variant_p: float = 0.0,
                 modality_dropout: float = 0.0) -> None:
        self.modalities = list(X)
        self.X = {m: torch.as_tensor(np.asarray(x, np.float32)) for m, x in X.items()}
        self.mask = torch.as_tensor(np.asarray(mask, bool))
        self.y = None if y is None else torch.as_tensor(np.asarray(y, np.int64))
        self.variants = {m: torch.as_tensor(np.asarray(v, np.float32))
                         for m, v in (variants or {}).items()}
        self.variant_p = float(variant_p)
        self.modality_dropout = float(modality_dropout)
        n = len(self.mask)
        if any(len(x) != n for x in self.X.values()) or (self.y is not None and len(self.y) != n):
            raise ValueError("X, mask and y must have the same number of rows")

    def __len__(self) -> int:
        return len(self.mask)

    def __getitem__(self, i: int | Sequence[int]) -> dict[str, Any]:
        """One item, or a whole batch when ``i`` is a sequence of indices (augmentations are
        drawn per item either way)."""
        single = isinstance(i, (int, np.integer))
        idx = torch.as_tensor([int(i)] if single else list(i), dtype=torch.long)
        x = {m: t[idx] for m, t in self.X.items()}
        for m, v in self.variants.items():
            if self.variant_p > 0:
                use = torch.rand(len(idx)) < self.variant_p
                if bool(use.any()):
                    which = torch.randint(len(v), (int(use.sum()),))
                    x[m] = x[m].clone()
                    x[m][use] = v[which, idx[use]]
        mask = self.mask[idx]
        if self.modality_dropout > 0:
            mask = keep_one_present(mask, torch.rand(mask.shape) < self.modality_dropout)
        x = {m: x[m] * mask[:, j:j + 1] for j, m in enumerate(self.modalities)}
        item: dict[str, Any] = {"x": x, "mask": mask}
        if self.y is not None:
            item["y"] = self.y[idx]
        if single:
            item = {"x": {m: t[0] for m, t in x.items()}, "mask": mask[0],
                    **({"y": item["y"][0]} if "y" in item else {})}
        return item

    def loader(self, *, batch_size: int, shuffle: bool = False,
               generator: torch.Generator | None = None,
               drop_last: bool = False) -> torch.utils.data.DataLoader:
        """A loader that fetches whole batches at once (no per-item collation)."""
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

        base = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        sampler = BatchSampler(base, batch_size=batch_size, drop_last=drop_last)
        return torch.utils.data.DataLoader(self, batch_size=None, sampler=sampler)


def l2_penalty(net: nn.Module) -> torch.Tensor:
    """Sum of squares of the net's weight matrices (biases and norms excluded)."""
    return sum((p ** 2).sum() for p in net.parameters() if p.ndim >= 2)


def _module(net: nn.Module, *, lr: float, weight_decay: float,
            class_weight: np.ndarray | None, l2: float = 0.0) -> Any:
    import lightning.pytorch as pl

    class FusionModule(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            cw = torch.as_tensor(class_weight) if class_weight is not None else None
            self.register_buffer("class_weight", cw, persistent=False)

        def training_step(self, batch: dict, _: int) -> torch.Tensor:
            out = self.net(batch["x"], batch["mask"])
            loss = self.net.loss(out, batch["y"], batch["mask"], self.class_weight)
            self.log("train_loss", loss, on_step=False, on_epoch=True,
                     batch_size=len(batch["y"]))
            if l2 > 0:
                loss = loss + l2 * l2_penalty(self.net)
            return loss

        def validation_step(self, batch: dict, _: int) -> None:
            out = self.net(batch["x"], batch["mask"])
            loss = F.cross_entropy(out["logits"], batch["y"], weight=self.class_weight)
            self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["y"]))

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=weight_decay)

    return FusionModule()


def train_net(net: nn.Module, train: FusionDataset, val: FusionDataset, *, n_classes: int,
              seed: int, max_epochs: int = 200, patience: int = 20, batch_size: int = 64,
              lr: float = 1e-3, weight_decay: float = 1e-4, class_weighted: bool = True,
              num_threads: int | None = 1, out_dir: str | Path | None = None,
              early_stopping: bool = True, l2: float = 0.0) -> dict[str, Any]:
    """Train ``net`` (in place) with early stopping on ``val``'s cross-entropy; the best
    epoch's weights are restored. With ``early_stopping=False`` it trains ``max_epochs``
    epochs and keeps the last weights (``val`` is only monitored). ``l2`` adds
    ``l2 * sum of squared weights`` to the loss (a ridge penalty, unlike AdamW's decoupled
    ``weight_decay``). ``out_dir`` keeps the
    checkpoints (a temporary folder, removed afterwards, when ``None``). Returns
    ``{"epochs", "best_val_loss", "seconds"}``."""
    from ..train.trainer import fit, seed_everything

    seed_everything(seed)
    if train.y is None or val.y is None:
        raise ValueError("training and validation data need labels")
    cw = balanced_class_weight(train.y.numpy(), n_classes) if class_weighted else None
    module = _module(net, lr=lr, weight_decay=weight_decay, class_weight=cw, l2=l2)
    g = torch.Generator().manual_seed(seed)
    tl = train.loader(batch_size=batch_size, shuffle=True, generator=g,
                      drop_last=len(train) > batch_size)
    vl = val.loader(batch_size=1024)
    tmp = None if out_dir is not None else tempfile.mkdtemp(prefix="emofuse-fusion-")
    try:
        res = fit(module, tl, vl, max_epochs=max_epochs,
                  patience=patience if early_stopping else max_epochs + 1,
                  out_dir=out_dir or tmp, seed=seed, progress=False, resume=out_dir is not None,
                  num_threads=num_threads, restore_best=early_stopping)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    net.eval()
    return {"epochs": res.epochs_run, "best_val_loss": res.best_score,
            "seconds": round(res.seconds, 2)}


@torch.no_grad()
def predict_net(net: nn.Module, X: Mapping[str, np.ndarray], mask: np.ndarray, *,
                batch_size: int = 1024) -> dict[str, np.ndarray]:
    """``proba`` ``(n, C)``, and ``weights`` ``(n, M)`` / ``aux_<m>`` probabilities when the
    net returns them."""
    net.eval()
    ds = FusionDataset(X, mask)
    parts: dict[str, list[np.ndarray]] = {}
    for batch in ds.loader(batch_size=batch_size):
        out = net(batch["x"], batch["mask"])
        parts.setdefault("proba", []).append(torch.softmax(out["logits"], -1).numpy())
        if out.get("weights") is not None:
            parts.setdefault("weights", []).append(out["weights"].numpy())
        for m, lg in (out.get("aux") or {}).items():
            parts.setdefault(f"aux_{m}", []).append(torch.softmax(lg, -1).numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


class VectorNet(nn.Module):
    """Any classifier ``net(x) -> logits`` over one vector input, as a fusion net over the
    single modality ``name`` (e.g. FERCNN over the MFA projection)."""

    def __init__(self, net: nn.Module, *, name: str = "z") -> None:
        super().__init__()
        self.net = net
        self.modalities = [name]

    def forward(self, x: Mapping[str, torch.Tensor],
                mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.net(x[self.modalities[0]])}

    def loss(self, out: dict, y: torch.Tensor, mask: torch.Tensor,
             class_weight: torch.Tensor | None = None) -> torch.Tensor:
        return masked_cross_entropy(out["logits"], y, None, class_weight)
