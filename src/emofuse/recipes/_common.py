"""What every recipe shares: records and classes from a config, the splits of its protocol,
the fold loop (seeds x folds, inner validation from the training fold only) and the result."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig
from ..corpora import CorpusScan, Record, load_corpus
from ..errors import ConfigError, LeakageError
from ..evaluate.metrics import aggregate_folds, classification_metrics
from ..evaluate.results import build_result
from ..labels import CANONICAL

__all__ = [
    "FoldOutput",
    "Timer",
    "class_list",
    "load_records",
    "make_result",
    "make_splits",
    "quick_speakers",
    "restrict_split",
    "run_folds",
    "scalar_metric",
    "summarise_outputs",
]


def load_records(cfg: RunConfig, *, quick: bool = False) -> tuple[CorpusScan, list[Record]]:
    """Load ``cfg.data.corpus`` and keep records whose canonical label is in ``cfg.data.labels``
    (all labelled records when ``labels`` is None). ``quick`` keeps a small stratified subset."""
    scan = load_corpus(cfg.data.corpus, cfg.data.root, check_media=False, **cfg.data.options)
    wanted = set(cfg.data.labels) if cfg.data.labels else None
    recs = [r for r in scan.records if r.label is not None and (wanted is None or r.label in wanted)]
    if wanted is not None and (missing := wanted - {r.label for r in recs}):
        raise ConfigError(f"data.labels: {sorted(missing)} not found in {cfg.data.corpus}")
    if quick:
        recs = _quick_subset(recs)
    return scan, recs


def _quick_subset(records: list[Record], per_group_class: int = 2) -> list[Record]:
    seen: dict[tuple, int] = {}
    out = []
    for r in records:
        key = (r.group, r.label)
        if seen.get(key, 0) < per_group_class:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return out


def class_list(records: Sequence[Record], labels: Sequence[str] | None = None) -> list[str]:
    """Classes in canonical order (``labels`` as given when set)."""
    if labels:
        return list(labels)
    present = {r.label for r in records if r.label}
    return [c for c in CANONICAL if c in present] + sorted(present - set(CANONICAL))


def make_splits(cfg: RunConfig, records: Sequence[Record]) -> list[protocols.Split]:
    """The splits of ``cfg.protocol`` (leakage-checked unless ``allow_leak``)."""
    p = cfg.protocol
    kind = p.kind.replace("_", "-")
    if kind == "speaker-kfold":
        splits = protocols.speaker_kfold(records, k=p.k, seed=p.seed, allow_leak=p.allow_leak)
    elif kind == "random":
        splits = [protocols.random_split(records, seed=p.seed)]
    elif kind == "cross-corpus":
        raise ConfigError("cross_corpus runs are built by the recipe (two corpora)")
    else:
        splits = protocols.make_splits(kind, records, corpus=cfg.data.corpus,
                                       allow_leak=p.allow_leak)
    leaking = [s.name for s in splits if s.leaking]
    if leaking:
        if not p.allow_leak:
            raise LeakageError(f"protocol {p.kind!r} puts the same speakers (or items) on both "
                               f"sides of {', '.join(leaking[:3])}: its figures would be "
                               "inflated; use a speaker-independent protocol, or set "
                               "protocol.allow_leak: true to run it as a leakage audit "
                               "(results are then named <suite>-LEAKING)")
        from ..evaluate.results import mark_leaking

        mark_leaking(f"protocol {p.kind} mixes speakers or items across train and test")
    return splits


def restrict_split(split: protocols.Split, kept: set[str]) -> protocols.Split:
    """``split`` with only the ids in ``kept`` (e.g. the records whose audio decoded)."""
    return dataclasses.replace(split, train=[i for i in split.train if i in kept],
                               val=[i for i in split.val if i in kept],
                               test=[i for i in split.test if i in kept])


def quick_speakers(records: Sequence[Record], splits: Sequence[protocols.Split]
                   ) -> list[Record]:
    """A smoke run's records: one utterance per speaker and class, from two of the first
    fold's test speakers and three of its training speakers."""
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


@dataclass
class FoldOutput:
    """Test-fold predictions of one (fold, seed) run."""

    fold: int
    seed: int
    ids: list[str]
    y_true: np.ndarray
    proba: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


#: fit_predict(train, val, test, seed) -> (probabilities for test (n, C), info dict)
FitPredict = Callable[[list[Record], list[Record], list[Record], int],
                      "tuple[np.ndarray, dict[str, Any]]"]


