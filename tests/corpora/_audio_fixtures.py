"""Tiny media files for the corpus-loader tests: ~0.1 s tones, broken files, a 2-frame video.

Imported by the test modules of this folder (pytest puts the folder on ``sys.path``).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from emofuse.corpora import CorpusScan

__all__ = ["tone", "video", "image", "truncated_flac", "empty", "text_as_audio", "write_bad_set",
           "assert_bad_reported", "anomalies_of", "kept_notes"]


def _parent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def tone(path: str | Path, *, sr: int = 16000, seconds: float = 0.1, channels: int = 1,
         fmt: str | None = None) -> Path:
    """A short sine tone whose pitch depends on the path; the format follows the extension
    unless ``fmt`` is given (e.g. AIFF written under a ``.wav`` name)."""
    path = _parent(Path(path))
    t = np.arange(int(sr * seconds)) / sr
    # pitch from the whole path's CRC-32 (100-2100 Hz, not rounded to whole hertz), so that no
    # two fixtures are byte-identical (loaders flag those)
    y = (0.2 * np.sin(2 * np.pi * (100 + zlib.crc32(str(path).encode()) / 2**32 * 2000) * t))
    y = y.astype(np.float32)
    if channels > 1:
        y = np.repeat(y[:, None], channels, axis=1)
    sf.write(str(path), y, sr, format=fmt or path.suffix.lstrip(".").upper())
    return path


def truncated_flac(path: str | Path) -> Path:
    """A FLAC whose second half is cut off: the header promises more samples than decode."""
    path = _parent(Path(path))
    y = np.random.default_rng(0).uniform(-0.3, 0.3, 8000).astype(np.float32)
    sf.write(str(path), y, 16000, format="FLAC")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def empty(path: str | Path) -> Path:
    """A zero-byte file."""
    path = _parent(Path(path))
    path.write_bytes(b"")
    return path


def text_as_audio(path: str | Path) -> Path:
    """A text file wearing an audio extension."""
    path = _parent(Path(path))
    path.write_text("this is a note, not a recording\n")
    return path


def video(path: str | Path, frames: int = 2) -> Path:
    """A 16x16 black video in the container the extension names (``.flv``, ``.mp4``)."""
    import av

    path = _parent(Path(path))
    codec = {".flv": "flv", ".avi": "mpeg4", ".mp4": "mpeg4"}[path.suffix.lower()]
    with av.open(str(path), "w") as c:
        st = c.add_stream(codec, rate=10)
        st.width = st.height = 16
        st.pix_fmt = "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
            for packet in st.encode(frame):
                c.mux(packet)
        for packet in st.encode():
            c.mux(packet)
    return path


def image(path: str | Path) -> Path:
    """A 8x8 grey image in the format the extension names."""
    from PIL import Image

    path = _parent(Path(path))
    Image.new("L", (8, 8), 128).save(path)
    return path


def write_bad_set(*, truncated: Path, zero: Path, text: Path, unparseable: Path) -> list[Path]:
    """The four bad files every loader test uses; the unparseable one is a good tone."""
    return [truncated_flac(truncated), empty(zero), text_as_audio(text), tone(unparseable)]


def anomalies_of(scan: CorpusScan, path: Path) -> list:
    """Anomalies reported for ``path``."""
    return [a for a in scan.anomalies if Path(a.path) == Path(path)]


def kept_notes(scan: CorpusScan) -> list:
    """Anomalies about files that were kept anyway."""
    return [a for a in scan.anomalies if not a.skipped]


def assert_bad_reported(scan: CorpusScan, bad: Iterable[Path]) -> None:
    """Every bad file is a skipped anomaly with a reason, and no record points at it."""
    used = {getattr(r, m) for r in scan.records for m in ("audio", "video", "image")}
    used |= {v for r in scan.records for v in r.extra.values() if isinstance(v, str)}
    for path in bad:
        found = [a for a in anomalies_of(scan, path) if a.skipped]
        assert found, f"no anomaly for {path.name}: {scan.anomalies}"
        assert all(a.reason.strip() for a in found)
        assert str(path) not in used, f"{path.name} still used by a record"
