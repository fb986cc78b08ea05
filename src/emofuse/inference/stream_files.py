"""Streams from files and their results: :func:`media_events` (a file as audio chunks and
frames), :func:`replay` (the offline timeline: a file through a stream as fast as it goes),
:func:`play` (at real-time speed), :func:`stream_timeline` and :func:`agreement`."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, MediaError
from .stream import Stream
from .stream_parts import SR, STREAM_MODALITIES, StreamOptions, Update
from .types import Segment

if TYPE_CHECKING:
    from .recognizer import Recognizer

__all__ = ["media_events", "replay", "play", "stream_timeline", "agreement"]


def media_events(path: str | Path, *, frame_rate: float = 10.0, chunk_s: float = 0.1,
                 modalities: Sequence[str] = STREAM_MODALITIES
                 ) -> Iterator[tuple[float, str, Any]]:
    """A file as a stream: ``(time, "audio", samples at 16 kHz)`` chunks of ``chunk_s`` and
    ``(time, "frame", rgb)`` frames at ``frame_rate``, in time order (a frame comes after the
    audio up to its time). Audio files give audio; videos give frames and their sound."""
    from ..media import iter_frames, load_audio, probe_video, read_audio_track

    path = Path(path)
    from .detect import detect_kind

    kind, _ = detect_kind(path)
    if kind not in ("audio", "video"):
        raise MediaError(path, f"a live source must be audio or video, not {kind}")
    y = np.zeros(0, dtype=np.float32)
    if kind == "audio":
        if "speech" in modalities:
            y, _ = load_audio(path, sr=SR)
        frames: Iterable[tuple[float, np.ndarray]] = ()
    else:
        info = probe_video(path)
        if info.has_audio and "speech" in modalities:
            y = read_audio_track(path, sr=SR)
        frames = iter_frames(path, fps=frame_rate) if "face" in modalities else ()
    step = max(1, int(round(chunk_s * SR)))
    pos = 0
    for t, rgb in frames:
        upto = min(y.size, int(math.ceil(t * SR)))
        while pos < upto:
            n = min(step, upto - pos)
            yield (pos + n) / SR, "audio", y[pos: pos + n]
            pos += n
        yield float(t), "frame", rgb
    while pos < y.size:
        n = min(step, y.size - pos)
        yield (pos + n) / SR, "audio", y[pos: pos + n]
        pos += n


def replay(recognizer: Recognizer, source: str | Path | Iterable[tuple[float, str, Any]], *,
           options: StreamOptions | None = None,
           modalities: Sequence[str] | None = None) -> list[Update]:
    """The offline timeline: a file (or :func:`media_events`) fed to a :class:`Stream` as fast
    as it goes, every frame processed; the list of its updates."""
    opts = options or StreamOptions()
    stream = Stream(recognizer, opts, modalities=modalities)
    events = media_events(source, frame_rate=opts.frame_rate, modalities=stream.modalities) \
        if isinstance(source, (str, Path)) else source
    updates: list[Update] = []
    for t, kind, payload in events:
        if kind == "audio":
            stream.push_audio(payload, SR)
        else:
            stream.push_frame(payload, t)
        updates += stream.step()
    updates += stream.flush()
    return updates


def play(stream: Stream, events: Iterable[tuple[float, str, Any]], *, speed: float = 1.0,
         stop: threading.Event | None = None, on_push: Callable[[float, str, float], None]
         | None = None) -> float:
    """Feed ``events`` to a live stream at ``speed`` times real time (each pushed when the
    wall clock reaches its time); returns the stream seconds played. ``stop`` ends early;
    ``on_push(time, kind, wall)`` is told of every push."""
    if not speed > 0:
        raise ConfigError(f"speed must be positive, not {speed}")
    t0 = time.perf_counter()
    last = 0.0
    for t, kind, payload in events:
        if stop is not None and stop.is_set():
            break
        wait = t0 + t / speed - time.perf_counter()
        if wait > 0:
            if stop is not None:
                if stop.wait(wait):
                    break
            else:
                time.sleep(wait)
        if kind == "audio":
            stream.push_audio(payload, SR)
        else:
            stream.push_frame(payload, t)
        if on_push is not None:
            on_push(t, kind, time.perf_counter())
        last = t
    return last


def stream_timeline(updates: Sequence[Update]) -> list[Segment]:
    """Updates as timeline segments: one per hop for ``fused`` and for each modality."""
    out: list[Segment] = []
    for u in updates:
        for m, p in [("fused", u.probabilities), *u.modalities.items()]:
            if not p:
                continue
            label, conf = max(p.items(), key=lambda kv: kv[1])
            out.append(Segment(start=round(u.start, 3), end=round(u.time, 3), modality=m,
                               label=label, confidence=round(float(conf), 6),
                               probabilities=dict(p)))
    return out


def agreement(live: Sequence[Update], offline: Sequence[Update]) -> dict[str, float]:
    """How often a live run showed the offline label: for every offline hop, the live update
    of that hop, or the latest live update before it (what the live view showed then)."""
    by_index = {u.index: u for u in live}
    ordered = sorted(live, key=lambda u: u.index)
    same = total = missing = 0
    j = -1
    for u in sorted(offline, key=lambda u: u.index):
        total += 1
        v = by_index.get(u.index)
        if v is None:
            missing += 1
            while j + 1 < len(ordered) and ordered[j + 1].index <= u.index:
                j += 1
            v = ordered[j] if j >= 0 else None
        same += int(v is not None and v.label == u.label)
    return {"hops": total, "same": same, "agreement": round(same / total, 4) if total else 1.0,
            "hops_missing_live": missing}