def run_folds(splits: Sequence[protocols.Split], records: Sequence[Record], classes: Sequence[str],
              fit_predict: FitPredict, *, seeds: Sequence[int], val_fraction: float = 0.1,
              log: Callable[[str], None] | None = print) -> list[FoldOutput]:
    """Run ``fit_predict`` on every fold and seed.

    The validation records are drawn from the training fold only (speaker-grouped, stratified),
    for early stopping and model choice; the test fold is touched only for the final prediction.
    """
    index = {c: i for i, c in enumerate(classes)}
    outputs = []
    for split in splits:
        train = split.select(records, "train")
        if split.val:
            val = split.select(records, "val")
        else:
            _, val_ids = protocols.validation_split(train, fraction=val_fraction,
                                                    seed=split.fold or 0)
            held = set(val_ids)
            val = [r for r in train if r.id in held]
            train = [r for r in train if r.id not in held]
        test = split.select(records, "test")
        y = np.array([index[r.label] for r in test])
        for seed in seeds:
            t0 = time.perf_counter()
            proba, info = fit_predict(train, val, test, seed)
            info = {**info, "seconds": round(time.perf_counter() - t0, 2),
                    "n_train": len(train), "n_val": len(val), "n_test": len(test)}
            outputs.append(FoldOutput(split.fold or 0, seed, [r.id for r in test], y,
                                      np.asarray(proba), info))
            if log:
                m = classification_metrics(y, np.asarray(proba).argmax(1), classes=classes)
                log(f"  fold {split.fold} seed {seed}: UA {100 * m['ua']:.2f} "
                    f"WA {100 * m['wa']:.2f} ({info['seconds']:.0f} s)")
    return outputs


def summarise_outputs(outputs: Sequence[FoldOutput], classes: Sequence[str], *,
                      suffix: str = "") -> dict[str, Any]:
    """Per-fold metrics averaged over seeds; ``metrics``/``per_class``/``confusion`` pieces.

    Each metric also carries ``per_seed`` (the fold mean for each seed).
    """
    by_fold: dict[int, list[dict]] = {}
    by_seed: dict[int, list[dict]] = {}
    for o in outputs:
        m = classification_metrics(o.y_true, o.proba.argmax(1), classes=classes, proba=o.proba)
        by_fold.setdefault(o.fold, []).append(m)
        by_seed.setdefault(o.seed, []).append(m)
    fold_means = []
    for fold in sorted(by_fold):
        ms = by_fold[fold]
        avg = dict(ms[0])
        for k in ("ua", "wa", "accuracy", "macro_f1", "weighted_f1", "roc_auc"):
            if all(k in m for m in ms):
                avg[k] = float(np.mean([m[k] for m in ms]))
        avg["confusion"] = np.sum([m["confusion"] for m in ms], axis=0).tolist()
        for c in classes:  # keep the per-fold ROC-AUC averaged over seeds
            aucs = [m["per_class"][c]["roc_auc"] for m in ms if "roc_auc" in m["per_class"][c]]
            avg["per_class"] = {**avg["per_class"]}
            if aucs:
                avg["per_class"][c] = {**avg["per_class"][c], "roc_auc": float(np.mean(aucs))}
        fold_means.append(avg)
    agg = aggregate_folds(fold_means, suffix=suffix)
    for name, summary in agg["metrics"].items():
        base = name[: -len(suffix)] if suffix else name
        summary["per_seed"] = [float(np.mean([m[base] for m in by_seed[s]])) for s in sorted(by_seed)]
    return agg


def make_result(cfg: RunConfig, *, protocol: str, classes: Sequence[str],
                parts: dict[str, Sequence[FoldOutput]], started: _dt.datetime, duration_s: float,
                primary: str = "", **extra: Any) -> dict[str, Any]:
    """Result dict: ``parts`` maps a metric suffix (``""`` inductive, ``"_spknorm"``...) to the
    outputs of that setting; per-class figures and confusion come from ``primary``."""
    metrics: dict[str, Any] = {}
    main = None
    for suffix, outs in parts.items():
        agg = summarise_outputs(outs, classes, suffix=suffix)
        metrics.update(agg["metrics"])
        if suffix == primary or main is None:
            main = agg
    assert main is not None
    return build_result(suite=cfg.suite, corpus=cfg.data.corpus, protocol=protocol,
                        classes=classes, metrics=metrics, per_class=main["per_class"],
                        confusion=main["confusion"], seeds=list(cfg.train.seeds),
                        started=started, duration_s=duration_s, **extra)


def scalar_metric(v: float) -> dict[str, Any]:
    """One measured value (a time, a latency) in the results' metric format."""
    return {"mean": float(v), "std": 0.0, "per_fold": [float(v)]}


class Timer:
    """``with Timer() as t: ...`` then ``t.started`` (datetime) and ``t.seconds`` (the time
    spent inside the block; inside it, the time so far)."""

    def __enter__(self) -> Timer:
        self.started = _dt.datetime.now(_dt.UTC)
        self._t0 = time.perf_counter()
        self._t1: float | None = None
        return self

    def __exit__(self, *exc: object) -> None:
        self._t1 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return (self._t1 if self._t1 is not None else time.perf_counter()) - self._t0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0


def model_params(cfg: RunConfig, defaults: dict[str, Any], *,
                 nested: Sequence[str] = ()) -> dict[str, Any]:
    """``cfg.model.params`` over ``defaults``: unknown keys refused (ConfigError naming the
    known ones); the sections in ``nested`` merged one level deep."""
    unknown = sorted(set(cfg.model.params) - set(defaults))
    if unknown:
        raise ConfigError(f"model.params: unknown key(s) {', '.join(unknown)}; known: "
                          f"{', '.join(defaults)}")
    p = {**defaults, **cfg.model.params}
    for key in nested:
        p[key] = {**defaults[key], **(p[key] or {})}
    return p


def require_modality(cfg: RunConfig, modality: str) -> None:
    """Refuse a config whose task is not ``modality``."""
    if cfg.task.modality != modality:
        raise ConfigError(f"suite {cfg.suite}: task.modality must be {modality}")
