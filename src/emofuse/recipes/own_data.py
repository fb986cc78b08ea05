"""Train on a user's own data: ``emofuse train --data DIR_OR_CSV --modality M``.

The data go through the generic loaders (:mod:`emofuse.corpora.generic`): a folder with one
sub-folder per class, a flat folder whose file names carry the label (``label_regex``: a
regular expression with a named group ``label`` and optionally ``speaker``, or a preset such as
``ravdess``), or a CSV/TSV manifest (``path`` or ``text``, ``label``, optional ``speaker`` and
``split``). Each modality gets the recipe of its bundled model, sized for a CPU:

=========  ====================================================================================
speech     a shrinkage LDA over the fused hand-crafted vector (eGeMAPS, MFCC, prosody and
           log-mel statistics) with speed-perturbed training copies (the bundled speech
           model's recipe), probabilities calibrated on the validation part
face       mini-Xception on 48x48 aligned grayscale crops (faces found with YuNet)
text       the frozen MiniLM sentence encoder with a small MLP head
=========  ====================================================================================

Validation (for early stopping and calibration) is held out of the data:

* several speakers known (manifest column ``speaker``, ``speaker_regex``, or the ``speaker``
  group of ``label_regex``): a speaker-disjoint part, so the card's figures are
  speaker-independent;
* one speaker only: a *within-speaker* part, stratified by label (every item its own group);
  the card and the cross-validation report say ``within-speaker (speaker-dependent)`` and a
  warning is printed: such figures do not tell how the model does on another voice or face;
* no speaker known: items drawn at random, stratified by label (the card says speakers are
  unknown).

Cross-validation (:func:`cross_validate`, ``--cv``) runs the same recipe on every fold before
the final model is trained, and writes ``cv.json``, ``cv.md`` and ``cv-confusion.png`` into
the model folder: ``loso`` (one fold per speaker), ``group-kfold`` (K folds grouped by speaker,
stratified by label) or ``kfold`` (K folds over items, stratified by label; flagged
speaker-dependent when a speaker occurs on both sides). The CV summary goes onto the card.

:func:`run_config` runs any run configuration on any corpus (``emofuse bench --config FILE``):
a registered suite by its ``suite`` name, else the modality's generic runner.
"""

from __future__ import annotations

import collections
import copy
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import RunConfig, parse_config
from ..errors import ConfigError, DataError, EmofuseError

__all__ = ["own_data_config", "MODALITIES", "CV_KINDS", "WITHIN_SPEAKER", "OwnData", "prepare",
           "normalise_cv", "cv_splits", "cross_validate", "write_cv_report", "cv_summary",
           "format_cv", "train_own_data", "TrainOutcome", "run_config"]

_SPEECH_MODEL: dict[str, Any] = {
    "name": "ensemble",
    "params": {
        "settings": ["inductive"], "weights": [1.0],
        "members": [{"name": "lda", "params": {"shrinkage": 0.5, "balanced": True},
                     "fit": {"speeds": [0.9, 1.1]}}]}}

_TEMPLATES: dict[str, dict[str, Any]] = {
    "speech": {
        "suite": "own-speech",
        "features": {"name": "fused", "params": {"logmel_bands": 64}},
        "model": _SPEECH_MODEL,
        "train": {"max_epochs": 40, "batch_size": 32, "lr": 0.003, "weight_decay": 1e-4,
                  "patience": 12, "val_fraction": 0.15, "class_weighted": True, "seeds": [0],
                  "num_threads": 1},
    },
    "face": {
        "suite": "own-face",
        "features": {"name": "face_crop", "params": {"side": 48, "detector": "yunet"}},
        "model": {"name": "mini_xception", "params": {}},
        "train": {"max_epochs": 30, "batch_size": 64, "lr": 0.05, "weight_decay": 5e-4,
                  "patience": 8, "val_fraction": 0.15, "class_weighted": False, "seeds": [0],
                  "num_threads": 1},
    },
    "text": {
        "suite": "own-text",
        "features": {"name": "text_clean", "params": {}},
        "model": {"name": "best_dev", "params": {
            "select_metric": "macro_f1", "export": "frozen",
            "systems": {"frozen": {"model": "minilm_mlp", "params": {
                "hidden": 256, "dropout": 0.3, "lr": 0.002, "epochs": 40, "patience": 5,
                "batch_size": 64}}}}},
        "train": {"max_epochs": 40, "batch_size": 64, "lr": 0.002, "weight_decay": 0.01,
                  "patience": 5, "val_fraction": 0.15, "class_weighted": False, "seeds": [0],
                  "num_threads": 1},
    },
}

