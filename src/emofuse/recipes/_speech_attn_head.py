"""The ``ser-ravdess-whisper-attn`` head and its data: the typed ``model.params`` /
``features.params``, the frame-state store (frame-level Whisper-base states, float16, cached
once per clip), and the training of one head with Lightning (:func:`fit_head`)."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from ..config import Params, RunConfig, TrainConfig
from ..corpora import Record
from ..errors import ConfigError, EmofuseError
from ..features.cache import FeatureCache
from ..media.limits import SPEECH_SR
from ._speech_params import Setting, settings_list
from ._speech_torch import class_weights, classifier_module

__all__ = [
    "AttnParams",
    "Clips",
    "FrameStore",
    "FramesParams",
    "HeadSpec",
    "PoolEntry",
    "fit_head",
    "head_proba",
    "parse_head",
]

_HEAD_KEYS = ("layers", "hidden", "attn_hidden", "dropout", "meanstd")
#: Cache entry version of the frame states (bump when the stored arrays change).
_FRAMES_VERSION = 1


# --------------------------------------------------------------------------------------------
# Typed parameters


class FramesParams(Params):
    """``features.params`` of ``whisper_frames``: which encoder states are stored."""

    #: encoder blocks whose frame states are extracted (0: embedding, 1-6: blocks)
    layers: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6], min_length=1)
    #: ``clip`` (the clip's own length) or ``30s`` (Whisper's padded window)
    padding: Literal["clip", "30s"] = "clip"
    #: frames averaged in memory (2: 25 frames a second)
    stride: int = Field(default=2, ge=1)


class PoolEntry(Params):
    """One candidate of ``model.params.pool``: overrides of the head's values (unset: kept)."""

    layers: list[int] | None = Field(default=None, min_length=1)
    hidden: int | None = Field(default=None, gt=0)
    attn_hidden: int | None = Field(default=None, gt=0)
    dropout: float | None = Field(default=None, ge=0, lt=1)
    meanstd: bool | None = None
    #: optimiser overrides (``null``: the config's ``train`` values)
    lr: float | None = Field(default=None, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)


class AttnParams(Params):
    """``model.params`` of the ``whisper_attn`` head."""

    #: settings to run and report
    settings: list[Setting] = Field(default_factory=lambda: ["inductive", "spknorm"],
                                    min_length=1)
    #: encoder blocks the head weighs (among ``features.params.layers``)
    layers: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6], min_length=1)
    #: per-frame projection size
    hidden: int = Field(default=128, gt=0)
    #: hidden size of the attention scorer
    attn_hidden: int = Field(default=64, gt=0)
    dropout: float = Field(default=0.3, ge=0, lt=1)
    #: pool mean and std beside the attentive pooling
    meanstd: bool = True
    #: candidates compared by ``select`` on validation actors (overrides of the above)
    pool: list[PoolEntry] = Field(default_factory=list)

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_list(cls, v: Any) -> Any:
        return settings_list(v)


# --------------------------------------------------------------------------------------------
# Frame states


