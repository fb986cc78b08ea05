"""Temporary shim, removed after the import sweep: the speech predictor lives in
:mod:`emofuse.inference.speech` (and :mod:`emofuse.inference.speech_models`)."""

from __future__ import annotations

from typing import Any

from .inference.speech import SpeakerStats
from .inference.speech import SpeechPredictor as _SpeechPredictor
from .inference.speech_models import (KINDS, MIN_SECONDS, Member, band_stats, check_audio,
                                      load_member, normalise_log_proba, save_member, vector_stats,
                                      waveform_proba, window_bounds)
from .inference.types import Waveform

__all__ = ["SpeechPredictor", "SpeakerStats", "Member", "load_member", "save_member",
           "window_bounds", "check_audio", "band_stats", "vector_stats", "waveform_proba",
           "normalise_log_proba", "MIN_SECONDS", "KINDS"]


class SpeechPredictor(_SpeechPredictor):
    """Temporary: ``predict`` of a path or an array keeps its former meaning
    (:meth:`~emofuse.inference.speech.SpeechPredictor.analyse`, a dict)."""

    def predict(self, audio: Any, *, sr: int | None = None, speaker: Any = None) -> Any:
        if isinstance(audio, Waveform):
            return super().predict(audio)
        return self.analyse(audio, sr=sr, speaker=speaker)
