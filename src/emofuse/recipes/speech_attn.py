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
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig, load_config
from ..corpora import Record
from ..errors import ConfigError
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import results_dir
from ..media.limits import SPEECH_SR
from ._common import run_folds, scalar_metric
from ._speech_attn_head import (AttnParams, Clips, FramesParams, FrameStore, HeadSpec, fit_head,
                                head_proba, parse_head)
from ._speech_params import SETTINGS
from ._suite import Suite, fold_records, usable_folds
from .speech import _confusion

__all__ = ["FrameStore", "HeadSpec", "SerRavdessWhisperAttn", "fit_head", "parse_head",
           "run_benchmark", "select"]


# --------------------------------------------------------------------------------------------
# Benchmark


def _prepare(cfg: RunConfig, *, quick: bool
             ) -> tuple[FrameStore, list[Record], list[str], list[protocols.Split]]:
    """The frame store of the corpus' clips, the clips it holds, the classes and the folds
    restricted to those clips (:func:`~emofuse.recipes._suite.fold_records`)."""
    if cfg.features.name != "whisper_frames":
        raise ConfigError(f"suite {cfg.suite}: features.name must be whisper_frames")
    records, classes, splits = fold_records(cfg, quick=quick)
    f = FramesParams.of(cfg.features, where="features.params")
    store = FrameStore(records, layers=f.layers, padding=f.padding, stride=f.stride)
    splits = usable_folds(splits, set(store.index), folds=None, quick=quick)
    return store, store.records, classes, splits


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
            h = np.stack(whisper_frames(y, sr=SPEECH_SR, layers=store.layers, padding=padding), 1)
            h = store._pool(h.astype(np.float16)).astype(np.float32)
            with torch.inference_mode():
                net(torch.from_numpy(h[None]), None)
            times.append(time.thread_time() - t0)
        return round(1000 * float(np.median(times)), 2)
    finally:
        torch.set_num_threads(threads)


class SerRavdessWhisperAttn(Suite, name="ser-ravdess-whisper-attn", modality="speech-attn",
                            task_modality="speech", quick_seeds=1,
                            params={"model": AttnParams, "features": FramesParams}):
    """RAVDESS, small trained head (layer weights + attentive pooling) over frozen Whisper-base
    encoder frames (EmoBox folds)"""

    def body(self) -> dict[str, Any]:
        """Every setting, fold and seed of the suite; the result dict and confusion PNG(s)."""
        from ..evaluate.plots import plot_confusion

        cfg, quick = self.cfg, self.quick
        head, settings, _ = parse_head(cfg)
        train_cfg = cfg.train.model_copy(update={"seeds": self.seeds}) if quick else cfg.train
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
                p = head_proba(net, Clips(store, [r.id for r in test], y,
                                          spk if setting == "spknorm" else None))
                info = {**info, "val_actors": sorted({store.speaker[r.id] for r in val}),
                        "test_actors": sorted({store.speaker[r.id] for r in test})}
                infos.append(info)
                last[:] = [net]
                return p, info

            parts[SETTINGS[setting]] = run_folds(splits, recs, classes, fit_predict,
                                                 seeds=train_cfg.seeds,
                                                 val_fraction=train_cfg.val_fraction)
            metrics_extra[f"wall_{setting}_s"] = scalar_metric(time.perf_counter() - t0)
            metrics_extra[f"cpu_{setting}_s"] = scalar_metric(time.process_time() - c0)
            runs[setting] = infos
        if last and not quick:
            padding = FramesParams.of(cfg.features, where="features.params").padding
            metrics_extra["infer_3s_ms"] = scalar_metric(_inference_ms(store, last[0], padding))
        suite_name = cfg.suite + ("-quick" if quick else "")
        result = self.result(protocol=cfg.protocol.kind, classes=classes, parts=parts,
                             notes=_notes(head, cfg, settings), settings=settings, runs=runs,
                             skipped=store.skipped)
        result["metrics"].update(metrics_extra)
        for suffix, outs in parts.items():
            title = f"{suite_name} ({'inductive' if not suffix else suffix[1:]})"
            png = plot_confusion(_confusion(outs, classes), classes,
                                 results_dir() / f"{suite_name}{suffix.replace('_', '-')}.png",
                                 title=title)
            result["confusion_png" + suffix] = str(png)
        result["seed_spread"] = {k: v.get("per_seed") for k, v in result["metrics"].items()
                                 if k.startswith("ua") and "per_seed" in v}
        result["notes"] += " " + _summary(result, runs, quick)
        return result


run_benchmark = ser_ravdess_whisper_attn = SerRavdessWhisperAttn.run


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


def _notes(head: HeadSpec, cfg: RunConfig, settings: Sequence[str]) -> str:
    t = cfg.train
    f = FramesParams.of(cfg.features, where="features.params")
    return (
        f"Model: a small head trained over frozen Whisper-base encoder frames (blocks "
        f"{f.layers}, averaged over {f.stride}"
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


# --------------------------------------------------------------------------------------------
# Choosing the hyper-parameters (validation actors only)


def select(cfg: RunConfig, *, folds: Sequence[int] | None = None, settings: Sequence[str] = (),
           only: Sequence[int] | None = None, log: Any = print) -> dict[str, Any]:
    """Compare the config's head and each ``model.params.pool`` candidate on the validation
    actors of each outer training fold (the same actors as the benchmark's early stopping;
    the test actors are never loaded into a fit nor scored). Returns the mean validation UA
    per candidate and setting."""
    head, cfg_settings, pool = parse_head(cfg)
    candidates = [{}] + [c.model_dump(exclude_unset=True) for c in pool]
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
