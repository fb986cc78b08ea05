"""Typed ``model.params`` of the cross-corpus speech recipe: ``xcorpus-speech-emobox`` and the
bundled speech model v2 (``emofuse train --config configs/models/speech.yaml``). It holds every
key ``xcorpus-speech`` reads too, so that suite can declare it as well."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ..config import Params
from ._speech_params import settings_list

__all__ = ["XSetting", "XcorpusParams"]

#: ``inductive`` (training corpora's statistics), ``folder`` (the source's own unlabelled
#: statistics) or ``enrol`` (the speaker's).
XSetting = Literal["inductive", "folder", "enrol"]


class XcorpusParams(Params):
    """Corpora, settings and the nested leave-one-corpus-out selection grid of each setting."""

    #: training corpora (at least 3 for the nested selection)
    corpora: list[str] = Field(default_factory=list)
    #: corpora the LOCO mean is stated on (default: all of ``corpora``)
    targets: list[str] | None = None
    #: extra test-only corpora: a name, or name -> folder under ``data.root``
    extra_test: str | dict[str, str | None] | None = None
    #: settings run (each with its own head)
    settings: list[XSetting] = Field(default_factory=lambda: ["inductive", "folder", "enrol"],
                                     min_length=1)
    #: per setting, the candidate grid (keys of ``xcorpus.candidates``: a list or one value)
    grid: dict[XSetting, dict[str, Any]] = Field(default_factory=dict)
    #: pseudo-recordings that shrink folder / enrol statistics towards the training ones
    enrol_prior: float = Field(default=5.0, ge=0)
    #: bins of the expected calibration error
    ece_bins: int = Field(default=15, ge=1)
    #: heatmap: also the single-corpus -> corpus cells
    pairs: bool = True
    #: goals of the issue, per setting (reported as met or not)
    target_ua: dict[XSetting, float] | None = None
    #: written onto the model card
    languages: list[str] | None = None
    licences: dict[str, str] | None = None
    #: folds computed in this many forked processes (same figures)
    jobs: int = Field(default=1, ge=1)

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_list(cls, v: Any) -> Any:
        return settings_list(v)

    def grids_source(self) -> dict[str, Any]:
        """``settings`` and ``grid`` as the mapping ``xcorpus._settings_grids`` reads."""
        return {"settings": list(self.settings), "grid": dict(self.grid)}