#: Modalities ``--data`` training supports.
MODALITIES: tuple[str, ...] = tuple(_TEMPLATES)
#: Cross-validation schemes of ``--cv``.
CV_KINDS: tuple[str, ...] = ("loso", "group-kfold", "kfold")
#: The protocol named on the card and in the CV report of a one-speaker corpus.
WITHIN_SPEAKER = "within-speaker (speaker-dependent)"

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def own_data_config(data: str | Path, modality: str, *, out_dir: str | Path,
                    speaker_regex: str | None = None, label_regex: str | None = None,
                    max_epochs: int | None = None, group_by: str = "speaker") -> RunConfig:
    """The run configuration that trains ``modality``'s recipe on a user's folder or manifest.

    Parameters
    ----------
    data
        A folder with one sub-folder per class, a flat folder (with ``label_regex``), a
        CSV/TSV manifest, or a folder holding ``manifest.csv``.
    modality
        ``speech``, ``face`` or ``text``.
    out_dir
        Where the model folder goes.
    speaker_regex
        Folder layout only: how to read the speaker from a file's path (see
        :class:`emofuse.corpora.generic.Folder`); the validation part is then speaker-disjoint.
    label_regex
        Folder layout only: a regular expression with a named group ``label`` (and optionally
        ``speaker``) searched in each file name, or a preset name (``ravdess``, ``cremad``,
        ``savee``, ``emodb``, ``tess``, ``speaker_label``).
    max_epochs
        Override the recipe's number of epochs (networks only).
    group_by
        ``speaker`` (default) or ``item``: every item its own group (within-speaker split).
    """
    if modality not in _TEMPLATES:
        raise ConfigError(f"--modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    p = Path(data)
    if not p.exists():
        raise DataError(p, "does not exist (give a folder with one sub-folder per class, a flat "
                           "folder with --label-regex, or a CSV manifest)")
    is_manifest = p.is_file() or any((p / n).is_file() for n in ("manifest.csv", "manifest.tsv"))
    options: dict[str, Any] = {}
    for flag, value in (("--speaker-regex", speaker_regex), ("--label-regex", label_regex)):
        if value and is_manifest:
            raise ConfigError(f"{flag} applies to folders; a manifest gives labels and speakers "
                              "in its 'label' and 'speaker' columns")
    if speaker_regex:
        options["speaker_regex"] = speaker_regex
    if label_regex:
        from ..corpora.generic import compile_label_regex

        compile_label_regex(label_regex)  # a bad expression is a usage error, before any work
        options["label_regex"] = label_regex
    if group_by != "speaker":
        options["group_by"] = group_by
    cfg = copy.deepcopy(_TEMPLATES[modality])
    if max_epochs is not None:
        cfg["train"]["max_epochs"] = int(max_epochs)
        if modality == "text":
            cfg["model"]["params"]["systems"]["frozen"]["params"]["epochs"] = int(max_epochs)
    cfg.update({"task": {"modality": modality},
                "data": {"corpus": "manifest" if is_manifest else "folder", "root": str(p),
                         "options": options},
                "protocol": {"kind": "official"},
                "output": {"dir": str(out_dir)}})
    return parse_config(cfg, source=f"--data {p} --modality {modality}")


# --------------------------------------------------------------------------------------------
# What the data hold


@dataclass
class OwnData:
    """A user's data as scanned before training.

    ``skipped``: files or rows left out (one :class:`~emofuse.corpora.Anomaly` each);
    ``notes``: quirks that were tolerated; ``speakers``: items per known speaker;
    ``speaker_dependent``: one speaker only, so validation and figures are within-speaker.
    """

    cfg: RunConfig
    records: list[Any]
    classes: list[str]
    skipped: list[Any] = field(default_factory=list)
    notes: list[Any] = field(default_factory=list)
    speakers: dict[str, int] = field(default_factory=dict)
    no_speaker: int = 0
    speaker_dependent: bool = False
    own_split: bool = False

    @property
    def protocol(self) -> dict[str, Any]:
        """The card's ``protocol``: how the validation part of the final model was drawn."""
        frac = self.cfg.train.val_fraction
        own = ("the manifest's dev/val rows (trained on its train rows; its test rows are not "
               "used)")
        if self.speaker_dependent:
            return {"kind": WITHIN_SPEAKER, "speaker_dependent": True,
                    "validation": own if self.own_split else
                    f"a fraction {frac} of the one speaker's items "
                    f"({', '.join(self.speakers)}), stratified by label",
                    "note": "one speaker: figures say nothing about other speakers"}
        if self.own_split:
            return {"kind": "the manifest's split",
                    "speaker_dependent": False if self.speakers else None, "validation": own}
        if not self.speakers:
            return {"kind": "whole corpus (speakers unknown)", "speaker_dependent": None,
                    "validation": f"a fraction {frac} of the items, drawn at random and "
                                  "stratified by label; speakers unknown, so a speaker may be "
                                  "on both sides"}
        return {"kind": "whole corpus", "speaker_dependent": False,
                "validation": f"speaker-disjoint part, fraction {frac} "
                              f"({len(self.speakers)} speakers)"}


def prepare(data: str | Path, modality: str, *, out_dir: str | Path,
            speaker_regex: str | None = None, label_regex: str | None = None,
            max_epochs: int | None = None, warn: Log | None = None) -> OwnData:
    """Configuration and records of a user's data (files that cannot be used are listed in
    ``skipped``, never raised). A one-speaker corpus gets a within-speaker configuration and a
    warning.

    Raises
    ------
    DataError
        When nothing usable is left, or fewer than two classes.
    """
    from ..corpora import load_corpus
    from ._common import class_list

    warn = warn or _quiet
    cfg = own_data_config(data, modality, out_dir=out_dir, speaker_regex=speaker_regex,
                          label_regex=label_regex, max_epochs=max_epochs)
    scan = load_corpus(cfg.data.corpus, cfg.data.root, check_media=False, **cfg.data.options)
    skipped = [a for a in scan.anomalies if a.skipped]
    notes = [a for a in scan.anomalies if not a.skipped]
    records = [r for r in scan.records if r.label is not None]
    if modality == "text":
        records = [r for r in records if r.text]
    else:
        attr = {"speech": "audio", "face": "image"}[modality]
        records = [r for r in records if getattr(r, attr) or r.video]
    root = Path(data)
    if not records:
        hint = ""
        if skipped and all("lies directly in the root" in a.reason for a in skipped):
            hint = ("; the files lie directly in the folder: give --label-regex (e.g. "
                    r"'^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)\d+' or a preset) to read labels "
                    "from file names, or put them in one sub-folder per class")
        elif label_regex:
            hint = f"; no file name matches --label-regex '{label_regex}'"
        raise DataError(root, f"no usable {modality} item with a label "
                              f"({len(skipped)} file(s) skipped){hint}")
    own_split = modality == "text" and any(r.split for r in records)
    classes = class_list(records, cfg.data.labels)
    if len(classes) < 2:
        raise DataError(root, f"only one class ({classes[0]}): a classifier needs at least two")
    speakers = dict(sorted(collections.Counter(r.speaker for r in records if r.speaker).items()))
    no_speaker = sum(1 for r in records if not r.speaker)
    own = OwnData(cfg, records, classes, skipped, notes, speakers, no_speaker,
                  own_split=own_split)
    if len(speakers) == 1:
        own.speaker_dependent = True
        (name,) = speakers
        warn(f"{root}: one speaker only ({name}): validation and any cross-validation are "
             f"{WITHIN_SPEAKER}, stratified by label; the figures say nothing about how the "
             "model does on other speakers")
        own.cfg = own_data_config(data, modality, out_dir=out_dir, speaker_regex=speaker_regex,
                                  label_regex=label_regex, max_epochs=max_epochs,
                                  group_by="item")
        for r in records:
            r.extra["group"] = f"item:{r.id}"
    if own_split:
        _check_text_split(records, root)
    if _item_level(records):
        frac = _val_fraction(own.cfg.train.val_fraction, records)
        if frac != own.cfg.train.val_fraction:
            d = own.cfg.model_dump(mode="json")
            d["train"]["val_fraction"] = frac
            own.cfg = parse_config(d, source=f"--data {root}")
    if not speakers and not own_split:
        warn(f"{root}: no speaker known for any item: validation items are drawn at random, so "
             "a speaker may be on both sides (give --speaker-regex, a (?P<speaker>...) group "
             "in --label-regex, or a manifest 'speaker' column)")
    return own


def _check_text_split(records: Sequence[Any], root: Path) -> None:
    """The text recipe trains on a manifest's own ``split`` column when it has one: check it
    now (known parts, a dev part for early stopping, no speaker on two sides) rather than after
    a cross-validation."""
    from .. import protocols

    try:
        split = protocols.official_split(records)
    except EmofuseError as exc:
        raise DataError(root, f"its 'split' column cannot be used: {exc} (remove the column to "
                              "let a validation part be drawn)") from exc
    if not split.val:
        raise DataError(root, "its 'split' column has no dev/val part, which the text recipe "
                              "needs for early stopping (add one, or remove the column to let "
                              "a validation part be drawn)")


# --------------------------------------------------------------------------------------------
# Cross-validation


def normalise_cv(kind: str, folds: int | None = None) -> str:
    """``loso``, ``group-kfold`` or ``kfold`` from a ``--cv`` value (``logo`` and
    ``speaker-kfold`` accepted); raises ``ConfigError`` for anything else, or ``folds`` with
    ``loso``."""
    key = str(kind).strip().lower().replace("_", "-")
    key = {"logo": "loso", "speaker-kfold": "group-kfold", "groupkfold": "group-kfold",
           "k-fold": "kfold"}.get(key, key)
    if key not in CV_KINDS:
        raise ConfigError(f"--cv must be one of {', '.join(CV_KINDS)}, not {kind!r}")
    if key == "loso" and folds is not None:
        raise ConfigError("--folds does not apply to --cv loso (one fold per speaker)")
    return key


def cv_splits(records: Sequence[Any], kind: str, *, k: int | None = None, seed: int = 0,
              speaker_dependent: bool = False, warn: Log | None = None
              ) -> tuple[list[Any], str, bool | None]:
    """The folds of ``kind`` (``loso``, ``group-kfold``, ``kfold``) over ``records``.

    Returns ``(splits, protocol, speaker_dependent)``: the protocol as written in the report,
    and whether a speaker is on both sides of a fold (``None``: speakers unknown).

    Raises
    ------
    ConfigError
        For an unknown ``kind`` or a bad ``k``.
    DataError
        When the data cannot be split that way (too few speakers or items per class).
    """
    from .. import protocols

    warn = warn or _quiet
    key = normalise_cv(kind, k)
    records = list(records)
    speakers = {r.speaker for r in records if r.speaker}
    if k is None:  # default 5, fewer where the data hold fewer (a given --folds is kept)
        smallest = min(collections.Counter(r.label for r in records).values())
        k = max(2, min(5, smallest if key == "kfold" or speaker_dependent else len(speakers)))
    k = int(k)
    if key != "loso" and not 2 <= k <= 100:
        raise ConfigError(f"--folds must be between 2 and 100, not {k}")
    if speaker_dependent and key != "kfold":
        warn(f"--cv {key} needs several speakers; with one speaker the folds are stratified "
             f"{k}-fold over items ({WITHIN_SPEAKER})")
        key = "kfold"
    if key == "kfold":
        splits = _item_kfold(records, k, seed)
        if speaker_dependent:
            return splits, WITHIN_SPEAKER, True
        if not speakers:
            return (splits, (f"stratified {k}-fold over items (speakers unknown: may be "
                             "speaker-dependent)"), None)
        by_id = {r.id: r for r in records}
        repeat = any({by_id[i].speaker for i in s.train} & {by_id[i].speaker for i in s.test}
                     - {None} for s in splits)
        if repeat:
            return (splits, (f"stratified {k}-fold over items (speaker-dependent: speakers "
                             "repeat across train and test)"), True)
        return splits, f"stratified {k}-fold over items", False
    missing = [r.id for r in records if not r.speaker]
    if missing:
        raise DataError(None, f"--cv {key} needs a speaker for every item; {len(missing)} have "
                        f"none (e.g. {missing[0]}): give --speaker-regex, a (?P<speaker>...) "
                        "group in --label-regex or a manifest 'speaker' column, or use --cv "
                        "kfold")
    if len(speakers) < 3:
        raise DataError(None, f"--cv {key} needs at least 3 speakers (one to test, two to train "
                        f"and validate on); there are {len(speakers)}: use --cv kfold")
    if key == "loso":
        splits = protocols.leave_one_speaker_out(records)
        return (splits, f"leave-one-speaker-out ({len(splits)} folds, speaker-independent)",
                False)
    if k > len(speakers):
        raise DataError(None, f"--cv group-kfold with --folds {k} needs at least {k} speakers; "
                        f"there are {len(speakers)}")
    splits = protocols.speaker_kfold(records, k=k, seed=seed)
    by_id = {r.id: r for r in records}
    for s in splits:
        if len({by_id[i].speaker for i in s.train}) < 2:
            raise DataError(None, f"--cv group-kfold with --folds {k}: fold {s.fold} leaves one "
                            "speaker to train on, and the recipe validates on another: use "
                            "fewer folds, more speakers, or --cv kfold")
    return (splits, f"speaker-grouped stratified {k}-fold (speaker-independent)", False)


def _item_kfold(records: Sequence[Any], k: int, seed: int) -> list[Any]:
    """Stratified ``k``-fold over items (speakers ignored)."""
    from sklearn.model_selection import StratifiedKFold

    from ..protocols import Split

    counts = collections.Counter(r.label for r in records)
    small = sorted((n, c) for c, n in counts.items() if n < k)
    if small:
        n, c = small[0]
        raise DataError(None, f"class {c!r} has {n} item(s), fewer than the {k} folds: lower "
                        "--folds or add data")
    labels = [r.label for r in records]
    out = []
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for i, (tr, te) in enumerate(splitter.split(np.zeros(len(records)), labels), start=1):
        out.append(Split(f"own/kfold/{i}", [records[j].id for j in tr],
                         [records[j].id for j in te], protocol="kfold", fold=i))
    return out


def _val_fraction(base: float, records: Sequence[Any]) -> float:
    """A validation fraction that leaves at least one item of each class on both sides of an
    item-level (stratified) draw: ``base``, raised for tiny classes (at most 0.5)."""
    smallest = min(collections.Counter(r.label for r in records).values(), default=0)
    if smallest == 0 or round(smallest * base) >= 1:
        return base
    return min(0.5, round(0.51 / smallest + 1e-9, 4))


def _item_level(records: Sequence[Any]) -> bool:
    """Whether the recipe's validation draw is per item (no groups: one speaker, or none)."""
    return not any(r.group and not str(r.group).startswith("item:") for r in records)


def _fold_config(cfg: RunConfig, train: Sequence[Any]) -> RunConfig:
    """``cfg`` restricted to the training records of one fold (the recipe draws its own
    validation part from them)."""
    train_ids = [r.id for r in train]
    d = cfg.model_dump(mode="json")
    if _item_level(train):
        d["train"]["val_fraction"] = _val_fraction(cfg.train.val_fraction, train)
    opts = dict(d["data"].get("options") or {})
    opts["only_ids"] = list(train_ids)
    if d["data"]["corpus"] == "manifest":
        opts["use_split"] = False
    d["data"]["options"] = opts
    d["protocol"] = {"kind": "official", "seed": d["protocol"].get("seed", 0)}
    return parse_config(d, source=f"{cfg.suite} (one fold)")


def _predict(modality: str, model_dir: Path, records: Sequence[Any]
             ) -> tuple[np.ndarray, list[str], list[Any], list[dict[str, str]]]:
    """``(probabilities, model labels, records scored, skipped)`` of a saved model."""
    skipped: list[dict[str, str]] = []
    if modality == "speech":
        from ..features.cache import FeatureCache
        from ..speech import SpeechPredictor

        pred = SpeechPredictor(model_dir, cache=FeatureCache())
        rows, kept = [], []
        for r in records:
            try:
                rows.append(np.asarray(pred.proba(r.audio or r.video), dtype=np.float64))
                kept.append(r)
            except EmofuseError as exc:
                skipped.append({"id": r.id, "reason": str(exc)})
        labels = list(pred.labels)
        proba = np.stack(rows) if rows else np.zeros((0, len(labels)))
        return proba, labels, kept, skipped
    if modality == "text":
        from ..text import TextPredictor

        pred = TextPredictor.load(model_dir)
        kept = [r for r in records if r.text]
        proba = np.asarray(pred.predict_proba([r.text for r in kept]), dtype=np.float64)
        return proba, list(pred.labels), kept, skipped
    if modality == "face":
        from .face import _features, load_faces, load_predictor, predict_proba

        net, card = load_predictor(model_dir)
        feats = _features({k: v for k, v in card["features"].items()
                           if k in ("side", "detector", "tta")})
        x, kept, skipped = load_faces(list(records), side=int(feats["side"]),
                                      detector=feats["detector"])
        proba = (np.asarray(predict_proba(net, x, tta=feats["tta"]), dtype=np.float64)
                 if len(kept) else np.zeros((0, len(card["labels"]))))
        return proba, list(card["labels"]), list(kept), list(skipped)
    raise ConfigError(f"cross-validation supports speech, face and text, not {modality!r}")


def cross_validate(cfg: RunConfig, records: Sequence[Any], classes: Sequence[str],
                   splits: Sequence[Any], *, protocol: str, speaker_dependent: bool | None,
                   quick: bool = False, suite: str | None = None, log: Log | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``cfg``'s recipe on each fold's training part (train + val ids; the recipe holds
    out its own validation part from them) and score its test part; return a result in the
    results format (``metrics`` mean ± std and per fold, ``per_class`` pooled, summed
    ``confusion``, plus ``folds``: per-fold details).

    Predictions cover every class of ``classes``: a class a fold's model never saw scores 0.
    """
    from ..evaluate.metrics import aggregate_folds, classification_metrics
    from ..evaluate.results import build_result
    from . import get_modality
    from ._common import Timer

    log = log or _quiet
    modality = cfg.task.modality
    recipe = get_modality(modality)
    by_id = {r.id: r for r in records}
    index = {c: i for i, c in enumerate(classes)}
    fold_metrics, folds = [], []
    with Timer() as timer, tempfile.TemporaryDirectory(prefix="emofuse-cv-") as tmp:
        for n, split in enumerate(splits, start=1):
            t0 = time.perf_counter()
            train = [by_id[i] for i in (*split.train, *split.val) if i in by_id]
            test = [by_id[i] for i in split.test if i in by_id and by_id[i].label in index]
            if not train or not test:
                continue
            try:
                model_dir = recipe.train(_fold_config(cfg, train),
                                         out_dir=Path(tmp) / f"fold{n}", quick=quick)
            except EmofuseError as exc:
                raise DataError(None, f"cross-validation fold {split.fold or n} "
                                f"({len(train)} training items): {exc}") from exc
            train_ids = [r.id for r in train]
            proba, labels, kept, skipped = _predict(modality, Path(model_dir), test)
            full = np.zeros((len(kept), len(classes)))
            for j, lab in enumerate(labels):
                if lab in index:
                    full[:, index[lab]] = proba[:, j]
            y = np.array([index[r.label] for r in kept], dtype=np.int64)
            if not len(y):
                raise DataError(None, f"fold {split.fold or n}: no test item could be scored "
                                f"({len(skipped)} skipped)")
            m = classification_metrics(y, full.argmax(1), classes=list(classes), proba=full)
            fold_metrics.append(m)
            speakers = sorted({r.speaker for r in test if r.speaker}, key=str)
            info = {"fold": split.fold or n, "n_train": len(train_ids), "n_test": len(test),
                    "scored": len(y), "skipped": skipped,
                    "test_speakers": speakers if len(speakers) <= 20 else len(speakers),
                    "ua": m["ua"], "wa": m["wa"], "macro_f1": m["macro_f1"],
                    "missing_classes": [c for c in classes if c not in labels],
                    "seconds": round(time.perf_counter() - t0, 2)}
            folds.append(info)
            who = f"{len(test)} items" + (f", speaker {', '.join(map(str, speakers))}"
                                          if 0 < len(speakers) <= 3 else "")
            log(f"  fold {len(folds)}/{len(splits)} (test: {who}): UA {100 * m['ua']:.2f}, "
                f"WA {100 * m['wa']:.2f}, macro-F1 {100 * m['macro_f1']:.2f} "
                f"({info['seconds']:.0f} s)")
    if not fold_metrics:
        raise DataError(None, "cross-validation: no fold had both training and test items")
    agg = aggregate_folds(fold_metrics)
    extra = dict(extra or {})
    extra.setdefault("notes", _cv_notes(protocol, speaker_dependent, quick))
    return build_result(suite=suite or f"{cfg.suite}-cv", corpus=cfg.data.corpus,
                        protocol=protocol, classes=list(classes), metrics=agg["metrics"],
                        per_class=agg["per_class"], confusion=agg["confusion"],
                        seeds=[cfg.train.seeds[0]], started=timer.started,
                        duration_s=timer.seconds, folds=folds,
                        speaker_dependent=speaker_dependent, modality=modality,
                        data=str(cfg.data.root), quick=quick, **extra)


def _cv_notes(protocol: str, speaker_dependent: bool | None, quick: bool) -> str:
    text = (f"Cross-validation, {protocol}: on every fold the recipe is trained on the "
            "training part (its own validation part drawn from it) and scored once on the test "
            "part. `per_fold` lists the folds; per-class figures and the confusion matrix are "
            "pooled over folds.")
    if speaker_dependent:
        text += (" **Speaker-dependent**: the same speaker is on both sides, so these figures "
                 "overstate how the model does on a new speaker.")
    elif speaker_dependent is None:
        text += " Speakers are unknown: a speaker may be on both sides."
    if quick:
        text += " Quick run (--quick): smoke-test settings, not a measurement."
    return text


def write_cv_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """``cv.json``, ``cv.md`` and ``cv-confusion.png`` of a cross-validation result."""
    from ..evaluate.plots import plot_confusion
    from ..evaluate.results import render_markdown

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = plot_confusion(result["confusion"], result["classes"], out / "cv-confusion.png",
                         title=f"cross-validation: {result['protocol']}"[:70])
    result = {**result, "confusion_png": png.name}
    paths = []
    for name, text in (("cv.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n"),
                       ("cv.md", render_markdown(result))):
        path = out / name
        _atomic_write(path, text)
        paths.append(path)
    return [*paths, png]


def cv_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The CV figures that go onto the model card."""
    keys = ("ua", "wa", "macro_f1")
    return {"protocol": result["protocol"], "folds": len(result.get("folds") or []),
            "speaker_dependent": result.get("speaker_dependent"),
            "metrics": {k: {"mean": result["metrics"][k]["mean"],
                            "std": result["metrics"][k]["std"],
                            "per_fold": result["metrics"][k]["per_fold"]}
                        for k in keys if k in result["metrics"]},
            "per_class_recall": {c: d["recall"] for c, d in result["per_class"].items()},
            "report": "cv.md", "quick": bool(result.get("quick"))}


def format_cv(result: dict[str, Any]) -> list[str]:
    """Lines that print a CV result: the means ± std, per fold and per-class recall."""
    m = result["metrics"]
    names = {"ua": "UA", "wa": "WA", "macro_f1": "macro-F1"}
    head = "; ".join(f"{names[k]} {100 * m[k]['mean']:.2f} ± {100 * m[k]['std']:.2f}"
                     for k in names if k in m)
    lines = [f"cross-validation, {result['protocol']}: {head}"]
    if "ua" in m:
        lines.append("  UA per fold: " + " / ".join(f"{100 * v:.1f}" for v in m["ua"]["per_fold"]))
    lines.append("  recall per class: " + ", ".join(
        f"{c} {100 * d['recall']:.1f}" for c, d in result["per_class"].items()))
    if result.get("speaker_dependent"):
        lines.append("  speaker-dependent: a speaker is on both sides of the folds; expect "
                     "lower figures on new speakers")
    return lines


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# emofuse train --data


@dataclass
class TrainOutcome:
    """What :func:`train_own_data` did: the model folder, the scan, the CV result (or None)."""

    path: Path
    own: OwnData
    cv: dict[str, Any] | None = None
    cv_files: list[Path] = field(default_factory=list)


def train_own_data(data: str | Path, modality: str, *, out_dir: str | Path,
                   speaker_regex: str | None = None, label_regex: str | None = None,
                   max_epochs: int | None = None, cv: str | None = None,
                   folds: int | None = None, quick: bool = False,
                   warn: Log | None = None, log: Log | None = None,
                   on_scan: Callable[[OwnData], None] | None = None) -> TrainOutcome:
    """Scan a user's data, cross-validate the recipe when ``cv`` is given (report written into
    ``out_dir``), then train the final model on everything and write its card (protocol,
    speakers, CV summary)."""
    from . import get_modality

    log = log or _quiet
    own = prepare(data, modality, out_dir=out_dir, speaker_regex=speaker_regex,
                  label_regex=label_regex, max_epochs=max_epochs, warn=warn)
    if on_scan is not None:
        on_scan(own)
    out = Path(out_dir)
    result, files = None, []
    if cv:
        splits, protocol, dependent = cv_splits(own.records, cv, k=folds,
                                                seed=own.cfg.protocol.seed,
                                                speaker_dependent=own.speaker_dependent,
                                                warn=warn)
        log(f"cross-validation: {protocol}, {len(splits)} folds, {len(own.records)} items")
        result = cross_validate(own.cfg, own.records, own.classes, splits, protocol=protocol,
                                speaker_dependent=dependent, quick=quick, log=log,
                                extra={"cv": cv})
        files = write_cv_report(result, out)
    elif folds is not None:
        raise ConfigError("--folds goes with --cv (kfold or group-kfold)")
    path = Path(get_modality(modality).train(own.cfg, out_dir=out, quick=quick))
    _amend_card(path, own, data, result)
    return TrainOutcome(path, own, result, files)


def _amend_card(model_dir: Path, own: OwnData, data: str | Path,
                result: dict[str, Any] | None) -> None:
    """Say on the card how validation was drawn, who spoke, and the CV figures."""
    from ..train.checkpoint import read_card

    card = read_card(model_dir)
    protocol = card.get("protocol") if isinstance(card.get("protocol"), dict) else {}
    card["protocol"] = {**protocol, **own.protocol}
    card["speaker_dependent"] = own.protocol["speaker_dependent"]
    data_info = dict(card.get("data") or {})
    data_info.update({"source": str(data), "items_found": len(own.records),
                      "speakers": len(own.speakers) or None,
                      "files_skipped": len(own.skipped)})
    card["data"] = data_info
    if result is not None:
        card["cv"] = cv_summary(result)
        metrics = dict(card.get("metrics") or {})
        for k in ("ua", "wa", "macro_f1"):
            if k in result["metrics"]:
                metrics[f"cv_{k}"] = result["metrics"][k]["mean"]
                metrics[f"cv_{k}_std"] = result["metrics"][k]["std"]
        card["metrics"] = metrics
    _atomic_write(model_dir / "card.json", json.dumps(card, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# emofuse bench --config


def run_config(cfg: RunConfig, *, quick: bool = False, log: Log | None = print
               ) -> dict[str, Any]:
    """Run any configuration on the corpus and protocol it names; results carry its ``suite``.

    * ``suite`` names a registered suite: that suite's runner (``configs/<suite>.yaml`` style).
    * speech: the speech benchmark runner (any corpus; ``emobox``, ``speaker_kfold``,
      ``loso``, ``logo``, ``official``, ``random`` with ``allow_leak``).
    * text on its ``official`` split: the text suite runner.
    * face or text on your own data (``folder``/``manifest``) with ``speaker_kfold``,
      ``loso``, ``logo`` or ``random``: each fold trains the modality's recipe and is
      scored on its test part (:func:`cross_validate`).
    """
    from ..evaluate.plots import plot_confusion
    from ..evaluate.results import results_dir
    from . import get_suite, list_suites

    if cfg.suite in {s.name for s in list_suites()}:
        return get_suite(cfg.suite).run(cfg, quick=quick)
    modality, kind = cfg.task.modality, cfg.protocol.kind
    if modality == "speech":
        from .speech import run_benchmark

        return run_benchmark(cfg, quick=quick)
    if modality == "text" and kind == "official":
        from .text import run_suite

        return run_suite(cfg, quick=quick)
    if modality in ("face", "text") and cfg.data.corpus in ("folder", "manifest") \
            and kind in ("speaker_kfold", "loso", "logo", "random"):
        from ._common import class_list, load_records, make_splits

        _, records = load_records(cfg)
        records = [r for r in records if (r.text if modality == "text" else r.image or r.video)]
        classes = class_list(records, cfg.data.labels)
        splits = make_splits(cfg, records)
        protocol = {"speaker_kfold": f"speaker-grouped stratified {cfg.protocol.k}-fold",
                    "loso": "leave-one-speaker-out", "logo": "leave-one-group-out",
                    "random": "random item split (leaking)"}[kind]
        result = cross_validate(cfg, records, classes, splits, protocol=protocol,
                                speaker_dependent=kind == "random", quick=quick,
                                suite=cfg.suite, log=log)
        name = f"{cfg.suite}-quick" if quick else cfg.suite
        png = plot_confusion(result["confusion"], classes, results_dir() / f"{name}.png",
                             title=f"{name} ({protocol})")
        result["confusion_png"] = png.name
        return result
    raise ConfigError(f"{cfg.suite}: no runner for task.modality {modality!r} with protocol "
                      f"{kind!r} on corpus {cfg.data.corpus!r}; runnable: a registered suite "
                      "name (emofuse bench lists them), any speech config, text on its "
                      "official split, or face/text on folder/manifest data with "
                      "speaker_kfold, loso, logo or random")
