"""Video decoding with PyAV: stream facts, frames sampled at a chosen rate, the audio track."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ._files import check_file
from ._util import describe
from .limits import MAX_VIDEO_SECONDS, SPEECH_SR, max_pixels

__all__ = ["VideoInfo", "probe_video", "iter_frames", "read_frames", "read_audio_track"]


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: float
    duration: float
    frames: int
    has_audio: bool
    audio_rate: int | None
    codec: str


def _open(path: Path):
    import av

    check_file(path, "a video")
    try:
        return av.open(str(path))
    except Exception as exc:
        raise MediaError(path, f"cannot open video ({describe(exc)})") from None


def probe_video(path: str | Path) -> VideoInfo:
    """Stream facts; raises :class:`MediaError` when there is no video stream."""
    path = Path(path)
    with _open(path) as c:
        vs = [s for s in c.streams if s.type == "video"]
        aus = [s for s in c.streams if s.type == "audio"]
        if not vs:
            raise MediaError(path, "no video stream in the file")
        v = vs[0]
        if v.codec_context is None or not v.codec_context.width or not v.codec_context.height:
            raise MediaError(path, "damaged video: the stream's codec parameters are missing "
                                   "(corrupt header or moov box)")
        try:
            fps = float(v.average_rate or v.guessed_rate or 0) or 25.0
            dur = float(v.duration * v.time_base) if v.duration and v.time_base else (
                c.duration / 1e6 if c.duration else 0.0)
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            fps, dur = 25.0, 0.0
        if not (0 < fps <= 1000) or not (0 <= dur < float("inf")):
            fps, dur = (fps if 0 < fps <= 1000 else 25.0), (dur if 0 <= dur < 1e9 else 0.0)
        if dur > MAX_VIDEO_SECONDS:
            raise MediaError(path, f"video of {dur / 3600:.1f} h is longer than the "
                                   f"{MAX_VIDEO_SECONDS / 3600:.0f}-h limit")
        audio_rate = None
        if aus and aus[0].codec_context is not None:
            audio_rate = aus[0].codec_context.sample_rate or None
        return VideoInfo(str(path), v.codec_context.width, v.codec_context.height, fps, dur,
                         int(v.frames or round(dur * fps)), bool(aus), audio_rate,
                         v.codec_context.name)


def iter_frames(path: str | Path, *, fps: float | None = None, max_frames: int | None = None,
                max_side: int = 1280) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(time_s, rgb uint8 (H, W, 3))`` frames, at most ``fps`` per second if given.

    Frames larger than ``max_side`` are scaled down while decoding.
    """
    path = Path(path)
    with _open(path) as c:
        vs = [s for s in c.streams if s.type == "video"]
        if not vs:
            raise MediaError(path, "no video stream in the file")
        st = vs[0]
        st.thread_type = "AUTO"
        next_t, n = 0.0, 0
        try:
            for frame in c.decode(st):
                t = float(frame.time) if frame.time is not None else n / 25.0
                if fps and t + 1e-6 < next_t:
                    continue
                w, h = frame.width, frame.height
                if not w or not h or w * h > max_pixels():
                    raise MediaError(path, f"video frame of {w}x{h} pixels: empty or too large "
                                           "to decode safely")
                scale = min(1.0, max_side / max(w, h))
                if scale < 1.0:
                    frame = frame.reformat(width=int(w * scale) // 2 * 2,
                                           height=int(h * scale) // 2 * 2)
                yield t, frame.to_ndarray(format="rgb24")
                n += 1
                if fps:
                    next_t = t + 1.0 / fps
                if max_frames is not None and n >= max_frames:
                    return
        except MediaError:
            raise
        except MemoryError:
            raise MediaError(path, "video too large to decode in memory") from None
        except Exception as exc:
            if n == 0:
                raise MediaError(path, f"cannot decode video ({describe(exc)})") from None
            # a damaged tail: keep the frames decoded so far


def read_frames(path: str | Path, *, fps: float | None = None, max_frames: int | None = None,
                max_side: int = 1280) -> tuple[np.ndarray, np.ndarray]:
    """All sampled frames as ``(times (n,), frames (n, H, W, 3))``."""
    items = list(iter_frames(path, fps=fps, max_frames=max_frames, max_side=max_side))
    if not items:
        raise MediaError(path, "video holds no decodable frames")
    times, frames = zip(*items)
    return np.asarray(times, dtype=np.float64), np.stack(frames)


def read_audio_track(path: str | Path, *, sr: int = SPEECH_SR) -> np.ndarray:
    """The first audio stream as mono float32 at ``sr``; :class:`MediaError` if there is none."""
    from .audio import _load_av, resample

    y, file_sr = _load_av(Path(path))
    return resample(y, file_sr, sr)
