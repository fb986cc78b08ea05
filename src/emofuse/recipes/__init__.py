"""Recipes: benchmark suites and per-modality train/evaluate entry points.

The library (corpora, features, models, training harness, metrics) knows nothing of recipes;
a recipe wires them together from one :class:`~emofuse.config.RunConfig`.

A modality module (``emofuse.recipes.speech``, ``.face``, ``.text``, ``.fusion``) provides::

    def train(cfg: RunConfig, *, out_dir: Path, quick: bool = False) -> Path   # model folder
    def evaluate(model_dir: Path, records: list[Record], *, corpus: str) -> dict
        # {"metrics": {name: {"mean", "std", "per_fold"}}, "per_class", "confusion",
        #  "classes", "items": int, "skipped": [{"path"/"id", "reason"}], ...}

and registers its benchmark suites with :func:`suite`::

    class LdaParams(Params):            # the suite's typed ``model.params``
        n_components: int | None = None

    @suite("ser-ravdess", modality="speech", description="...", params={"model": LdaParams})
    def ser_ravdess(cfg: RunConfig, *, quick: bool = False) -> dict:   # a result dict
        p = LdaParams.of(cfg.model)
        ...

A suite's schemas are checked when its configuration loads (:func:`load_suite_config`), each
problem with its YAML line.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from .._plugins import Registry
from ..config import Params, RunConfig, load_config
from ..errors import ConfigError

__all__ = ["Suite", "suite", "get_suite", "list_suites", "get_modality", "config_path",
           "load_suite_config"]

MODALITY_MODULES = ("speech", "face", "text", "fusion", "augment", "fusion3", "product",
                    "face_ensemble", "aug_speech", "aug_tts", "aug_face",
                    "aug_diffusion", "xcorpus", "xcorpus_model", "xcorpus_text", "live",
                    "fusion_whisper", "speech_attn", "xcorpus_align", "xcorpus_text_transfer")


@dataclass(frozen=True)
class Suite:
    name: str
    modality: str
    description: str
    run: Callable[..., dict[str, Any]]
    #: typed schemas of the config's sections: ``{"model": M, "features": F}``
    params: Mapping[str, type[Params]] = field(default_factory=dict)


#: suite name -> :class:`Suite`
_SUITES: Registry[Suite] = Registry("benchmark suite", __name__, MODALITY_MODULES)


def suite(name: str, *, modality: str, description: str = "",
          params: Mapping[str, type[Params]] | None = None) -> Callable:
    """Decorator registering a benchmark suite function under ``name`` (``params``: the
    typed schemas of its ``model.params`` / ``features.params``)."""

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        _SUITES.register(name, Suite(name, modality, description or (fn.__doc__ or "").strip(),
                                     fn, dict(params or {})))
        return fn

    return deco


def list_suites() -> list[Suite]:
    return [_SUITES[n] for n in _SUITES.names()]


def get_suite(name: str) -> Suite:
    _SUITES.load()      # every suite module: a suite's name does not say which module has it
    return _SUITES.get(name)


def load_suite_config(path: str | Path, suite_name: str | None = None) -> RunConfig:
    """Load a run configuration and check its ``params`` sections against the schemas of
    its suite (``suite_name``, else the file's ``suite`` field, when that suite exists)."""
    cfg = load_config(path)
    name = suite_name or cfg.suite
    _SUITES.load()
    s = _SUITES.get(name, None)
    return load_config(path, params=s.params) if s is not None and s.params else cfg


def explain_suite_config(path: str | Path) -> list[str]:
    """Problems of a configuration file, its suite's parameter schemas included."""
    from ..config import explain_config_errors

    problems = explain_config_errors(path)
    if problems:
        return problems
    name = load_config(path).suite
    _SUITES.load()
    s = _SUITES.get(name, None)
    return explain_config_errors(path, params=s.params) if s is not None and s.params else []


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