class FrameStore:
    """Frame-level encoder states of every record, in one float16 array ``(frames, L, 512)``
    with each record's ``(start, length)``; extracted once per clip into the feature cache."""

    def __init__(self, records: Sequence[Record], *, layers: Sequence[int] = (1, 2, 3, 4, 5, 6),
                 padding: str = "clip", stride: int = 2, cache: FeatureCache | None = None,
                 log: Any = print) -> None:
        from ..features.whisper import whisper_frames
        from ..media import load_audio

        self.layers = [int(v) for v in layers]
        if int(stride) < 1:
            raise ConfigError("features.params.stride: a positive number of frames")
        self.stride = int(stride)
        cache = cache or FeatureCache()
        settings = {"feature": "whisper_frames", "version": _FRAMES_VERSION,
                    "layers": self.layers, "padding": padding, "dtype": "float16"}

        def extract(path: Any) -> np.ndarray:
            y = load_audio(path, sr=SPEECH_SR)[0]
            states = whisper_frames(y, sr=SPEECH_SR, layers=self.layers, padding=padding)
            return np.stack(states, axis=1).astype(np.float16)      # (T, L, 512)

        chunks, self.index, self.skipped, kept = [], {}, [], []
        start, t0, misses = 0, time.perf_counter(), cache.misses
        for i, r in enumerate(records):
            try:
                h = np.asarray(cache.get_or_compute(r.audio, settings, extract))
            except EmofuseError as exc:
                self.skipped.append({"id": r.id, "path": str(r.audio), "reason": str(exc)})
                continue
            h = self._pool(h)
            chunks.append(h)
            self.index[r.id] = (start, len(h))
            start += len(h)
            kept.append(r)
            if log and (i + 1) % 200 == 0:
                log(f"  whisper frames: {i + 1}/{len(records)} clips "
                    f"({cache.misses - misses} extracted, {time.perf_counter() - t0:.0f} s)")
        self.records = kept
        self.x = np.concatenate(chunks) if chunks else np.zeros((0, len(self.layers), 512),
                                                                 np.float16)
        self.speaker = {r.id: r.speaker or f"id:{r.id}" for r in kept}

    def _pool(self, h: np.ndarray) -> np.ndarray:
        if self.stride == 1:
            return h
        n = max(1, len(h) // self.stride)
        if len(h) < self.stride:
            return h.astype(np.float32).mean(0, keepdims=True).astype(np.float16)
        return (h[:n * self.stride].astype(np.float32)
                .reshape(n, self.stride, *h.shape[1:]).mean(1).astype(np.float16))

    def frames(self, rid: str) -> np.ndarray:
        s, n = self.index[rid]
        return self.x[s:s + n]

    def stats(self, ids: Sequence[str]) -> np.ndarray:
        """``(2, L, 512)`` mean and std (floored) over all frames of the clips ``ids``."""
        s1 = np.zeros(self.x.shape[1:], np.float64)
        s2 = np.zeros_like(s1)
        n = 0
        for rid in ids:
            f = self.frames(rid).astype(np.float64)
            s1 += f.sum(0)
            s2 += (f * f).sum(0)
            n += len(f)
        mean = s1 / max(n, 1)
        sd = np.sqrt(np.maximum(s2 / max(n, 1) - mean * mean, 0.0))
        sd = np.maximum(sd, 1e-6 + 1e-3 * sd.mean())
        return np.stack([mean, sd]).astype(np.float32)

    def normalised(self, spk_stats: Mapping[str, np.ndarray]) -> FrameStore:
        """A view of this store whose frames are standardised per speaker (float16, made
        once per ``spk_stats`` object)."""
        if getattr(self, "_norm", (None, None))[0] is not spk_stats:
            x = np.empty_like(self.x)
            for rid, (s, n) in self.index.items():
                st = spk_stats[self.speaker[rid]]
                x[s:s + n] = (self.x[s:s + n].astype(np.float32) - st[0]) / st[1]
            view = object.__new__(FrameStore)
            view.__dict__.update({k: v for k, v in self.__dict__.items() if k != "_norm"})
            view.x = x
            self._norm = (spk_stats, view)
        return self._norm[1]

    def speaker_stats(self) -> dict[str, np.ndarray]:
        """Per-speaker statistics over all that speaker's clips (unlabelled)."""
        groups: dict[str, list[str]] = {}
        for rid, spk in self.speaker.items():
            groups.setdefault(spk, []).append(rid)
        return {s: self.stats(ids) for s, ids in groups.items()}


# --------------------------------------------------------------------------------------------
# The head and its training


@dataclasses.dataclass
class HeadSpec:
    """Hyper-parameters of one head (see :class:`~emofuse.models.whisper_attn.WhisperAttnHead`)
    and its optimiser's ``lr`` / ``weight_decay`` (``None``: the config's ``train`` values)."""

    layers: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    hidden: int = 128
    attn_hidden: int = 64
    dropout: float = 0.3
    meanstd: bool = True
    lr: float | None = None
    weight_decay: float | None = None

    def head_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _HEAD_KEYS}

    def replace(self, overrides: PoolEntry | Mapping[str, Any]) -> HeadSpec:
        """This head with a pool candidate's overrides."""
        entry = PoolEntry.of(overrides, where="model.params.pool")
        return dataclasses.replace(self, **entry.model_dump(exclude_unset=True))


def parse_head(cfg: RunConfig) -> tuple[HeadSpec, list[str], list[PoolEntry]]:
    """The head, the settings and the selection pool of a config."""
    if cfg.task.modality != "speech":
        raise ConfigError(f"suite {cfg.suite}: task.modality must be speech")
    if cfg.model.name != "whisper_attn":
        raise ConfigError(f"suite {cfg.suite}: model.name must be whisper_attn")
    p = AttnParams.of(cfg.model)
    head = HeadSpec(**p.model_dump(include=set(_HEAD_KEYS)))
    fl = FramesParams.of(cfg.features, where="features.params").layers
    for h in [head, *(head.replace(c) for c in p.pool)]:
        if any(v not in fl for v in h.layers):
            raise ConfigError(f"model.params.layers {h.layers}: not all among the extracted "
                              f"features.params.layers {fl}")
    return head, list(p.settings), list(p.pool)


class Clips:
    """Dataset of clips: frames (float16, optionally standardised per speaker), label."""

    def __init__(self, store: FrameStore, ids: Sequence[str], labels: np.ndarray,
                 spk_stats: Mapping[str, np.ndarray] | None) -> None:
        self.store, self.ids, self.labels, self.spk_stats = store, list(ids), labels, spk_stats

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rid = self.ids[i]
        if self.spk_stats is None:
            return self.store.frames(rid), int(self.labels[i])
        return self.store.normalised(self.spk_stats).frames(rid), int(self.labels[i])


