"""Audio decoding: any rate, any channel count, WAV/FLAC/OGG/MP3 (libsndfile) with PyAV as the
fallback for containers libsndfile does not read. Mono mix and resampling with soxr."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import MediaError
from ._files import check_file
from ._util import describe, looks_like_text
from .limits import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, SPEECH_SR, max_audio_seconds

__all__ = ["AudioInfo", "probe_audio", "load_audio", "resample", "to_mono", "clean_samples",
           "check_audio_header"]

_EXT_FORMAT = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3", ".aiff": "AIFF",
               ".aif": "AIFF"}


@dataclass
class AudioInfo:
    """What a file holds. ``quirks`` lists oddities that do not stop decoding."""

    path: str
    samplerate: int
    channels: int
    frames: int
    format: str
    quirks: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.samplerate if self.samplerate else 0.0


def check_audio_header(path: str | Path, samplerate: float, frames: int | None) -> None:
    """Refuse a declared sample rate or duration outside :mod:`~emofuse.media.limits` before
    decoding anything."""
    if not MIN_SAMPLE_RATE <= samplerate <= MAX_SAMPLE_RATE:
        raise MediaError(path, f"implausible sample rate of {samplerate:g} Hz in the header "
                               f"(emofuse reads {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    limit = max_audio_seconds()
    if frames is not None and frames > 0 and frames / samplerate > limit:
        raise MediaError(path, f"audio of {frames / samplerate / 60:.1f} min is longer than the "
                               f"{limit / 60:.0f}-min limit (EMOFUSE_MAX_AUDIO_S)")


def clean_samples(y: np.ndarray, path: str | Path | None = None) -> np.ndarray:
    """Replace non-finite samples by silence and bring float samples beyond full scale back
    to [-1, 1], each with a warning naming the file; a signal with no finite sample at all
    raises :class:`MediaError`."""
    import warnings

    where = f"{path}: " if path is not None else ""
    finite = np.isfinite(y)
    if not finite.all():
        bad = int(y.size - np.count_nonzero(finite))
        if bad == y.size:
            raise MediaError(path, "every sample is NaN or infinity: nothing to score")
        warnings.warn(f"{where}{bad} non-finite sample(s) (NaN or infinity) replaced by silence",
                      stacklevel=3)
        y = np.where(finite, y, 0.0).astype(np.float32)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak > 1.0 + 1e-3:
        warnings.warn(f"{where}samples reach {peak:.3g}, beyond full scale: scaled down to "
                      "[-1, 1]", stacklevel=3)
        y = (y / np.float32(peak)).astype(np.float32)
    return y


def _sf_error(path: Path, exc: Exception) -> MediaError:
    with path.open("rb") as f:
        head = f.read(64)
    if looks_like_text(head):
        return MediaError(path, "not audio: the file holds text")
    return MediaError(path, f"cannot decode audio ({describe(exc)})")


def probe_audio(path: str | Path, *, decode: bool = True) -> AudioInfo:
    """Header facts of an audio file; with ``decode`` also read it all to catch truncation.

    Raises :class:`MediaError` naming the file and the problem (empty, text, truncated, ...).
    """
    import soundfile as sf

    path = Path(path)
    check_file(path, "an audio file")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile cannot open it: try PyAV (e.g. AAC, odd MP3)
        try:
            y, sr = _load_av(path)
        except MediaError:
            raise _sf_error(path, exc) from None
        return AudioInfo(str(path), sr, 1, len(y), "AV", [])
    quirks: list[str] = []
    expected = _EXT_FORMAT.get(path.suffix.lower())
    if expected and info.format != expected and not (expected == "AIFF" and info.format == "AIFF"):
        quirks.append(f"container is {info.format} although the extension is {path.suffix}")
    if info.channels > 1:
        quirks.append(f"{info.channels} channels (mixed to mono on load)")
    frames = int(info.frames)
    if decode:
        try:
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:
            raise MediaError(path, f"truncated or corrupt audio ({describe(exc)})") from None
        if frames > 0 and data.shape[0] < frames:
            raise MediaError(path, f"truncated: header says {frames} frames, only "
                                   f"{data.shape[0]} decode")
        frames = data.shape[0]
    if frames == 0:
        raise MediaError(path, "audio holds no samples")
    check_audio_header(path, info.samplerate, frames)
    return AudioInfo(str(path), int(info.samplerate), int(info.channels), frames, info.format,
                     quirks)


def to_mono(y: np.ndarray) -> np.ndarray:
    """Average channels: ``(n, ch)`` -> ``(n,)``."""
    return y.mean(axis=1) if y.ndim == 2 else y


def resample(y: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample with soxr (high quality). No-op when the rates match."""
    if sr_in == sr_out:
        return y
    import soxr

    return soxr.resample(y, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def _load_av(path: Path) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of any container with PyAV, mono float32."""
    import av

    try:
        with av.open(str(path)) as c:
            streams = [s for s in c.streams if s.type == "audio"]
            if not streams:
                raise MediaError(path, "no audio stream in the file")
            st = streams[0]
            chunks = []
            sr = (st.codec_context.sample_rate if st.codec_context is not None else 0) or st.rate
            if not sr:
                raise MediaError(path, "the audio stream declares no sample rate")
            dur = float(st.duration * st.time_base) if st.duration and st.time_base else (
                c.duration / 1e6 if c.duration else None)
            check_audio_header(path, sr, None if dur is None else int(dur * sr))
            limit, total = max_audio_seconds() * sr, 0
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
            for frame in c.decode(st):
                for f in resampler.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if total > limit:
                    raise MediaError(path, f"audio is longer than the "
                                           f"{max_audio_seconds() / 60:.0f}-min limit "
                                           "(EMOFUSE_MAX_AUDIO_S)")
            for f in resampler.resample(None):
                chunks.append(f.to_ndarray().reshape(-1))
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(path, f"cannot decode audio ({describe(exc)})") from None
    if not chunks:
        raise MediaError(path, "audio stream holds no samples")
    return np.concatenate(chunks).astype(np.float32), int(sr)


def load_audio(path: str | Path, *, sr: int | None = SPEECH_SR, mono: bool = True,
               offset: float = 0.0, duration: float | None = None) -> tuple[np.ndarray, int]:
    """Load audio as float32 in [-1, 1].

    Parameters
    ----------
    path
        WAV, FLAC, OGG, MP3 (libsndfile) or any container with an audio stream (PyAV).
    sr
        Target rate; ``None`` keeps the file's rate.
    mono
        Mix channels down to one (the default); else return ``(n, channels)``.
    offset, duration
        Seconds to skip and to read (``None``: to the end), so long files are read in windows.
    """
    import soundfile as sf

    path = Path(path)
    check_file(path, "an audio file")
    try:
        with sf.SoundFile(str(path)) as f:
            file_sr = f.samplerate
            check_audio_header(path, file_sr, None if duration is not None else f.frames)
            start = int(round(offset * file_sr))
            if start:
                f.seek(min(start, f.frames))
            n = -1 if duration is None else int(round(duration * file_sr))
            y = f.read(n, dtype="float32", always_2d=True)
    except MediaError:
        raise
    except sf.LibsndfileError as exc:
        try:
            y1, file_sr = _load_av(path)
        except MediaError:
            raise _sf_error(path, exc) from None
        y = y1[:, None]
        start = int(round(offset * file_sr))
        y = y[start: None if duration is None else start + int(round(duration * file_sr))]
    except Exception as exc:
        raise MediaError(path, f"truncated or corrupt audio ({describe(exc)})") from None
    if y.shape[0] == 0 and offset == 0:
        raise MediaError(path, "audio holds no samples")
    if mono:
        y = to_mono(y)
    y = clean_samples(y, path)
    if sr is not None and sr != file_sr:
        y = resample(y, file_sr, sr)
        file_sr = sr
    return np.ascontiguousarray(y, dtype=np.float32), int(file_sr)
