"""Speech emotion recognition: benchmark suites, ``emofuse train`` and ``emofuse evaluate``.

A run is described by one config (``configs/ser-*.yaml``). ``model.name`` is a registered
speech model (``cnn2d``, ``bilstm_attn``, ``wavegram_logmel``, ``fercnn``, ``svm``,
``logreg``) or ``ensemble``. Besides the model's own constructor parameters, ``model.params``
may hold these recipe keys (typed by :class:`~emofuse.recipes._speech_params.SpeechParams`,
checked with their YAML lines when the config loads):

``settings``
    ``[inductive, spknorm]`` (default both): which settings to run and report. *inductive*:
    nothing from the test speakers is used; waveform models normalise each utterance by its
    own statistics, vector models standardise with training-fold statistics. *spknorm*: every
    speaker's features (mel bands, or feature-vector entries) are standardised with the mean and
    std of all that speaker's utterances, unlabelled, test speakers included; metrics get the
    suffix ``_spknorm``.
``fit``
    Training options of a network: ``crop_s``, ``window_s``, ``augment`` (``copies`` + the
    fields of :class:`~emofuse.train.augment_audio.WaveAugment`), ``spec_augment``, ``mixup``,
    ``n_models`` (seed ensemble), ``refit`` (retrain on training + validation data for the
    best epoch count), ``epochs``; for classical members ``speeds``: speed-perturbation
    factors whose feature vectors are added as training copies (simulated speakers);
    ``settings``: the settings a member takes part in (default all).
``grid``
    Classical models: the hyper-parameter grid searched by speaker-grouped CV inside the
    training fold.
``features``
    A member's own vector feature ``{name, params}`` (default: the config's ``features``).

An ``ensemble`` lists ``members`` (each ``{name, params, fit, grid, features}``) and
``weights``: ``val`` (chosen on the validation part of each training fold) or a list.
Validation data always come from the training fold (:func:`~emofuse.recipes._common.run_folds`).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig, dump_config
from ..corpora import Record
from ..errors import ConfigError, DataError, EmofuseError
from ..evaluate.calibration import fit_temperature
from ..evaluate.calibration import nll as val_nll
from ..evaluate.metrics import classification_metrics
from ..evaluate.results import results_dir
from ._common import class_list, load_records, run_folds, scalar_metric
from ._speech_fit import (SETTINGS, Fitted, MemberSpec, SpeechData, as_output_norm, fit_member,
                          member_proba, raw_view)
from ._speech_params import SpeechParams
from ._suite import Suite

__all__ = ["RunSpec", "SpeechSuite", "choose_weights", "evaluate", "parse_run", "run_benchmark",
           "train", "SerRavdess", "SerSavee", "SerRavdessEgemapsSvm", "SerSaveeEgemapsSvm",
           "SerRavdessLda", "SerRavdessCnn2d", "SerRavdessBilstm", "SerRavdessWavegram",
           "SerRavdessFercnn", "SerRavdessWhisper", "SerSaveeWhisper"]

#: range searched for a speech model's temperature (linear discriminants can need > 50)
TEMPERATURE_BOUNDS = (0.1, 316.2)

# --------------------------------------------------------------------------------------------
# Configs


@dataclasses.dataclass
class RunSpec:
    """A parsed speech run: members, how to weight them, settings, scoring window."""

    members: list[MemberSpec]
    weights: str | list[float] = "val"
    settings: list[str] = dataclasses.field(default_factory=lambda: ["inductive", "spknorm"])

    @property
    def window_s(self) -> float:
        return max(m.window_s for m in self.members)


def parse_run(cfg: RunConfig) -> RunSpec:
    """The members, weights and settings of a speech config (see the module docstring and
    :class:`~emofuse.recipes._speech_params.SpeechParams`)."""
    p = SpeechParams.of(cfg.model)
    feat, fparams = cfg.features.name, dict(cfg.features.params)
    if cfg.model.name == "ensemble":
        single = sorted({*p.model_params, *({"fit", "grid", "features"} & p.model_fields_set)})
        if single:
            raise ConfigError(f"model.params: unknown keys for an ensemble: {single}")
        if not p.members:
            raise ConfigError("model.params.members: an ensemble needs a list of members")
        members = [MemberSpec.of(e, default_feature=feat, default_feature_params=fparams,
                                 where=f"model.params.members[{i}]")
                   for i, e in enumerate(p.members)]
        return RunSpec(members, p.weights, list(p.settings))
    if ensemble_only := sorted({"members", "weights"} & p.model_fields_set):
        raise ConfigError(f"model.params: {ensemble_only} are for model.name 'ensemble'")
    entry = {"name": cfg.model.name, "params": p.model_params, "fit": p.fit or {},
             "grid": p.grid, "features": p.features}
    return RunSpec([MemberSpec.of(entry, default_feature=feat, default_feature_params=fparams,
                                  where="model")], "val", list(p.settings))


def _quick(spec: RunSpec) -> RunSpec:
    """Smoke-run version: one model per member, no copies, short crops, first grid values."""
    members = []
    for m in spec.members:
        members.append(dataclasses.replace(
            m, n_models=1, refit=False, crop_s=min(m.crop_s, 1.0), speeds=m.speeds[:1],
            augment=m.augment.model_copy(update={"copies": min(1, m.augment.copies)})
            if m.augment else None,
            grid={k: list(v)[:1] for k, v in m.grid.items()} if m.grid else None))
    return dataclasses.replace(spec, members=members)


# --------------------------------------------------------------------------------------------
# Ensembles


def choose_weights(val_probas: Sequence[np.ndarray], y: np.ndarray, *, step: float = 0.1
                   ) -> list[float]:
    """Member weights (on a simplex grid of ``step``) that maximise validation UA; ties go to
    the most even weighting."""
    m = len(val_probas)
    if m == 1:
        return [1.0]
    n = int(round(1 / step))
    best: tuple[float, float, tuple[float, ...]] = (-1.0, 0.0, (1.0 / m,) * m)
    for combo in itertools.product(range(n + 1), repeat=m - 1):
        if sum(combo) > n:
            continue
        w = (*[c / n for c in combo], (n - sum(combo)) / n)
        p = sum(wi * pi for wi, pi in zip(w, val_probas))
        ua = _ua(y, p.argmax(1), p.shape[1])
        evenness = -float(np.std(w))
        if (ua, evenness) > best[:2]:
            best = (ua, evenness, w)
    return [float(x) for x in best[2]]


def _ua(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    recalls = [np.mean(pred[y == c] == c) for c in range(n_classes) if np.any(y == c)]
    return float(np.mean(recalls)) if recalls else 0.0


# --------------------------------------------------------------------------------------------
# Benchmarks


class SpeechSuite(Suite, modality="speech", params={"model": SpeechParams}):
    """A speech run (see the module docstring): every setting, fold and seed; the confusion
    PNG of each setting goes to the results folder. Unregistered: the runner of
    ``emofuse bench --config`` for a speech config naming no registered suite; each committed
    suite below is a subclass named by its config."""

    def body(self) -> dict[str, Any]:
        from ..evaluate.plots import plot_confusion

        cfg, quick = self.cfg, self.quick
        spec = parse_run(cfg)
        records, classes, splits = self.fold_records()
        if quick:
            spec = _quick(spec)
        data = SpeechData(records)
        for m in spec.members:
            if m.kind != "waveform":
                data.vectors(m.feature or "", m.feature_params)
        kept = set(data.by_id) - {s["id"] for s in data.skipped}
        splits = self.usable_folds(splits, kept)
        recs = [r for r in data.records if r.id in kept]
        parts, wall, cpu, notes_runs, infer = {}, {}, {}, {}, None
        reuse: dict[tuple, Fitted] = {}   # inductive networks reused by spknorm "output"
        for setting in spec.settings:
            t0, c0 = time.perf_counter(), time.process_time()
            fp, runs, last = _fold_runner(spec, data, classes, setting, cfg, quick, reuse)
            parts[SETTINGS[setting]] = run_folds(splits, recs, classes, fp, seeds=self.seeds,
                                                 val_fraction=cfg.train.val_fraction)
            wall[setting] = time.perf_counter() - t0
            cpu[setting] = time.process_time() - c0
            notes_runs[setting] = runs
            if infer is None and last:
                infer = _inference_ms(last[-1], data)
        result = self.result(protocol=cfg.protocol.kind, classes=classes, parts=parts,
                             notes=_notes(spec, cfg), settings=spec.settings, runs=notes_runs,
                             skipped=data.skipped, inference_3s_ms_per_member=infer)
        result["metrics"].update({f"wall_{s}_s": scalar_metric(v) for s, v in wall.items()})
        result["metrics"].update({f"cpu_{s}_s": scalar_metric(v) for s, v in cpu.items()})
        if infer is not None:
            result["metrics"]["infer_3s_ms"] = scalar_metric(sum(infer.values()))
        suite_name = cfg.suite + ("-quick" if quick else "")
        for suffix in parts:
            conf = _confusion(parts[suffix], classes)
            png_path = results_dir() / f"{suite_name}{suffix.replace('_', '-')}.png"
            png = plot_confusion(conf, classes, png_path, title=f"{suite_name} "
                                 f"({'inductive' if not suffix else suffix[1:]})")
            result["confusion_png" + suffix] = str(png)
        return result


#: a speech config's run (any corpus and protocol)
run_benchmark = SpeechSuite.run


def _confusion(outs: Sequence[Any], classes: Sequence[str]) -> list[list[int]]:
    total = np.zeros((len(classes), len(classes)), dtype=int)
    for o in outs:
        total += np.asarray(classification_metrics(o.y_true, o.proba.argmax(1),
                                                   classes=classes)["confusion"])
    return total.tolist()


def _fold_runner(spec: RunSpec, data: SpeechData, classes: Sequence[str], setting: str,
                 cfg: RunConfig, quick: bool, reuse: dict[tuple, Fitted] | None = None):
    runs: list[dict[str, Any]] = []
    last: list[list[tuple[Fitted, MemberSpec]]] = []
    reuse = {} if reuse is None else reuse

    def fit_one(i: int, m: MemberSpec, train: list[Record], val: list[Record], seed: int,
                key: tuple) -> Fitted:
        output = m.spknorm == "output" and m.kind != "classical"
        if setting == "inductive" or not output:
            f = fit_member(m, data, train, val, classes=classes, setting=setting, seed=seed,
                           train_cfg=cfg.train, quick=quick)
            if setting == "inductive" and output and "spknorm" in spec.settings:
                reuse[(i, *key)] = f
            return f
        f = reuse.pop((i, *key), None) or fit_member(
            m, data, train, val, classes=classes, setting="inductive", seed=seed,
            train_cfg=cfg.train, quick=quick)
        return as_output_norm(f, [data.speaker_of(r.id) for r in val])

    active = [i for i, m in enumerate(spec.members) if m.active(setting)]

    def fit_predict(train: list[Record], val: list[Record], test: list[Record], seed: int):
        key = (tuple(sorted(r.id for r in test)), seed)
        fitted = [(fit_one(i, spec.members[i], train, val, seed, key), spec.members[i])
                  for i in active]
        yv = np.array([classes.index(r.label) for r in val])
        weights = (choose_weights([f.val_proba for f, _ in fitted], yv)
                   if spec.weights == "val" else _renormalised(spec.weights, active))
        proba = np.zeros((len(test), len(classes)))
        y = np.array([classes.index(r.label) for r in test])
        alone = []
        for w, (f, m) in zip(weights, fitted):
            p = member_proba(f.member, data, test, window_s=m.window_s,
                             stats=_stats(f.member, m, data, test))
            alone.append(round(_ua(y, p.argmax(1), len(classes)), 4))
            proba += w * p
        info = {"weights": [round(w, 2) for w in weights],
                "members": [f.info for f, _ in fitted],
                "member_test_ua": alone}
        runs.append(info)
        last[:] = [fitted]
        return proba, info

    return fit_predict, runs, last


def _renormalised(weights: Sequence[float], active: Sequence[int]) -> list[float]:
    """The fixed weights of the members taking part in a setting, summing to one."""
    w = [float(weights[i]) for i in active]
    total = sum(w)
    return [x / total for x in w] if total > 0 else [1.0 / len(w)] * len(w)


def _stats(member: Any, spec: MemberSpec, data: SpeechData, records: Sequence[Record]
           ) -> dict[str, np.ndarray] | None:
    """Per-speaker statistics a ``spknorm`` member needs (``None`` for inductive ones): of mel
    bands or feature vectors over all the speaker's utterances, or, for ``output_norm``
    networks, of the class log-probabilities over the speaker's utterances in ``records``."""
    if member.setting != "spknorm":
        return None
    if not member.output_norm:
        return data.speaker_stats(spec, member.model)
    from ..inference.speech_models import vector_stats

    p = member_proba(raw_view(member), data, records, window_s=spec.window_s)
    spk = np.array([data.speaker_of(r.id) for r in records])
    return {s: vector_stats(np.log(p[spk == s] + 1e-6)) for s in set(spk.tolist())}


