"""Text reading and normalisation: invalid UTF-8 tolerated, oversize text truncated with notice."""

from __future__ import annotations

import re
import unicodedata
import warnings
from pathlib import Path

from ..errors import MediaError

__all__ = ["normalise_text", "read_text", "read_lines", "MAX_CHARS"]

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


def _decode(data: bytes, path: Path) -> str:
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MediaError(path, "binary data, not text")
    for enc in ("utf-8-sig", "utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else ("utf-8-sig",):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            pass
    warnings.warn(f"{path}: invalid UTF-8 bytes replaced", stacklevel=3)
    return data.decode("utf-8", errors="replace")


def read_text(path: str | Path, *, max_bytes: int = 10_000_000) -> str:
    """Whole text file; invalid UTF-8 replaced with a warning; refuses more than ``max_bytes``."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "file does not exist")
    size = path.stat().st_size
    if size > max_bytes:
        raise MediaError(path, f"text file of {size} bytes exceeds the {max_bytes}-byte limit")
    return _decode(path.read_bytes(), path)


def read_lines(path: str | Path, **kwargs) -> list[str]:
    """Non-empty lines of a text file (one utterance per line)."""
    return [ln.strip() for ln in read_text(path, **kwargs).splitlines() if ln.strip()]
