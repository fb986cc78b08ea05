"""Text reading and normalisation: any common encoding, oversize text truncated with notice."""

from __future__ import annotations

import re
import unicodedata
import warnings
from pathlib import Path

from ..errors import MediaError
from ._files import check_file

__all__ = ["normalise_text", "decode_text", "read_text", "read_lines", "MAX_CHARS"]

#: Longest text passed on to a model; longer input is truncated with a warning.
MAX_CHARS = 20_000
_WS = re.compile(r"\s+")


def normalise_text(text: str, *, max_chars: int = MAX_CHARS) -> str:
    """NFC-normalise, drop control characters, collapse whitespace, truncate with a warning."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    text = _WS.sub(" ", text).strip()
    if len(text) > max_chars:
        warnings.warn(f"text of {len(text)} characters truncated to {max_chars}", stacklevel=2)
        text = text[:max_chars]
    return text


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"),
         (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


#: Leading bytes of common media files: never text, whatever their bytes decode to.
_BINARY_MAGIC = (b"RIFF", b"fLaC", b"OggS", b"ID3", b"\x1aE\xdf\xa3", b"\x89PNG",
                 b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"FLV", b"%PDF",
                 b"PK\x03\x04", b"\x1f\x8b")


def _utf16_without_bom(head: bytes) -> str | None:
    """``utf-16-le``/``-be`` when every other byte of ``head`` is mostly NUL (ASCII-range text)."""
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.6 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.6 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def decode_text(data: bytes, path: str | Path) -> str:
    """Decode text in any common encoding: a BOM (UTF-8/16/32), UTF-16 without BOM, UTF-8,
    else Windows-1252 / Latin-1 (with a warning). Binary data raises :class:`MediaError`."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError:
                raise MediaError(path, f"text starts with a {enc} mark but does not decode "
                                       f"as {enc}") from None
    head = data[:8192]
    if head.startswith(_BINARY_MAGIC) or head[4:8] == b"ftyp":
        raise MediaError(path, "binary data (a media file), not text")
    enc16 = _utf16_without_bom(head)
    if enc16:
        try:
            text = data.decode(enc16)
        except UnicodeDecodeError:
            text = ""
        sample = text[:2000]
        if sum(ch.isalpha() for ch in sample) >= 0.4 * len(sample) > 0 and " " in sample:
            return text
    if b"\x00" in head:
        raise MediaError(path, "binary data, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    mixed = data.decode("utf-8", errors="replace")
    if any(ord(ch) > 127 and ch != "\ufffd" for ch in mixed):  # UTF-8 with a few bad bytes
        warnings.warn(f"{path}: invalid UTF-8 bytes replaced", stacklevel=3)
        return mixed
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    if controls > 0.05 * max(1, len(head)):
        raise MediaError(path, "binary data, not text")
    for enc in ("cp1252", "latin-1"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        warnings.warn(f"{path}: not UTF-8; read as {enc}", stacklevel=3)
        return text
    raise MediaError(path, "text in an unknown encoding")  # pragma: no cover - latin-1 decodes all


def read_text(path: str | Path, *, max_bytes: int = 10_000_000) -> str:
    """Whole text file in any common encoding (see :func:`decode_text`); refuses more than
    ``max_bytes``."""
    path = Path(path)
    check_file(path, "a text file", empty_ok=True)
    size = path.stat().st_size
    if size > max_bytes:
        raise MediaError(path, f"text file of {size} bytes exceeds the {max_bytes}-byte limit")
    return decode_text(path.read_bytes(), path)


def read_lines(path: str | Path, **kwargs) -> list[str]:
    """Non-empty lines of a text file (one utterance per line)."""
    return [ln.strip() for ln in read_text(path, **kwargs).splitlines() if ln.strip()]
