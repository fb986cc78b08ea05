"""Temporary shim, removed after the import sweep: live streams live in
:mod:`emofuse.inference.stream` (with ``stream_parts``, ``stream_live``, ``stream_files``)."""

from __future__ import annotations

from .inference.stream import Stream
from .inference.stream_files import (agreement, media_events, play, replay, stream_timeline)
from .inference.stream_parts import (SR, STREAM_MODALITIES, StreamOptions, StreamSlots,
                                     TooManyStreams, Update, to_float_audio)

__all__ = ["Stream", "StreamOptions", "Update", "StreamSlots", "TooManyStreams", "replay",
           "play", "media_events", "stream_timeline", "agreement", "to_float_audio",
           "STREAM_MODALITIES", "SR"]
