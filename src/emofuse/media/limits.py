"""Limits checked before any decoding, so that no input can make emofuse use unbounded time or
memory: the longest audio or video, the plausible sample rates, the largest image.

The defaults suit a command-line user and the service alike; ``EMOFUSE_MAX_AUDIO_S`` and
``EMOFUSE_MAX_PIXELS`` raise or lower them for a whole process.
"""

from __future__ import annotations

import os

__all__ = ["SPEECH_SR", "max_audio_seconds", "max_pixels", "MIN_SAMPLE_RATE", "MAX_SAMPLE_RATE",
           "MAX_VIDEO_SECONDS"]

#: Lowest and highest sample rate a header may declare (1 Hz headers turn a few kilobytes into
#: hours of audio after resampling).
#: The sample rate every speech feature, model and bundled card works at (audio is resampled
#: to it on load); the one place it is written.
SPEECH_SR = 16_000
MIN_SAMPLE_RATE = 2_000
MAX_SAMPLE_RATE = 768_000
#: Longest video read (frames are sampled, so this bounds the time spent, not the memory).
MAX_VIDEO_SECONDS = 4 * 3600.0


def _env_float(name: str, default: float) -> float:
    try:
        v = float(os.environ.get(name, default))
    except ValueError:
        return default
    return v if v > 0 and v == v and v != float("inf") else default


def max_audio_seconds() -> float:
    """Longest audio decoded (default one hour; ``EMOFUSE_MAX_AUDIO_S``)."""
    return _env_float("EMOFUSE_MAX_AUDIO_S", 3600.0)


def max_pixels() -> int:
    """Largest image decoded, in pixels (default 100 megapixels; ``EMOFUSE_MAX_PIXELS``)."""
    return int(_env_float("EMOFUSE_MAX_PIXELS", 100e6))
