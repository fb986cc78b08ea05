"""Generative augmentation: synthetic training data for scarce and imbalanced classes.

A *generator* is registered by name (like :mod:`emofuse.models`) and built from a config's
``params``; it is fitted on training records only and produces :class:`SyntheticItem`s, which a
:class:`SyntheticSet` writes to disk with its manifest (generator, settings, seed, source class,
the training ids it was fitted on) and reads back as :class:`~emofuse.corpora.Record`s that a
recipe adds to its *training* fold only.

>>> from emofuse.augment import build_generator, list_generators
>>> gen = build_generator("eda_text")                       # doctest: +SKIP
>>> gen.fit(train_records)                                  # doctest: +SKIP
>>> items = gen.generate({"surprise": 40, "love": 20}, seed=0)   # doctest: +SKIP

Modules: :mod:`.planner` (how many samples per class and generator, plots),
:mod:`.manifest` (synthetic sets on disk), :mod:`.quality` (quality gates), :mod:`.text`
(SmolLM2-135M generation and paraphrase, filter, de-duplication; the EDA baseline).
Other modalities (face cGAN, speech diffusion, AAEC, TTS) plug in as modules named in
``_MODULES`` that call :func:`register_generator`.

Online augmentation (random changes made to training data on the fly: noise at an SNR, crops,
waveform transforms, SpecAugment, mixup, face warps, DiffAugment, speaker shifts) is
:mod:`.online`, small keyword-only functions that trainers and recipes call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .._plugins import Registry
from ..errors import ConfigError
from .manifest import SyntheticItem, SyntheticSet, load_set, write_set
from .planner import Plan, allocate, class_counts, plan_balance, plot_plan

__all__ = ["register_generator", "build_generator", "list_generators", "Generator",
           "SyntheticItem", "SyntheticSet", "load_set", "write_set", "Plan", "plan_balance",
           "allocate", "class_counts", "plot_plan"]

#: modules that register generators (absent ones are skipped: face, speech, aaec, tts to come)
_MODULES = ("text", "face", "speech", "aaec", "tts")
#: generator name -> class or factory
_REGISTRY: Registry[Callable[..., Any]] = Registry("generator", __name__, _MODULES)


@runtime_checkable
class Generator(Protocol):
    """What every generator provides.

    ``modality`` names the kind of item (``text``, ``image``, ``audio``, ``features``);
    ``settings()`` everything that shapes its output (goes into the manifest);
    ``fit`` sees training records only and remembers their ids (``fitted_on``);
    ``generate`` returns items for ``{class: count}``, reproducible for a given ``seed``.
    """

    name: str
    modality: str

    def settings(self) -> dict[str, Any]: ...

    def fit(self, records: Sequence[Any], *, seed: int = 0) -> Any: ...

    def generate(self, counts: Mapping[str, int], *, seed: int = 0) -> list[SyntheticItem]: ...


def register_generator(name: str) -> Callable:
    """Decorator registering a generator class or factory under ``name``."""
    return _REGISTRY.decorator(name)


def list_generators() -> list[str]:
    return _REGISTRY.names()


def build_generator(name: str, **params: Any) -> Any:
    """Instantiate generator ``name`` with ``params``; a :class:`ConfigError` names bad ones."""
    factory = _REGISTRY.get(name)
    try:
        return factory(**params)
    except TypeError as exc:
        raise ConfigError(f"generator {name!r}: {exc}") from None
