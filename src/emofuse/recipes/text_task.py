"""The text task of the official-split recipes: a corpus' records and targets per part
(train / dev / test), the cleaned inputs of one pre-processing setting, and the metrics
(single-label, and multi-label with dev-tuned thresholds and the Ekman grouping)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import protocols
from ..config import RunConfig
from ..corpora import Record, load_corpus
from ..errors import ConfigError, DataError
from ..evaluate.metrics import classification_metrics
from ..labels import GOEMOTIONS_EKMAN
from ._common import class_list, load_records
from .text_params import TextFeatureParams

__all__ = ["TextTask", "Inputs", "load_task", "feature_options", "prepare_inputs", "score",
           "tune_thresholds", "multilabel_metrics", "group_proba", "single_label_confusion",
           "label_targets", "EKMAN_GROUPS"]

EKMAN_GROUPS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise",
                                 "neutral")


# -- the task ---------------------------------------------------------------------------------


@dataclass
class TextTask:
    """A text corpus on its official split: records, targets and classes per part.

    ``y[part]`` holds class indices (single-label) or an ``(n, L)`` 0/1 matrix (multi-label).
    """

    corpus: str
    classes: list[str]
    multilabel: bool
    records: dict[str, list[Record]]
    y: dict[str, np.ndarray]
    split: protocols.Split | None = None

    @property
    def parts(self) -> tuple[str, ...]:
        return ("train", "val", "test")


def label_targets(records: Sequence[Record], classes: Sequence[str], multilabel: bool
                  ) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    if not multilabel:
        return np.array([index[r.label] for r in records], dtype=np.int64)
    Y = np.zeros((len(records), len(classes)), np.int64)
    for i, r in enumerate(records):
        for name in r.extra.get("labels") or [r.label_native]:
            if name in index:
                Y[i, index[name]] = 1
    return Y


def _quick(records: Sequence[Record], multilabel: bool, n: int) -> list[Record]:
    """A small, class-covering subset: ``n`` items per class (multi-label: per first label)."""
    seen: dict[Any, int] = {}
    out = []
    for r in records:
        key = (r.extra.get("labels") or [None])[0] if multilabel else r.label
        if seen.get(key, 0) < n:
            seen[key] = seen.get(key, 0) + 1
            out.append(r)
    return out


def load_task(cfg: RunConfig, *, quick: bool = False) -> TextTask:
    """Records and targets of ``cfg.data.corpus`` on its official split (leakage-checked).

    GoEmotions is multi-label over its scheme's labels (``data.options.scheme``); other corpora
    are single-label over canonical labels (``data.labels`` or all present).
    """
    if cfg.task.modality != "text":
        raise ConfigError(f"task.modality is {cfg.task.modality!r}; the text recipe needs 'text'")
    if cfg.protocol.kind != "official":
        raise ConfigError(f"text corpora are evaluated on their official split; protocol.kind "
                          f"is {cfg.protocol.kind!r} (use 'official')")
    if cfg.features.name != "text_clean":
        raise ConfigError(f"features.name is {cfg.features.name!r}; the text recipe's "
                          "pre-processing is 'text_clean' (options in features.params)")
    multilabel = cfg.data.corpus == "goemotions"
    if multilabel:
        scan = load_corpus(cfg.data.corpus, cfg.data.root, check_media=False, **cfg.data.options)
        records = [r for r in scan.records if r.text and r.extra.get("labels")]
        names = sorted({n for r in records for n in r.extra["labels"]})
        classes = list(cfg.data.labels or _goemotions_order(names))
    else:
        _, records = load_records(cfg)
        records = [r for r in records if r.text]
        classes = class_list(records, cfg.data.labels)
    if records and not any(r.split for r in records):
        records, split = _with_dev_part(records, cfg)
    else:
        split = protocols.official_split(records, allow_leak=cfg.protocol.allow_leak)
    if not split.val:
        raise DataError(None, f"{cfg.data.corpus}: the official split has no dev part, which "
                        "the text recipe needs for early stopping and tuning")
    parts = {p: split.select(records, p) for p in ("train", "val", "test")}
    if quick:
        sizes = {"train": 6, "val": 3, "test": 3} if multilabel else \
            {"train": 12, "val": 6, "test": 6}
        parts = {p: _quick(rs, multilabel, sizes[p]) for p, rs in parts.items()}
    y = {p: label_targets(rs, classes, multilabel) for p, rs in parts.items()}
    return TextTask(cfg.data.corpus, classes, multilabel, parts, y, split)


def _with_dev_part(records: list[Record], cfg: RunConfig
                   ) -> tuple[list[Record], protocols.Split]:
    """A user's data without any split: a group-aware dev part (speakers or dialogues kept
    on one side) for early stopping; everything else is training data; no test part."""
    import dataclasses

    fit_ids, val_ids = protocols.validation_split(records, fraction=cfg.train.val_fraction,
                                                  seed=cfg.protocol.seed)
    held = set(val_ids)
    records = [dataclasses.replace(r, split="val" if r.id in held else "train")
               for r in records]
    return records, protocols.Split(f"{cfg.data.corpus}/validation", list(fit_ids), [],
                                    list(val_ids), "validation")


def _goemotions_order(names: Sequence[str]) -> list[str]:
    from ..labels import GOEMOTIONS_28

    return [n for n in GOEMOTIONS_28 if n in names] + sorted(set(names) - set(GOEMOTIONS_28))


# -- inputs -----------------------------------------------------------------------------------


def feature_options(base: TextFeatureParams | Mapping[str, Any],
                    override: TextFeatureParams | Mapping[str, Any] | None = None
                    ) -> TextFeatureParams:
    """Pre-processing options: defaults, then ``features.params``, then a system's own."""
    return TextFeatureParams.of(base, where="features.params").merged(override)