def _inference_ms(fitted: list[tuple[Fitted, MemberSpec]], data: SpeechData
                  ) -> dict[str, float]:
    """Median single-thread CPU time (ms) to score a 3 s clip, per member (feature extraction
    included, file decoding excluded); the model's time is their sum. CPU time of the one
    thread equals the wall time on an idle core and, unlike wall time, does not grow when
    other jobs share the machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        y = next(iter(data.waves.values()))
        y = np.resize(y, 3 * data.sr).astype(np.float32)
        out = {}
        for i, (f, m) in enumerate(fitted):
            times = []
            for _ in range(7):
                t0 = time.thread_time()
                f.member.proba([y])
                times.append(time.thread_time() - t0)
            out[f"{i}:{m.name}"] = round(1000 * float(np.median(times)), 2)
        return out
    finally:
        torch.set_num_threads(threads)


def _notes(spec: RunSpec, cfg: RunConfig) -> str:
    members = ", ".join(f"{m.name}" + (f" on {m.feature}" if m.kind != "waveform" else "")
                        + (f" (columns {m.keys.columns})" if m.keys.columns else "")
                        + (f" (per fold, {', '.join(sorted(m.grid))} chosen among {m.grid} by "
                           "speaker-grouped cross-validation inside the training fold; the "
                           "choices are in `runs`)" if m.grid else "")
                        + (f" (+ speed-perturbed training copies x{m.speeds})" if m.speeds
                           else "")
                        + (f" [{'/'.join(m.settings)} only]" if m.settings else "")
                        for m in spec.members)
    return (
        f"Model: {members}" + (f" (weights: {spec.weights})" if len(spec.members) > 1 else "")
        + ". Settings: **inductive** (metrics `ua`, `wa`, `macro_f1`, ...): nothing from the "
        "test speakers is used; waveform models standardise each utterance's mel bands by that "
        "utterance's own statistics, vector models by training-fold statistics. "
        "**speaker-normalised** (metrics with `_spknorm`): each speaker's feature entries (or "
        "mel bands) are standardised by the mean/std of all that speaker's utterances, or, for "
        "networks marked `spknorm: output`, the inductive network's class log-probabilities are "
        "standardised per speaker over that speaker's utterances; unlabelled data, "
        "test speakers included - legitimate when a deployed system sees several utterances "
        "of its user, but not comparable with EmoBox's inductive figures. Hyper-parameters, "
        "early stopping and ensemble weights use a speaker-disjoint validation part of each "
        "training fold, never the test fold. `wall_*_s` / `cpu_*_s` are the wall and CPU time of "
        "each setting (the machine's 2 cores were shared with other jobs), `infer_3s_ms` the "
        "single-thread CPU time to score a 3 s clip (= wall time on an idle core; decoding "
        "excluded; per member in `inference_3s_ms_per_member`).")


# --------------------------------------------------------------------------------------------
# train / evaluate


def train(cfg: RunConfig, *, out_dir: str | Path, quick: bool = False) -> Path:
    """Train on the whole corpus of ``cfg`` (validation part drawn from it, speaker-disjoint)
    in the first of its settings, and save the model folder ``out_dir``."""
    from ..inference.speech_models import save_member
    from ..models.checkpoint import save_model

    if cfg.suite == "xcorpus-speech":     # the bundled model v2 (several corpora)
        from .xcorpus_model import train_bundled

        return train_bundled(cfg, out_dir=out_dir, quick=quick)
    spec = parse_run(cfg)
    if quick:
        spec = _quick(spec)
    setting = spec.settings[0]
    _, records = load_records(cfg, quick=quick)
    classes = class_list(records, cfg.data.labels)
    data = SpeechData(records)
    for m in spec.members:
        if m.kind != "waveform":
            data.vectors(m.feature or "", m.feature_params)
    kept = set(data.by_id) - {s["id"] for s in data.skipped}
    recs = [r for r in data.records if r.id in kept]
    fit_ids, val_ids = protocols.validation_split(recs, fraction=cfg.train.val_fraction,
                                                  seed=cfg.protocol.seed)
    held = set(val_ids)
    tr = [r for r in recs if r.id not in held]
    va = [r for r in recs if r.id in held]
    seed = cfg.train.seeds[0]
    fitted = []
    members = [m for m in spec.members if m.active(setting)]
    if not members:
        raise ConfigError(f"no member of the ensemble takes part in setting {setting!r}")
    for m in members:
        output = setting == "spknorm" and m.spknorm == "output" and m.kind != "classical"
        f = fit_member(m, data, tr, va, classes=classes,
                       setting="inductive" if output else setting, seed=seed,
                       train_cfg=cfg.train, quick=quick)
        fitted.append(as_output_norm(f, [data.speaker_of(r.id) for r in va]) if output else f)
    yv = np.array([classes.index(r.label) for r in va])
    weights = (choose_weights([f.val_proba for f in fitted], yv) if spec.weights == "val"
               else _renormalised(spec.weights, [i for i, m in enumerate(spec.members)
                                                 if m.active(setting)]))
    val_p = sum(w * f.val_proba for w, f in zip(weights, fitted))
    val_m = classification_metrics(yv, val_p.argmax(1), classes=classes)
    # linear discriminants are very over-confident on 1600-dim vectors: hence the wide range
    temperature = fit_temperature([val_p], [yv], bounds=TEMPERATURE_BOUNDS)
    nll = {"val_nll": round(val_nll(val_p, yv), 4),
           "val_nll_calibrated": round(val_nll(val_p, yv, temperature=temperature), 4)}
    card = {"data": {"corpus": cfg.data.corpus, "items": len(recs),
                     "train_items": len(tr), "val_items": len(va), "classes": list(classes),
                     "skipped": len(data.skipped)},
            "protocol": {"kind": "whole corpus", "validation": "speaker-disjoint part, "
                         f"fraction {cfg.train.val_fraction}"},
            "metrics": {"val_ua": val_m["ua"], "val_wa": val_m["wa"], **nll},
            "temperature": temperature,
            "window_s": spec.window_s, "config": dump_config(cfg)}
    out = Path(out_dir)
    flat: list[tuple[Any, float]] = []
    for w, f in zip(weights, fitted):
        subs = getattr(f.member, "members", None) or [f.member]
        flat += [(m, w / len(subs)) for m in subs]
    if len(flat) == 1:
        return save_member(out, flat[0][0], card)
    import torch

    entries = []
    for i, (m, w) in enumerate(flat):
        save_member(out / f"m{i}", m, card)
        entries.append({"dir": f"m{i}", "weight": w})
    return save_model(out, {"weights": torch.tensor([w for _, w in flat])},
                      {**card, "task": "speech", "kind": "ensemble", "labels": list(classes),
                       "setting": setting, "sr": data.sr, "members": entries,
                       "features": {"members": [m.feature or {"feature": "logmel-frontend"}
                                                for m, _ in flat]}})


def evaluate(model_dir: str | Path, records: Sequence[Record], *, corpus: str) -> dict[str, Any]:
    """Measure a speech model on ``records`` over the labels both share.

    Items whose canonical label the model does not know (or that have no label) are left out
    and listed in ``skipped``; the model's probabilities are restricted to the shared labels.
    A ``spknorm`` model gets each speaker's statistics from that speaker's records here.
    """
    from ..features.cache import FeatureCache
    from ..inference.speech import SpeechPredictor

    pred = SpeechPredictor(model_dir, cache=FeatureCache())
    model_labels = pred.labels
    shared = [c for c in model_labels if any(r.label == c for r in records)]
    skipped: list[dict[str, str]] = []
    usable = []
    for r in records:
        if r.audio is None:
            skipped.append({"id": r.id, "reason": "no audio"})
        elif r.label is None:
            skipped.append({"id": r.id, "path": r.audio, "reason": "no label"})
        elif r.label not in shared:
            skipped.append({"id": r.id, "path": r.audio,
                            "reason": f"label {r.label!r} is not one the model knows"})
        else:
            usable.append(r)
    if len(shared) < 2:
        raise DataError(None, f"{corpus}: the model's labels ({', '.join(model_labels)}) and "
                        "the corpus share fewer than two classes")
    speakers: dict[str, Any] = {}
    if pred.setting == "spknorm":
        groups: dict[str, list[str]] = {}
        for r in usable:
            groups.setdefault(r.speaker or f"id:{r.id}", []).append(r.audio)
        speakers = {s: pred.speaker_stats(paths) for s, paths in groups.items()}
    cols = [model_labels.index(c) for c in shared]
    y, probas = [], []
    for r in usable:
        try:
            p = pred.proba(r.audio, speaker=speakers.get(r.speaker or f"id:{r.id}"))
        except EmofuseError as exc:
            skipped.append({"id": r.id, "path": r.audio, "reason": str(exc)})
            continue
        q = p[cols]
        probas.append(q / max(q.sum(), 1e-12))
        y.append(shared.index(r.label))
    if not y:
        raise DataError(None, f"{corpus}: no item could be scored")
    proba = np.stack(probas)
    m = classification_metrics(np.array(y), proba.argmax(1), classes=shared, proba=proba)
    suffix = SETTINGS.get(pred.setting, "")
    metrics = {f"{k}{suffix}": {"mean": m[k], "std": 0.0, "per_fold": [m[k]]}
               for k in ("ua", "wa", "macro_f1", "weighted_f1", "roc_auc") if k in m}
    return {"metrics": metrics, "per_class": m["per_class"], "confusion": m["confusion"],
            "classes": shared, "model_labels": model_labels, "setting": pred.setting,
            "items": len(y), "skipped": skipped}


# --------------------------------------------------------------------------------------------
# Suites

# one per committed config (configs/<name>.yaml); the docstring is the description


class SerRavdess(SpeechSuite, name="ser-ravdess"):
    """RAVDESS speech, 8 classes, the 6 EmoBox folds: the best speech model"""


class SerSavee(SpeechSuite, name="ser-savee"):
    """SAVEE, 7 classes, 4 leave-one-speaker-out (EmoBox) folds: the best model"""


class SerRavdessEgemapsSvm(SpeechSuite, name="ser-ravdess-egemaps-svm"):
    """RAVDESS, eGeMAPS + RBF-SVM baseline (EmoBox folds)"""


class SerSaveeEgemapsSvm(SpeechSuite, name="ser-savee-egemaps-svm"):
    """SAVEE, eGeMAPS + RBF-SVM baseline (EmoBox folds)"""


class SerRavdessLda(SpeechSuite, name="ser-ravdess-lda"):
    """RAVDESS, shrinkage LDA over the fused vector with speed-perturbed copies: the bundled
    speech model's recipe (EmoBox folds)"""


class SerRavdessCnn2d(SpeechSuite, name="ser-ravdess-cnn2d"):
    """RAVDESS, 2-D CNN over log-mel (EmoBox folds)"""


class SerRavdessBilstm(SpeechSuite, name="ser-ravdess-bilstm"):
    """RAVDESS, BiLSTM + attention over log-mel (EmoBox folds)"""


class SerRavdessWavegram(SpeechSuite, name="ser-ravdess-wavegram"):
    """RAVDESS, Wavegram-Logmel CNN (EmoBox folds)"""


class SerRavdessFercnn(SpeechSuite, name="ser-ravdess-fercnn"):
    """RAVDESS, FERCNN over fused hand-crafted vectors (EmoBox folds)"""


class SerRavdessWhisper(SpeechSuite, name="ser-ravdess-whisper"):
    """RAVDESS, Whisper-base encoder states (layers chosen on inner speakers) + shrinkage LDA
    (EmoBox folds)"""


class SerSaveeWhisper(SpeechSuite, name="ser-savee-whisper"):
    """SAVEE, Whisper-base encoder states (layers chosen on inner speakers) + shrinkage LDA
    (EmoBox folds)"""
