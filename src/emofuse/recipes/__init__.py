"""Recipes: benchmark suites and per-modality train/evaluate entry points.

The library (corpora, features, models, training harness, metrics) knows nothing of recipes;
a recipe wires them together from one :class:`~emofuse.config.RunConfig`.

A modality module (``emofuse.recipes.speech``, ``.face``, ``.text``, ``.fusion``) provides::

    def train(cfg: RunConfig, *, out_dir: Path, quick: bool = False) -> Path   # model folder
    def evaluate(model_dir: Path, records: list[Record], *, corpus: str) -> dict
        # {"metrics": {name: {"mean", "std", "per_fold"}}, "per_class", "confusion",
        #  "classes", "items": int, "skipped": [{"path"/"id", "reason"}], ...}

and registers its benchmark suites with :func:`suite`::

    @suite("ser-ravdess", modality="speech", description="...")
    def ser_ravdess(cfg: RunConfig, *, quick: bool = False) -> dict:   # a result dict
        ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from .._plugins import Registry
from ..errors import ConfigError

__all__ = ["Suite", "suite", "get_suite", "list_suites", "get_modality", "config_path"]

MODALITY_MODULES = ("speech", "face", "text", "fusion", "augment", "fusion3", "product",
                    "face_ensemble", "aug_speech", "aug_tts", "aug_face",
                    "aug_diffusion", "xcorpus", "xcorpus_model", "xcorpus_text", "live",
                    "fusion_whisper", "speech_attn")


@dataclass(frozen=True)
class Suite:
    name: str
    modality: str
    description: str
    run: Callable[..., dict[str, Any]]


#: suite name -> :class:`Suite`
_SUITES: Registry[Suite] = Registry("benchmark suite", __name__, MODALITY_MODULES)


def suite(name: str, *, modality: str, description: str = "") -> Callable:
    """Decorator registering a benchmark suite function under ``name``."""

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        _SUITES.register(name, Suite(name, modality, description or (fn.__doc__ or "").strip(),
                                     fn))
        return fn

    return deco


def list_suites() -> list[Suite]:
    return [_SUITES[n] for n in _SUITES.names()]


def get_suite(name: str) -> Suite:
    _SUITES.load()      # every suite module: a suite's name does not say which module has it
    return _SUITES.get(name)


def get_modality(modality: str) -> ModuleType:
    """The recipe module of ``modality`` (``speech``, ``face``, ``text``, ``fusion``)."""
    if modality not in MODALITY_MODULES:
        raise ConfigError(f"unknown modality {modality!r}; known: {', '.join(MODALITY_MODULES)}")
    try:
        return importlib.import_module(f"{__name__}.{modality}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{modality}":
            raise ConfigError(f"no recipe for modality {modality!r} yet") from None
        raise


def config_path(name: str) -> Path:
    """``configs/<name>.yaml`` in the working directory, else in the source checkout."""
    from ..paths import repo_root

    for base in (Path.cwd(), repo_root()):
        p = base / "configs" / f"{name}.yaml"
        if p.is_file():
            return p
    raise ConfigError(f"no config for suite {name!r}: configs/{name}.yaml not found "
                      "(give --config FILE)")
