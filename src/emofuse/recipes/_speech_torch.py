"""Training one network member of a speech run with Lightning: the torch datasets (waveform
crops or feature vectors, with per-speaker statistics), the Lightning module, the shared
Lightning pieces (:func:`log_val_ua`, :func:`adamw_cosine`, :func:`class_weights`), and
:func:`train_one` (early stopping on the validation part, optional refit)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ..augment.online import random_crop
from ..config import TrainConfig
from ..corpora import Record
from ..models import build_model
from ._speech_data import MemberSpec, SpeechData, labels_of, member_matrix

__all__ = ["adamw_cosine", "class_weights", "log_val_ua", "net_params", "train_one"]




class _WaveSet:
    """Torch dataset of (waveform crop, normalisation stats, label)."""

    def __init__(self, variants: list[list[np.ndarray]], stats: list[np.ndarray | None],
                 labels: np.ndarray, n: int, train: bool, seed: int) -> None:
        self.variants, self.stats, self.labels = variants, stats, labels
        self.n, self.train = n, train
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        import torch

        vs = self.variants[i]
        y = vs[int(self.rng.integers(len(vs)))] if self.train else vs[0]
        crop = random_crop(y, n=self.n, rng=self.rng if self.train else None)
        x = torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))
        s = self.stats[i]
        st = torch.from_numpy(s) if s is not None else torch.zeros(0)
        return x, st, int(self.labels[i])


class _VecSet:
    def __init__(self, x: np.ndarray, labels: np.ndarray) -> None:
        self.x, self.labels = x.astype(np.float32), labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        import torch

        return torch.from_numpy(self.x[i]), torch.zeros(0), int(self.labels[i])


def classifier_module(net: Any, *, inputs: Callable[[Any], tuple[tuple, Any]],
                      class_weights: np.ndarray | None, lr: float, weight_decay: float,
                      max_epochs: int, mixup: float = 0.0,
                      loss_mean: Literal["sample", "weight"] = "sample") -> Any:
    """A Lightning module training the classifier ``net`` with class-weighted cross-entropy
    (AdamW, cosine schedule), logging ``val_ua`` for early stopping.

    ``inputs(batch)`` gives ``(net arguments, labels)``; ``mixup`` > 0 mixes pairs of a batch
    (the net takes ``mix=``); ``loss_mean``: ``sample`` averages the weighted per-item losses,
    ``weight`` divides by the sum of the weights (``F.cross_entropy``'s mean).
    """
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    from ..augment.online import mixup_pairs

    class _Module(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            w = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
            self.register_buffer("class_w", w if w is not None else torch.zeros(0),
                                 persistent=False)
            self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

        def _ce(self, logits: torch.Tensor, y: torch.Tensor, reduction: str) -> torch.Tensor:
            w = self.class_w if self.class_w.numel() else None
            return F.cross_entropy(logits, y, weight=w, reduction=reduction)

        def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if loss_mean == "weight":
                return self._ce(logits, y, "mean")
            return self._ce(logits, y, "none").mean()

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            args, y = inputs(batch)
            if mixup > 0:
                perm, lam = mixup_pairs(len(y), alpha=mixup)
                logits = self.net(*args, mix=(perm, lam))
                loss = (lam * self._ce(logits, y, "none")
                        + (1 - lam) * self._ce(logits, y[perm], "none")).mean()
            else:
                loss = self._loss(self.net(*args), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            args, y = inputs(batch)
            logits = self.net(*args)
            self._val.append((logits.argmax(1), y))
            self.log("val_loss", self._loss(logits, y), on_step=False, on_epoch=True,
                     batch_size=len(y))

        def on_validation_epoch_end(self) -> None:
            log_val_ua(self)

        def configure_optimizers(self) -> Any:
            return adamw_cosine(self.net.parameters(), lr=lr, weight_decay=weight_decay,
                                max_epochs=max_epochs)

    return _Module()


def _wave_inputs(batch: Any) -> tuple[tuple, Any]:
    """``(x, speaker stats or None)`` and labels of a :class:`_WaveSet` / :class:`_VecSet`
    batch."""
    x, st, y = batch
    return (x, st if st.numel() else None), y


def _lightning_module(net: Any, *, class_weights: np.ndarray | None, lr: float,
                      weight_decay: float, mixup: float, max_epochs: int) -> Any:
    return classifier_module(net, inputs=_wave_inputs, class_weights=class_weights, lr=lr,
                             weight_decay=weight_decay, max_epochs=max_epochs, mixup=mixup)


def log_val_ua(module: Any) -> None:
    """Lightning ``on_validation_epoch_end``: log ``val_ua`` (unweighted accuracy) of the
    ``(pred, true)`` batches the module gathered in ``module._val``, then clear them."""
    import torch

    if not module._val:
        return
    pred = torch.cat([p for p, _ in module._val])
    true = torch.cat([t for _, t in module._val])
    module._val.clear()
    recalls = [(pred[true == c] == c).float().mean() for c in true.unique()]
    module.log("val_ua", torch.stack(recalls).mean())


def adamw_cosine(params: Any, *, lr: float, weight_decay: float, max_epochs: int
                 ) -> dict[str, Any]:
    """Lightning ``configure_optimizers``: AdamW with a cosine schedule over the epochs."""
    import torch

    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, max_epochs))
    return {"optimizer": opt, "lr_scheduler": sched}


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    return w.astype(np.float32)


def net_params(spec: MemberSpec, setting: str) -> dict[str, Any]:
    """The network's constructor parameters in ``setting`` (spknorm: speaker-normalised
    mel bands for waveform models)."""
    params = dict(spec.params)
    if spec.kind == "waveform" and setting == "spknorm":
        params["norm"] = "speaker"
    return params


def train_one(spec: MemberSpec, data: SpeechData, train: Sequence[Record],
              val: Sequence[Record], *, classes: Sequence[str], setting: str, seed: int,
              train_cfg: TrainConfig, quick: bool) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """One network of ``spec`` trained on ``train``, early-stopped on the validation UA of
    ``val`` (refit on both for the best epoch count when ``spec.refit``): ``(net, validation
    probabilities, facts for the result)``."""
    import torch

    from ..train import fit, seed_everything

    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    seed_everything(seed, train_cfg.deterministic)
    n_classes = len(classes)
    extra = {"dim": None}
    if spec.kind == "vector":
        xt, rt = member_matrix(spec, data, train, setting)
        xv, rv = member_matrix(spec, data, val, setting)
        extra = {"dim": xt.shape[1]}
    net = build_model(spec.name, n_classes=n_classes, **net_params(spec, setting),
                      **({"dim": extra["dim"]} if spec.kind == "vector" else {}))
    if spec.kind == "vector":
        net.set_scaler(xt.mean(0), xt.std(0))
        yt, yv = labels_of(rt, classes), labels_of(rv, classes)
        make_train = lambda: _VecSet(xt, yt)
        make_both = lambda: _VecSet(np.concatenate([xt, xv]),
                                    np.concatenate([yt, yv]))
        val_set = _VecSet(xv, yv)
    else:
        if spec.spec_augment is not None:
            net.spec_augment = _spec_augment(spec)
        stats = data.speaker_stats(spec, net) if setting == "spknorm" else None
        n = int(spec.crop_s * data.sr)
        copies = data.copies(spec.augment, [r.id for r in [*train, *val]])

        def waveset(recs: Sequence[Record], is_train: bool) -> _WaveSet:
            variants = [[data.waves[r.id], *(copies.get(r.id, []) if is_train else [])]
                        for r in recs]
            st = [stats[data.speaker_of(r.id)] if stats else None for r in recs]
            return _WaveSet(variants, st, labels_of(recs, classes), n, is_train, seed)

        yt = labels_of(train, classes)
        make_train = lambda: waveset(train, True)
        make_both = lambda: waveset([*train, *val], True)
        val_set = waveset(val, False)

    loader = _loaders(train_cfg)
    cw = class_weights(yt, n_classes) if train_cfg.class_weighted else None
    epochs = 1 if quick else (spec.epochs or train_cfg.max_epochs)
    module = _lightning_module(net, class_weights=cw, lr=train_cfg.lr,
                               weight_decay=train_cfg.weight_decay, mixup=spec.mixup,
                               max_epochs=epochs)
    with tempfile.TemporaryDirectory(prefix="emofuse-fit-") as tmp:
        res = fit(module, loader(make_train(), True), loader(val_set, False),
                  max_epochs=epochs, patience=train_cfg.patience, out_dir=tmp, seed=seed,
                  monitor="val_ua", mode="max", resume=False, progress=False,
                  deterministic=train_cfg.deterministic, num_threads=train_cfg.num_threads,
                  **train_cfg.hardware(),
                  gradient_clip_val=5.0)
    hist = [h for h in res.history if "val_ua" in h]
    best_epoch = int(max(hist, key=lambda h: h["val_ua"])["epoch"]) + 1 if hist else epochs
    info = {"best_epoch": best_epoch, "epochs_run": res.epochs_run,
            "val_ua": None if res.best_score is None else round(res.best_score, 4),
            "fit_s": round(res.seconds, 1)}
    net.eval()
    val_p = _net_proba(net, val_set, n_classes)
    if spec.refit and not quick:
        seed_everything(seed + 1, train_cfg.deterministic)
        net2 = build_model(spec.name, n_classes=n_classes, **net_params(spec, setting),
                           **({"dim": extra["dim"]} if spec.kind == "vector" else {}))
        if spec.kind == "vector":
            both = make_both()
            net2.set_scaler(both.x.mean(0), both.x.std(0))
        elif spec.spec_augment is not None:
            net2.spec_augment = _spec_augment(spec)
        module2 = _lightning_module(net2, class_weights=cw, lr=train_cfg.lr,
                                    weight_decay=train_cfg.weight_decay, mixup=spec.mixup,
                                    max_epochs=best_epoch)
        with tempfile.TemporaryDirectory(prefix="emofuse-refit-") as tmp:
            res2 = fit(module2, loader(make_both(), True), loader(val_set, False),
                       max_epochs=best_epoch, patience=best_epoch + 1, out_dir=tmp,
                       seed=seed + 1, monitor="val_ua", mode="max", resume=False,
                       progress=False, deterministic=train_cfg.deterministic,
                       num_threads=train_cfg.num_threads, restore_best=False,
                       **train_cfg.hardware(),
                       gradient_clip_val=5.0)
        info["refit_s"] = round(res2.seconds, 1)
        net = net2
    net.spec_augment = _identity() if hasattr(net, "spec_augment") else None
    net.eval()
    return net, val_p, info


def _spec_augment(spec: MemberSpec) -> Any:
    from ..train.augment_audio import SpecAugment

    assert spec.spec_augment is not None
    return SpecAugment(**spec.spec_augment.model_dump(exclude_unset=True))


def _identity() -> Any:
    from torch import nn

    return nn.Identity()


def _loaders(train_cfg: TrainConfig):
    from torch.utils.data import DataLoader

    def make(ds: Any, train: bool) -> DataLoader:
        return DataLoader(ds, batch_size=train_cfg.batch_size if train else 64,
                          shuffle=train, drop_last=train and len(ds) > train_cfg.batch_size,
                          num_workers=0)

    return make


def _net_proba(net: Any, ds: Any, n_classes: int) -> np.ndarray:
    """Softmax outputs of a network over a dataset (its evaluation crops)."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(ds), 64):
            items = [ds[j] for j in range(i, min(len(ds), i + 64))]
            x = torch.stack([a for a, _, _ in items])
            st = torch.stack([s for _, s, _ in items]) if items[0][1].numel() else None
            out.append(torch.softmax(net(x, st), dim=1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, n_classes))