def _collate(items: Sequence[tuple[np.ndarray, int]]) -> tuple[Any, Any, Any]:
    import torch

    t = max(len(x) for x, _ in items)
    x = np.zeros((len(items), t, *items[0][0].shape[1:]), np.float16)
    mask = np.zeros((len(items), t), bool)
    for i, (a, _) in enumerate(items):
        x[i, :len(a)] = a
        mask[i, :len(a)] = True
    return (torch.from_numpy(x), torch.from_numpy(mask),
            torch.tensor([y for _, y in items], dtype=torch.long))


def _clip_inputs(batch: Any) -> tuple[tuple, Any]:
    x, mask, y = batch
    return (x, mask), y


def _module(net: Any, *, class_weights: np.ndarray | None, lr: float, weight_decay: float,
            max_epochs: int) -> Any:
    return classifier_module(net, inputs=_clip_inputs, class_weights=class_weights, lr=lr,
                             weight_decay=weight_decay, max_epochs=max_epochs,
                             loss_mean="weight")


def head_proba(net: Any, ds: Clips, *, batch: int = 32) -> np.ndarray:
    """Softmax outputs over whole clips (batched by similar length)."""
    import torch

    order = sorted(range(len(ds)), key=lambda i: ds.store.index[ds.ids[i]][1])
    out = np.zeros((len(ds), net.fc.out_features))
    net.eval()
    with torch.inference_mode():
        for k in range(0, len(order), batch):
            idx = order[k:k + batch]
            x, mask, _ = _collate([ds[i] for i in idx])
            out[idx] = torch.softmax(net(x, mask), 1).double().numpy()
    return out


def fit_head(store: FrameStore, head: HeadSpec, train: Sequence[Record], val: Sequence[Record],
             *, classes: Sequence[str], setting: str, seed: int, train_cfg: TrainConfig,
             spk_stats: Mapping[str, np.ndarray] | None = None, quick: bool = False
             ) -> tuple[Any, np.ndarray, dict[str, Any]]:
    """Train one head on ``train``, early-stopped on the validation UA of ``val`` (actors of
    the training fold); returns the net (best epoch's weights), its validation probabilities
    and facts for the result."""
    import torch
    from torch.utils.data import DataLoader

    from ..models import (
        build_model,
        whisper_attn,  # noqa: F401  (registers the model)
    )
    from ..train import fit, seed_everything

    if train_cfg.num_threads:
        torch.set_num_threads(train_cfg.num_threads)
    seed_everything(seed, train_cfg.deterministic)
    index = {c: i for i, c in enumerate(classes)}
    yt = np.array([index[r.label] for r in train])
    yv = np.array([index[r.label] for r in val])
    net = build_model("whisper_attn", n_classes=len(classes), stored_layers=store.layers,
                      **head.head_params())
    norm = spk_stats if setting == "spknorm" else None
    if norm is None:
        st = store.stats([r.id for r in train])
        net.set_scaler(st[0], st[1])
    train_ds = Clips(store, [r.id for r in train], yt, norm)
    val_ds = Clips(store, [r.id for r in val], yv, norm)
    epochs = 1 if quick else train_cfg.max_epochs
    cw = class_weights(yt, len(classes)) if train_cfg.class_weighted else None
    module = _module(net, class_weights=cw, lr=head.lr or train_cfg.lr,
                     weight_decay=train_cfg.weight_decay if head.weight_decay is None
                     else head.weight_decay, max_epochs=epochs)
    gen = torch.Generator().manual_seed(seed)
    tl = DataLoader(train_ds, batch_size=train_cfg.batch_size, shuffle=True, generator=gen,
                    drop_last=len(train_ds) > train_cfg.batch_size, collate_fn=_collate,
                    num_workers=0)
    vl = DataLoader(val_ds, batch_size=64, shuffle=False, collate_fn=_collate, num_workers=0)
    with tempfile.TemporaryDirectory(prefix="emofuse-attn-") as tmp:
        res = fit(module, tl, vl, max_epochs=epochs, patience=train_cfg.patience, out_dir=tmp,
                  seed=seed, monitor="val_ua", mode="max", resume=False, progress=False,
                  deterministic=train_cfg.deterministic, num_threads=train_cfg.num_threads,
                  gradient_clip_val=5.0, **train_cfg.hardware())
    hist = [h for h in res.history if "val_ua" in h]
    best = max(hist, key=lambda h: h["val_ua"]) if hist else {}
    net.eval()
    val_p = head_proba(net, val_ds)
    info = {"best_epoch": int(best.get("epoch", epochs - 1)) + 1, "epochs_run": res.epochs_run,
            "val_ua": None if res.best_score is None else round(float(res.best_score), 4),
            "fit_s": round(res.seconds, 1), "layer_weights": net.layer_weights()}
    return net, val_p, info

