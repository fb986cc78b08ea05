"""The :class:`Suite` base and the suite registry.

A suite is a class whose registration is its class statement; the base owns the preamble every
suite used to repeat (the task check, the typed ``model.params``, the seeds of a full or smoke
run, the timer, the corpus' records and folds, the result dict)::

    class AugSpeechAaec(Suite, name="aug-speech-aaec", modality="speech",
                        params={"model": AugAaecParams}, quick_seeds=1):
        '''RAVDESS speech: ...'''                     # the description

        def body(self) -> dict[str, Any]:
            records, classes, splits = self.fold_records()
            ...
            return self.result(protocol=..., classes=classes, parts={"": outputs})

``emofuse bench`` calls ``AugSpeechAaec.run(cfg, quick=...)``. A plain function can still be
registered with :func:`suite` (it then owns its preamble).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from .. import protocols
from .._plugins import Registry
from ..config import Params, RunConfig, dump_config
from ..corpora import Record
from ..errors import ConfigError
from ._common import (FoldOutput, Timer, class_list, load_records, make_result, make_splits,
                      quick_speakers, require_modality, restrict_split)

__all__ = ["Suite", "suite", "fold_records", "usable_folds", "limit_threads"]

MODALITY_MODULES = ("speech", "face", "text", "fusion", "augment", "fusion3", "product",
                    "face_ensemble", "aug_speech", "aug_tts", "aug_face",
                    "aug_diffusion", "xcorpus", "xcorpus_model", "xcorpus_text", "live",
                    "fusion_whisper", "speech_attn", "xcorpus_align", "xcorpus_text_transfer",
                    "xcorpus_face", "xcorpus_text_ft", "face_combine", "xcorpus_text_model",
                    "xcorpus_text_distil")

Log = Callable[[str], None]


class Suite:
    """Base of a benchmark suite (see the module docstring). Class keywords: ``name``,
    ``modality``, ``params`` (typed schemas of the config's sections, ``{"model": M,
    "features": F}``), ``quick_seeds`` (seeds kept in a smoke run; all when None),
    ``description`` (else the class docstring), ``task_modality`` (the ``task.modality`` a
    config must have when it is not ``modality``, e.g. ``speech`` for ``speech-xcorpus``).
    Subclasses implement :meth:`body`."""

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    task_modality: ClassVar[str] = ""
    description: ClassVar[str] = ""
    params: ClassVar[Mapping[str, type[Params]]] = {}
    quick_seeds: ClassVar[int | None] = None

    def __init_subclass__(cls, *, name: str | None = None, modality: str | None = None,
                          description: str | None = None,
                          params: Mapping[str, type[Params]] | None = None,
                          quick_seeds: int | None = None, task_modality: str | None = None,
                          **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if modality is not None:
            cls.modality = modality
        if task_modality is not None:
            cls.task_modality = task_modality
        if params is not None:
            cls.params = dict(params)
        if quick_seeds is not None:
            cls.quick_seeds = quick_seeds
        if name is not None:
            cls.name = name
            # one line (a docstring's line breaks and indentation collapsed)
            cls.description = " ".join((description or cls.__doc__ or "").split())
            _SUITES.register(name, cls)

    def __init__(self, cfg: RunConfig, *, quick: bool = False, log: Log = print) -> None:
        require_modality(cfg, self.task_modality or self.modality)
        self.cfg, self.quick, self.log = cfg, quick, log
        model = self.params.get("model")
        #: the typed ``model.params`` (None when the suite declares no schema)
        self.p: Any = model.of(cfg.model) if model is not None else None
        seeds, n = list(cfg.train.seeds), self.quick_seed_count()
        #: the seeds of this run (the first ``quick_seed_count()`` in a smoke run)
        self.seeds: list[int] = seeds[:n] if quick and n else seeds
        self.timer = Timer()

    def quick_seed_count(self) -> int | None:
        """Seeds a smoke run keeps (``quick_seeds``; a suite may read it from its params)."""
        return self.quick_seeds

    @classmethod
    def run(cls, cfg: RunConfig, *, quick: bool = False, log: Log = print,
            **kw: Any) -> dict[str, Any]:
        """Run the suite on ``cfg``; the result dict ``emofuse bench`` writes (``kw``: keywords
        a subclass' constructor takes, e.g. inputs a test gives instead of the corpora)."""
        from ..evaluate.results import pinned_commit

        self = cls(cfg, quick=quick, log=log, **kw)
        with self.timer, pinned_commit():
            return self.body()

    def body(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- the shared steps ----------------------------------------------------------------------

    def fold_records(self) -> tuple[list[Record], list[str], list[protocols.Split]]:
        """The corpus' records, classes and folds (a smoke run keeps a few speakers)."""
        return fold_records(self.cfg, quick=self.quick)

    def usable_folds(self, splits: Sequence[protocols.Split], kept: set[str], *,
                     folds: Sequence[int] | None = None) -> list[protocols.Split]:
        """``splits`` restricted to the ``kept`` ids (see :func:`usable_folds`)."""
        return usable_folds(splits, kept, folds=folds, quick=self.quick)

    def result(self, *, protocol: str, classes: Sequence[str],
               parts: Mapping[str, Sequence[FoldOutput]], primary: str = "",
               **extra: Any) -> dict[str, Any]:
        """The result dict: per-fold metrics of each part (``{suffix: outputs}``), the run's
        start and duration so far, the config, and the seeds a smoke run used."""
        extra.setdefault("config", dump_config(self.cfg))
        result = make_result(self.cfg, protocol=protocol, classes=classes, parts=dict(parts),
                             started=self.timer.started, duration_s=self.timer.elapsed,
                             primary=primary, **extra)
        if self.quick:
            result["seeds"] = self.seeds
        return result


def fold_records(cfg: RunConfig, *, quick: bool
                 ) -> tuple[list[Record], list[str], list[protocols.Split]]:
    """The corpus' records, classes and folds of ``cfg`` (in a quick run: the few records
    :func:`~emofuse.recipes._common.quick_speakers` keeps)."""
    _, records = load_records(cfg)
    classes = class_list(records, cfg.data.labels)
    splits = make_splits(cfg, records)
    if quick:
        records = quick_speakers(records, splits)
    return list(records), classes, list(splits)


def usable_folds(splits: Sequence[protocols.Split], kept: set[str], *,
                 folds: Sequence[int] | None, quick: bool) -> list[protocols.Split]:
    """The folds restricted to the ``kept`` ids, those with training and test items left,
    only ``folds`` when given (the first one in a quick run). Raises ``ConfigError`` when none
    is left."""
    out = [s for s in (restrict_split(s, kept) for s in splits) if s.test and s.train]
    if folds and not quick:
        out = [s for s in out if s.fold in set(folds)]
    if quick:
        out = out[:1]
    if not out:
        raise ConfigError("no fold left (model.params.folds?)")
    return out


def limit_threads(cfg: RunConfig, *, torch: bool = True) -> None:
    """Limit the BLAS/OpenMP pools (threadpoolctl) and, with ``torch``, torch's threads to
    ``train.num_threads`` (nothing when it is unset)."""
    n = cfg.train.num_threads
    if not n:
        return
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:   # pragma: no cover
        pass
    if torch:
        try:
            import torch as _torch

            _torch.set_num_threads(n)
        except ImportError:   # pragma: no cover
            pass


#: suite name -> its :class:`Suite` subclass
_SUITES: Registry[type[Suite]] = Registry("benchmark suite", "emofuse.recipes", MODALITY_MODULES)


def suite(name: str, *, modality: str, description: str = "",
          params: Mapping[str, type[Params]] | None = None) -> Callable:
    """Decorator registering a plain function ``fn(cfg, *, quick=False) -> dict`` as suite
    ``name`` (it owns its preamble; prefer a :class:`Suite` subclass)."""

    def deco(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        type(f"_{fn.__name__}", (Suite,), {"run": staticmethod(fn), "__module__": fn.__module__},
             name=name, modality=modality, params=params or {},
             description=description or (fn.__doc__ or "").strip())
        return fn

    return deco