@dataclass
class Inputs:
    """Cleaned texts, dialogue contexts and the training mask of one pre-processing setting."""

    texts: dict[str, list[str]]
    contexts: dict[str, list[str]]
    previous: dict[str, list[list[int]]]
    keep: np.ndarray  # training items kept by the emotional-content filter
    options: TextFeatureParams


def prepare_inputs(task: TextTask, options: TextFeatureParams | Mapping[str, Any]) -> Inputs:
    """Clean every text, build contexts (``context_turns``) and the training filter."""
    from ..features.text import clean_texts, dialogue_context, emotional_content, previous_turns

    opts = TextFeatureParams.of(options, where="features.params")
    texts = {p: clean_texts((r.text or "" for r in rs), **opts.clean_options())
             for p, rs in task.records.items()}
    turns = opts.context_turns
    contexts = {p: dialogue_context(rs, turns=turns, speakers=opts.context_speakers,
                                    texts=texts[p]) if turns else [""] * len(rs)
                for p, rs in task.records.items()}
    previous = {p: previous_turns(rs, turns=turns) for p, rs in task.records.items()}
    keep = np.ones(len(texts["train"]), bool)
    if opts.filter_unemotional:
        cue = emotional_content(texts["train"], vader_threshold=opts.vader_threshold)
        neutral = _neutral_rows(task)
        keep = cue | neutral
    return Inputs(texts, contexts, previous, keep, opts)


def _neutral_rows(task: TextTask) -> np.ndarray:
    """Training rows whose target is neutral only (kept by the filter whatever their text)."""
    y = task.y["train"]
    if "neutral" not in task.classes:
        return np.zeros(len(y), bool)
    j = task.classes.index("neutral")
    if task.multilabel:
        return (y[:, j] == 1) & (y.sum(1) == 1)
    return y == j


def score(task: TextTask, y: np.ndarray, proba: np.ndarray, metric: str,
          thresholds: np.ndarray | None = None) -> float:
    """``metric`` of ``proba`` against ``y`` (multi-label: after ``thresholds``)."""
    if task.multilabel:
        th = tune_thresholds(y, proba) if thresholds is None else thresholds
        return multilabel_metrics(y, proba >= th, task.classes)[metric]
    return classification_metrics(y, proba.argmax(1), classes=task.classes)[metric]


# -- multi-label ------------------------------------------------------------------------------


def tune_thresholds(Y: np.ndarray, proba: np.ndarray,
                    grid: Sequence[float] = tuple(np.round(np.arange(0.02, 0.96, 0.02), 2))
                    ) -> np.ndarray:
    """Per-label threshold maximising that label's F1 on (``Y``, ``proba``) (0.5 when the label
    never occurs)."""
    th = np.full(Y.shape[1], 0.5)
    for j in range(Y.shape[1]):
        pos = Y[:, j] == 1
        if not pos.any():
            continue
        best = -1.0
        for t in grid:
            pred = proba[:, j] >= t
            tp = np.sum(pred & pos)
            f1 = 2 * tp / max(1, pred.sum() + pos.sum())
            if f1 > best:
                best, th[j] = f1, t
    return th


def multilabel_metrics(Y: np.ndarray, pred: np.ndarray, classes: Sequence[str]
                       ) -> dict[str, Any]:
    """Macro/micro/weighted F1, exact-match accuracy and per-label P/R/F1 of 0/1 predictions.

    Rows with no predicted label are left empty (no fallback)."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    Y, pred = np.asarray(Y).astype(int), np.asarray(pred).astype(int)
    p, r, f, s = precision_recall_fscore_support(Y, pred, average=None, zero_division=0)
    return {
        "macro_f1": float(np.mean(f)),
        "micro_f1": float(f1_score(Y, pred, average="micro", zero_division=0)),
        "weighted_f1": float(f1_score(Y, pred, average="weighted", zero_division=0)),
        "exact_match": float(np.mean((Y == pred).all(1))),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(s[i])} for i, c in enumerate(classes)},
    }


def group_proba(proba: np.ndarray, classes: Sequence[str],
                mapping: Mapping[str, str] = GOEMOTIONS_EKMAN,
                groups: Sequence[str] = EKMAN_GROUPS) -> np.ndarray:
    """Group scores: the highest probability among each group's labels."""
    out = np.zeros((len(proba), len(groups)))
    for j, c in enumerate(classes):
        if c in mapping and mapping[c] in groups:
            g = groups.index(mapping[c])
            out[:, g] = np.maximum(out[:, g], proba[:, j])
    return out


def single_label_confusion(Y: np.ndarray, proba: np.ndarray) -> list[list[int]]:
    """Confusion over the test rows with one true label, against the top-scored label."""
    from sklearn.metrics import confusion_matrix

    one = Y.sum(1) == 1
    L = Y.shape[1]
    return confusion_matrix(Y[one].argmax(1), proba[one].argmax(1), labels=range(L)).tolist()
