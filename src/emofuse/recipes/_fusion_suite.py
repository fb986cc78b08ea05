"""The base of the fusion suites (``av-ravdess``, ``av-ravdess-whisper``, ``tri-synthetic``):
the preamble they share over :class:`~emofuse.recipes._suite.Suite`'s."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..config import RunConfig, TrainConfig
from ._common import FoldOutput
from ._fusion_data import SETTINGS, AVRecords, av_records, quick_config
from ._suite import Log, Suite

__all__ = ["FusionSuite"]


class FusionSuite(Suite, modality="fusion", quick_seeds=1):
    """A fusion suite: ``self.f`` the typed ``features.params`` (the ``features`` schema of
    ``params``), ``self.tcfg`` the ``train`` section of its networks (2 epochs, patience 1 in
    a smoke run, which keeps one seed), the audio-visual records and folds
    (:meth:`av_records`), and a result that keeps the run's configuration as a mapping with
    the seeds it used."""

    def __init__(self, cfg: RunConfig, *, quick: bool = False, log: Log = print) -> None:
        super().__init__(cfg, quick=quick, log=log)
        schema = self.params.get("features")
        #: the typed ``features.params`` (None when the suite declares no schema)
        self.f: Any = schema.of(cfg.features, where="features.params") if schema else None
        self.tcfg: TrainConfig = cfg.train.model_copy()
        if quick:
            self.tcfg.max_epochs, self.tcfg.patience = 2, 1

    @property
    def settings(self) -> list[str]:
        """The normalisation settings run (``features.params.settings``)."""
        return list(self.f.settings)

    def av_records(self) -> AVRecords:
        """The corpus' records with audio or action units, classes, folds, seeds and protocol
        name (:func:`~emofuse.recipes._fusion_data.av_records`)."""
        return av_records(self.cfg, quick=self.quick)

    def result(self, *, protocol: str, classes: Sequence[str],
               parts: Mapping[str, Sequence[FoldOutput]], primary: str | None = None,
               **extra: Any) -> dict[str, Any]:
        """:meth:`Suite.result` with ``config`` the run's configuration as a mapping (the
        seeds it used) unless given; ``primary`` defaults to the first setting's suffix."""
        if primary is None:
            primary = SETTINGS[self.settings[0]]
        extra.setdefault("config", quick_config(self.cfg, self.seeds).model_dump(mode="json"))
        return super().result(protocol=protocol, classes=classes, parts=parts, primary=primary,
                              **extra)

    def setting_parts(self, outputs: Mapping[str, Sequence[FoldOutput]]
                      ) -> dict[str, Sequence[FoldOutput]]:
        """``{metric suffix: outputs}`` of the main system's ``{setting: outputs}``."""
        return {SETTINGS[s]: outputs[s] for s in self.settings}
