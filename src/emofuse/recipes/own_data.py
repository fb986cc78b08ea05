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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig, parse_config
from ..errors import ConfigError, DataError, EmofuseError
from ._own_cv import (CV_KINDS, WITHIN_SPEAKER, Log, _atomic_write, _item_level, _quiet,
                      _val_fraction, cross_validate, cv_splits, cv_summary, format_cv,
                      normalise_cv, write_cv_report)

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
    from ..models.checkpoint import read_card

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
    * speech: :class:`~emofuse.recipes.speech.SpeechSuite` (any corpus; ``emobox``,
      ``speaker_kfold``, ``loso``, ``logo``, ``official``, ``random`` with ``allow_leak``).
    * text on its ``official`` split: :class:`~emofuse.recipes.text.TextSuite`.
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
        from .speech import SpeechSuite

        return SpeechSuite.run(cfg, quick=quick)
    if modality == "text" and kind == "official":
        from .text import TextSuite

        return TextSuite.run(cfg, quick=quick)
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
