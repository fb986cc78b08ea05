"""Train on a user's own data: ``emofuse train --data DIR_OR_CSV --modality M``.

The data go through the generic loaders (:mod:`emofuse.corpora.generic`): a folder with one
sub-folder per class, or a CSV/TSV manifest (``path`` or ``text``, ``label``, optional
``speaker`` and ``split``). Each modality gets the recipe of its bundled model, sized for a CPU:

=========  ====================================================================================
speech     a shrinkage LDA over the fused hand-crafted vector (eGeMAPS, MFCC, prosody and
           log-mel statistics) with speed-perturbed training copies (the bundled speech
           model's recipe), probabilities calibrated on the validation part
face       mini-Xception on 48x48 aligned grayscale crops (faces found with YuNet)
text       the frozen MiniLM sentence encoder with a small MLP head
=========  ====================================================================================

A validation part is held out for early stopping: grouped by speaker when speakers are given
(manifest column ``speaker``, or ``speaker_regex`` for folders), so the figures on the card
are speaker-independent; the manifest's own ``split`` column (``train``/``val``) is used where
present for text.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..config import RunConfig, parse_config
from ..errors import ConfigError, DataError

__all__ = ["own_data_config", "MODALITIES"]

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
                    speaker_regex: str | None = None, max_epochs: int | None = None
                    ) -> RunConfig:
    """The run configuration that trains ``modality``'s recipe on a user's folder or manifest.

    Parameters
    ----------
    data
        A folder with one sub-folder per class, a CSV/TSV manifest, or a folder holding
        ``manifest.csv``.
    modality
        ``speech``, ``face`` or ``text``.
    out_dir
        Where the model folder goes.
    speaker_regex
        Folder layout only: how to read the speaker from a file's path (see
        :class:`emofuse.corpora.generic.Folder`); the validation part is then speaker-disjoint.
    max_epochs
        Override the recipe's number of epochs (networks only).
    """
    if modality not in _TEMPLATES:
        raise ConfigError(f"--modality must be one of {', '.join(MODALITIES)}, not {modality!r}")
    p = Path(data)
    if not p.exists():
        raise DataError(p, "does not exist (give a folder with one sub-folder per class, or a "
                           "CSV manifest)")
    is_manifest = p.is_file() or any((p / n).is_file() for n in ("manifest.csv", "manifest.tsv"))
    options: dict[str, Any] = {}
    if speaker_regex:
        if is_manifest:
            raise ConfigError("--speaker-regex applies to folders; a manifest gives speakers "
                              "in its 'speaker' column")
        options["speaker_regex"] = speaker_regex
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
