"""Byte-level helpers for media files, shared by the face corpora and the media checks.

:func:`content_hash` identifies identical content (it fills ``extra["content_hash"]`` in every
loader that sets it), :func:`looks_like_text` spots text wearing a media extension, and
:func:`inspect_image` / :func:`read_image` check that an image file is whole.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from ..media._util import SNIFF_BYTES, looks_like_text
from ._base import Anomaly, read_bytes

__all__ = ["content_hash", "looks_like_text", "inspect_image", "read_image", "SNIFF_BYTES"]

_MAGIC = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"BM", "BMP"),
          (b"GIF8", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def content_hash(data: bytes) -> str:
    """Short hex digest identifying identical content (128-bit BLAKE2b)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _image_kind(data: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def inspect_image(data: bytes, *, decode: bool = True) -> tuple[str | None, tuple[int, int] | None]:
    """Cheap validity check of an image file's bytes.

    Checks the signature and, for JPEG and PNG, the end marker; with ``decode`` also decodes
    the image (a few tens of microseconds for a small face crop).

    Returns
    -------
    problem, size
        ``problem`` is ``None`` for a good image, else what is wrong; ``size`` is (width,
        height) when the image was decoded.
    """
    if not data:
        return "file is empty (0 bytes)", None
    kind = _image_kind(data)
    if kind is None:
        if looks_like_text(data):
            return "not an image: the file holds text", None
        return "not an image (unrecognised format)", None
    if kind == "JPEG" and data.rstrip(b"\x00")[-2:] != b"\xff\xd9":
        return "truncated JPEG (no end-of-image marker)", None
    if kind == "PNG" and b"IEND" not in data[-32:]:
        return "truncated PNG (no IEND chunk)", None
    if not decode:
        return None, None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return None, img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"corrupt {kind} image ({exc})", None


def read_image(path: Path, anomalies: list[Anomaly], *,
               decode: bool = True) -> tuple[bytes, tuple[int, int] | None] | None:
    """The bytes of a good image file and its (width, height) when decoded.

    An unreadable or bad file is reported as a skipped :class:`Anomaly` and gives ``None``.
    """
    data = read_bytes(path, anomalies)
    if data is None:
        return None
    problem, size = inspect_image(data, decode=decode)
    if problem:
        anomalies.append(Anomaly(str(path), problem))
        return None
    return data, size
