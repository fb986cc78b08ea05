"""Speech emotion recognition with a small trained head over frozen Whisper-base encoder frames
(suite ``ser-ravdess-whisper-attn``).

Frame-level hidden states of encoder blocks 1-6 (``whisper_frames``, 50 frames a second, 512
dims a block) are extracted once per clip and kept in the feature cache as float16
``(frames, 6, 512)`` arrays (the ONNX export ``encoder-L1-2-3-4-5-6`` is reused); in memory they
are averaged over ``features.params.stride`` frames. The head
(:class:`~emofuse.models.whisper_attn.WhisperAttnHead`: softmax weights over layers,
attentive pooling over frames, optional mean+std, dropout, linear) is trained with
class-weighted cross-entropy (AdamW, cosine schedule) through :func:`emofuse.train.fit`, early
stopping on the validation UA of speaker-disjoint actors drawn from the training fold
(:func:`~emofuse.recipes._common.run_folds`), never the test actors.

Settings: *inductive* (the head standardises each (layer, dim) entry with training-fold
statistics) and *spknorm* (each speaker's frames are standardised by the mean/std over all
frames of that speaker's clips, unlabelled, test speakers included; the head's scaler is then
the identity).

``model.params``: ``settings``, the head's ``layers``, ``hidden``, ``attn_hidden``,
``dropout``, ``meanstd``, and ``pool``: the candidate overrides (of those keys and of ``lr``,
``weight_decay``) compared by :func:`select` - on the validation actors of each outer
training fold only - to fix the config's values before any test fold is scored::

    python -m emofuse.recipes.speech_attn select [--config FILE] [--folds 1 2 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig, TrainConfig, dump_config, load_config
from ..corpora import Record
from ..errors import ConfigError, EmofuseError
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import results_dir
from ..features.cache import FeatureCache
from . import suite
from ._common import (
    Timer,
    class_list,
    load_records,
    make_result,
    make_splits,
    run_folds,
)
from ._speech_fit import adamw_cosine, log_val_ua
from ._speech_fit import class_weights as _class_weights
from .speech import _confusion

__all__ = ["FrameStore", "HeadSpec", "fit_head", "parse_head", "run_benchmark", "select"]

SETTINGS = {"inductive": "", "spknorm": "_spknorm"}
_HEAD_KEYS = ("layers", "hidden", "attn_hidden", "dropout", "meanstd")
_POOL_KEYS = (*_HEAD_KEYS, "lr", "weight_decay")
#: Cache entry version of the frame states (bump when the stored arrays change).
_FRAMES_VERSION = 1


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
            y = load_audio(path, sr=16000)[0]
            states = whisper_frames(y, sr=16000, layers=self.layers, padding=padding)
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

    def replace(self, overrides: Mapping[str, Any]) -> HeadSpec:
        if bad := sorted(set(overrides) - set(_POOL_KEYS)):
            raise ConfigError(f"model.params.pool: unknown keys {bad}; allowed: "
                              f"{', '.join(_POOL_KEYS)}")
        return dataclasses.replace(self, **dict(overrides))


def parse_head(cfg: RunConfig) -> tuple[HeadSpec, list[str], list[dict[str, Any]]]:
    """The head, the settings and the selection pool of a config."""
    if cfg.task.modality != "speech":
        raise ConfigError(f"suite {cfg.suite}: task.modality must be speech")
    if cfg.model.name != "whisper_attn":
        raise ConfigError(f"suite {cfg.suite}: model.name must be whisper_attn")
    params = dict(cfg.model.params)
    settings = params.pop("settings", ["inductive", "spknorm"])
    settings = [settings] if isinstance(settings, str) else list(settings)
    if bad := [s for s in settings if s not in SETTINGS] or not settings:
        raise ConfigError(f"model.params.settings: unknown {bad or 'empty'}; choose from "
                          f"{', '.join(SETTINGS)}")
    pool = list(params.pop("pool", None) or [])
    if bad := sorted(set(params) - set(_HEAD_KEYS)):
        raise ConfigError(f"model.params: unknown keys {bad}; allowed: settings, pool, "
                          f"{', '.join(_HEAD_KEYS)}")
    head = HeadSpec(**params)
    for p in pool:
        head.replace(p)                  # validates the keys
    fl = [int(v) for v in cfg.features.params.get("layers", [1, 2, 3, 4, 5, 6])]
    for h in [head, *(head.replace(p) for p in pool)]:
        if any(v not in fl for v in h.layers):
            raise ConfigError(f"model.params.layers {h.layers}: not all among the extracted "
                              f"features.params.layers {fl}")
    return head, settings, pool


class _Clips:
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


def _module(net: Any, *, class_weights: np.ndarray | None, lr: float, weight_decay: float,
            max_epochs: int) -> Any:
    import lightning.pytorch as pl
    import torch
    import torch.nn.functional as F

    class _Head(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = net
            w = torch.zeros(0) if class_weights is None else torch.tensor(class_weights)
            self.register_buffer("class_w", w.float(), persistent=False)
            self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

        def _ce(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(logits, y, weight=self.class_w if self.class_w.numel()
                                   else None)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            x, mask, y = batch
            loss = self._ce(self.net(x, mask), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            x, mask, y = batch
            logits = self.net(x, mask)
            self._val.append((logits.argmax(1), y))
            self.log("val_loss", self._ce(logits, y), on_step=False, on_epoch=True,
                     batch_size=len(y))

        def on_validation_epoch_end(self) -> None:
            log_val_ua(self)

        def configure_optimizers(self) -> Any:
            return adamw_cosine(self.net.parameters(), lr=lr, weight_decay=weight_decay,
                                max_epochs=max_epochs)

    return _Head()


def head_proba(net: Any, ds: _Clips, *, batch: int = 32) -> np.ndarray:
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
    train_ds = _Clips(store, [r.id for r in train], yt, norm)
    val_ds = _Clips(store, [r.id for r in val], yv, norm)
    epochs = 1 if quick else train_cfg.max_epochs
    cw = _class_weights(yt, len(classes)) if train_cfg.class_weighted else None
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


# --------------------------------------------------------------------------------------------
# Benchmark


def _prepare(cfg: RunConfig, *, quick: bool
             ) -> tuple[FrameStore, list[Record], list[str], list[protocols.Split]]:
    _, records = load_records(cfg)
    classes = class_list(records, cfg.data.labels)
    splits = make_splits(cfg, records)
    if quick:
        records = _quick_records(records, splits)
    fp = dict(cfg.features.params)
    if bad := sorted(set(fp) - {"layers", "padding", "stride"}):
        raise ConfigError(f"features.params: unknown keys {bad}; allowed: layers, padding, "
                          "stride")
    if cfg.features.name != "whisper_frames":
        raise ConfigError(f"suite {cfg.suite}: features.name must be whisper_frames")
    store = FrameStore(records, layers=fp.get("layers", [1, 2, 3, 4, 5, 6]),
                       padding=fp.get("padding", "clip"), stride=fp.get("stride", 2))
    kept = set(store.index)
    splits = [s for s in (_restrict(s, kept) for s in splits) if s.test and s.train]
    if quick:
        splits = splits[:1]
    return store, store.records, classes, splits


def _restrict(split: protocols.Split, kept: set[str]) -> protocols.Split:
    return dataclasses.replace(split, train=[i for i in split.train if i in kept],
                               val=[i for i in split.val if i in kept],
                               test=[i for i in split.test if i in kept])


def _quick_records(records: Sequence[Record], splits: Sequence[protocols.Split]) -> list[Record]:
    """One utterance per speaker and class, from two of the first fold's test speakers and
    three training speakers (as the speech recipe's quick runs)."""
    by_id = {r.id: r for r in records}
    test_spk = set(sorted({by_id[i].speaker for i in splits[0].test}, key=str)[:2])
    train_spk = {by_id[i].speaker for i in splits[0].train}
    chosen = test_spk | set(sorted(train_spk - test_spk, key=str)[:3])
    keep, seen = [], set()
    for r in records:
        if r.speaker in chosen and (r.speaker, r.label) not in seen:
            seen.add((r.speaker, r.label))
            keep.append(r)
    return keep


def _inference_ms(store: FrameStore, net: Any, padding: str) -> float:
    """Median single-thread CPU time (ms) to score a 3 s clip: encoder frames + head."""
    import torch

    from ..features.whisper import whisper_frames

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y = np.resize(np.sin(np.linspace(0, 3000, 16000)).astype(np.float32) * 0.1, 48000)
        times = []
        for _ in range(5):
            t0 = time.thread_time()
            h = np.stack(whisper_frames(y, sr=16000, layers=store.layers, padding=padding), 1)
            h = store._pool(h.astype(np.float16)).astype(np.float32)
            with torch.inference_mode():
                net(torch.from_numpy(h[None]), None)
            times.append(time.thread_time() - t0)
        return round(1000 * float(np.median(times)), 2)
    finally:
        torch.set_num_threads(threads)


def run_benchmark(cfg: RunConfig, *, quick: bool = False) -> dict[str, Any]:
    """Every setting, fold and seed of the suite; the result dict and confusion PNG(s)."""
    from ..evaluate.plots import plot_confusion

    head, settings, _ = parse_head(cfg)
    train_cfg = cfg.train
    if quick:
        train_cfg = train_cfg.model_copy(update={"seeds": train_cfg.seeds[:1]})
    with Timer() as timer:
        store, recs, classes, splits = _prepare(cfg, quick=quick)
        spk = store.speaker_stats() if "spknorm" in settings else None
        parts, runs, metrics_extra, last = {}, {}, {}, []
        for setting in settings:
            t0, c0 = time.perf_counter(), time.process_time()
            infos: list[dict[str, Any]] = []

            def fit_predict(train: list[Record], val: list[Record], test: list[Record],
                            seed: int, setting: str = setting, infos: list = infos):
                net, _, info = fit_head(store, head, train, val, classes=classes,
                                        setting=setting, seed=seed, train_cfg=train_cfg,
                                        spk_stats=spk, quick=quick)
                y = np.array([classes.index(r.label) for r in test])
                p = head_proba(net, _Clips(store, [r.id for r in test], y,
                                           spk if setting == "spknorm" else None))
                info = {**info, "val_actors": sorted({store.speaker[r.id] for r in val}),
                        "test_actors": sorted({store.speaker[r.id] for r in test})}
                infos.append(info)
                last[:] = [net]
                return p, info

            parts[SETTINGS[setting]] = run_folds(splits, recs, classes, fit_predict,
                                                 seeds=train_cfg.seeds,
                                                 val_fraction=train_cfg.val_fraction)
            metrics_extra[f"wall_{setting}_s"] = _scalar(time.perf_counter() - t0)
            metrics_extra[f"cpu_{setting}_s"] = _scalar(time.process_time() - c0)
            runs[setting] = infos
        if last and not quick:
            metrics_extra["infer_3s_ms"] = _scalar(
                _inference_ms(store, last[0], cfg.features.params.get("padding", "clip")))
    suite_name = cfg.suite + ("-quick" if quick else "")
    result = make_result(cfg, protocol=cfg.protocol.kind, classes=classes, parts=parts,
                         started=timer.started, duration_s=timer.seconds, primary="",
                         notes=_notes(head, cfg, settings), settings=settings, runs=runs,
                         skipped=store.skipped, config=dump_config(cfg))
    if quick:
        result["seeds"] = list(train_cfg.seeds)
    result["metrics"].update(metrics_extra)
    for suffix, outs in parts.items():
        conf = _confusion(outs, classes)
        png = plot_confusion(conf, classes, results_dir() / f"{suite_name}{suffix.replace('_', '-')}.png",
                             title=f"{suite_name} ({'inductive' if not suffix else suffix[1:]})")
        result["confusion_png" + suffix] = str(png)
    result["seed_spread"] = {k: v.get("per_seed") for k, v in result["metrics"].items()
                             if k.startswith("ua") and "per_seed" in v}
    result["notes"] += " " + _summary(result, runs, quick)
    return result


def _summary(result: dict[str, Any], runs: Mapping[str, Sequence[dict[str, Any]]],
             quick: bool) -> str:
    """One paragraph: UA per setting with its seed spread, mean layer weights, and the
    comparison with ser-ravdess-whisper (pooled mean+std + LDA) read from its result file."""
    ref: dict[str, Any] = {}
    path = results_dir() / "ser-ravdess-whisper.json"
    if not quick and path.is_file():
        try:
            ref = json.loads(path.read_text())["metrics"]
        except (OSError, ValueError, KeyError):
            ref = {}
    parts = []
    for setting, suffix in SETTINGS.items():
        m = result["metrics"].get(f"ua{suffix}")
        if not m:
            continue
        seeds = ", ".join(f"{100 * v:.2f}" for v in m.get("per_seed", []))
        text = (f"**{setting}** UA {100 * m['mean']:.2f} ± {100 * m['std']:.2f} over folds "
                f"(fold mean per seed: {seeds})")
        if f"ua{suffix}" in ref:
            r = ref[f"ua{suffix}"]["mean"]
            d = 100 * (m["mean"] - r)
            text += (f" vs ser-ravdess-whisper {100 * r:.2f}: {'+' if d >= 0 else ''}{d:.2f} "
                     f"points ({'better' if d > 0 else 'worse' if d < 0 else 'equal'})")
        lw = [r["layer_weights"] for r in runs.get(setting, []) if r.get("layer_weights")]
        if lw:
            mean_w = {k: float(np.mean([w[k] for w in lw])) for k in lw[0]}
            text += "; mean layer weights " + ", ".join(f"L{k} {v:.2f}"
                                                        for k, v in mean_w.items())
        parts.append(text)
    return "Summary: " + "; ".join(parts) + "." if parts else ""


def _scalar(v: float) -> dict[str, Any]:
    return {"mean": float(v), "std": 0.0, "per_fold": [float(v)]}


def _notes(head: HeadSpec, cfg: RunConfig, settings: Sequence[str]) -> str:
    t = cfg.train
    return (
        f"Model: a small head trained over frozen Whisper-base encoder frames (blocks "
        f"{cfg.features.params.get('layers')}, averaged over {cfg.features.params.get('stride', 2)}"
        f" frames): softmax weights over layers {head.layers}, per-frame projection to "
        f"{head.hidden} dims (GELU), attentive pooling (scores from a {head.hidden}-"
        f"{head.attn_hidden}-1 tanh MLP){' + mean and std' if head.meanstd else ''}, dropout "
        f"{head.dropout}, linear classifier; class-weighted cross-entropy, AdamW (lr "
        f"{head.lr or t.lr}, weight decay {t.weight_decay if head.weight_decay is None else head.weight_decay}), "
        f"cosine schedule, at most {t.max_epochs} epochs, early stopping (patience {t.patience}) "
        f"on the UA of validation actors drawn from the training fold (fraction "
        f"{t.val_fraction}, speaker-disjoint; the actors are in `runs`), never the test "
        "actors. The hyper-parameters were fixed in the config beforehand from a small pool "
        "compared on those validation actors only (`python -m emofuse.recipes.speech_attn "
        f"select`). Settings run: {', '.join(settings)}. **inductive** (metrics `ua`, ...): each (layer, dim) standardised "
        "by training-fold statistics; **speaker-normalised** (metrics with `_spknorm`): each "
        "speaker's frames standardised by the mean/std over all that speaker's clips, "
        "unlabelled, test speakers included (legitimate when a deployed system sees several "
        "utterances of its user; not comparable with EmoBox's inductive figures). "
        f"Seeds {list(t.seeds)}: metrics are per fold averaged over seeds, `per_seed` (and "
        "`seed_spread`) the fold mean of each seed. `wall_*_s` / `cpu_*_s`: time of each "
        "setting (2 shared cores); `infer_3s_ms`: single-thread CPU time to score a 3 s clip "
        "(encoder + head).")


@suite("ser-ravdess-whisper-attn", modality="speech-attn",
       description="RAVDESS, small trained head (layer weights + attentive pooling) over "
                   "frozen Whisper-base encoder frames (EmoBox folds)")
def ser_ravdess_whisper_attn(cfg: RunConfig, *, quick: bool = False) -> dict[str, Any]:
    return run_benchmark(cfg, quick=quick)


# --------------------------------------------------------------------------------------------
# Choosing the hyper-parameters (validation actors only)


def select(cfg: RunConfig, *, folds: Sequence[int] | None = None, settings: Sequence[str] = (),
           only: Sequence[int] | None = None, log: Any = print) -> dict[str, Any]:
    """Compare the config's head and each ``model.params.pool`` candidate on the validation
    actors of each outer training fold (the same actors as the benchmark's early stopping;
    the test actors are never loaded into a fit nor scored). Returns the mean validation UA
    per candidate and setting."""
    head, cfg_settings, pool = parse_head(cfg)
    candidates = [{}] + list(pool)
    store, recs, classes, splits = _prepare(cfg, quick=False)
    if folds:
        splits = [s for s in splits if s.fold in set(folds)]
    spk = store.speaker_stats()
    out: dict[str, Any] = {"candidates": candidates, "folds": [s.fold for s in splits],
                           "scores": {}}
    seed = cfg.train.seeds[0]
    for setting in settings or cfg_settings:
        for ci, cand in enumerate(candidates):
            if only and ci not in set(only):
                continue
            h = head.replace(cand)
            uas = []
            for split in splits:
                train = split.select(recs, "train")    # the test part is never selected
                _, val_ids = protocols.validation_split(train, fraction=cfg.train.val_fraction,
                                                        seed=split.fold or 0)
                held = set(val_ids)
                val = [r for r in train if r.id in held]
                fit_part = [r for r in train if r.id not in held]
                _, vp, info = fit_head(store, h, fit_part, val, classes=classes,
                                       setting=setting, seed=seed, train_cfg=cfg.train,
                                       spk_stats=spk)
                yv = np.array([classes.index(r.label) for r in val])
                ua = classification_metrics(yv, vp.argmax(1), classes=classes)["ua"]
                uas.append(round(float(ua), 4))
                if log:
                    log(f"{setting} cand {ci} {cand} fold {split.fold}: val UA {100 * ua:.2f} "
                        f"(epoch {info['best_epoch']}, {info['fit_s']} s)")
            out["scores"][f"{setting}:{ci}"] = {"mean": round(float(np.mean(uas)), 4),
                                                "per_fold": uas}
            if log:
                log(f"== {setting} cand {ci} {cand}: mean val UA {100 * np.mean(uas):.2f}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from . import config_path

    ap = argparse.ArgumentParser(prog="python -m emofuse.recipes.speech_attn")
    ap.add_argument("command", choices=["select"])
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--folds", type=int, nargs="*", default=None)
    ap.add_argument("--settings", nargs="*", default=[])
    ap.add_argument("--candidates", type=int, nargs="*", default=None,
                    help="only these candidates (0: the config's values, i: pool entry i)")
    ap.add_argument("--out", type=Path, default=None, help="write the scores as JSON here")
    a = ap.parse_args(argv)
    cfg = load_config(a.config or config_path("ser-ravdess-whisper-attn"))
    res = select(cfg, folds=a.folds, settings=a.settings, only=a.candidates)
    text = json.dumps(res, indent=1)
    if a.out:
        a.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
