"""Text helpers shared by the text corpora (MELD, GoEmotions, dair-ai, the generic loaders).

Files are decoded with :func:`decode_utf8`, which keeps invalid bytes visible as surrogate
escapes; :func:`clean_text` then reads those bytes as cp1252, repairs mojibake
(:func:`repair_mojibake`) and says whether invalid bytes were met, so that the loader can report
the row with :func:`invalid_bytes_anomaly` and keep it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ._base import Anomaly

__all__ = ["decode_utf8", "repair_mojibake", "clean_text", "invalid_bytes_anomaly"]


def _mojibake_chars() -> dict[str, int]:
    """Characters that mojibake is made of -> the byte each stands for (latin-1 and cp1252)."""
    table = {chr(b): b for b in range(0x80, 0x100)}
    for b in range(0x80, 0xA0):
        try:
            table[bytes([b]).decode("cp1252")] = b
        except UnicodeDecodeError:
            pass
    return table


def _mojibake_pattern(table: dict[str, int]) -> re.Pattern[str]:
    """A UTF-8 multi-byte sequence spelt in :func:`_mojibake_chars` characters."""
    def cls(lo: int, hi: int) -> str:
        return "[" + "".join(re.escape(c) for c, b in table.items() if lo <= b <= hi) + "]"

    cont = cls(0x80, 0xBF)
    return re.compile(f"{cls(0xC2, 0xDF)}{cont}|{cls(0xE0, 0xEF)}{cont}{{2}}|"
                      f"{cls(0xF0, 0xF4)}{cont}{{3}}")


_MOJI_BYTES = _mojibake_chars()
_MOJI_SEQ = _mojibake_pattern(_MOJI_BYTES)
_ESCAPED = re.compile("[\udc80-\udcff]+")


def decode_utf8(data: bytes) -> str:
    """UTF-8 text (BOM dropped); invalid bytes stay as surrogate escapes for :func:`clean_text`."""
    return data.removeprefix(b"\xef\xbb\xbf").decode("utf-8", errors="surrogateescape")


def _fix_seq(m: re.Match[str]) -> str:
    seq = m.group()
    try:
        return bytes(_MOJI_BYTES[c] for c in seq).decode("utf-8")
    except UnicodeDecodeError:  # e.g. an overlong form: not mojibake after all
        return seq


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 read as latin-1/cp1252 (``â\\x80\\x99`` or ``â€™`` -> ``’``).

    Each sequence of such characters that spells a UTF-8 multi-byte character is replaced by
    it; genuine accented text (``café``, ``’``) is left alone.
    """
    if text.isascii():
        return text
    return _MOJI_SEQ.sub(_fix_seq, text)


def _cp1252(m: re.Match[str]) -> str:
    raw = bytes(ord(c) - 0xDC00 for c in m.group())
    return "".join(bytes([b]).decode("cp1252", errors="ignore") or chr(b) for b in raw)


def clean_text(text: str) -> tuple[str, bool]:
    """Text from :func:`decode_utf8` made whole: invalid UTF-8 bytes read as cp1252, mojibake
    repaired, outer whitespace stripped. The flag says whether invalid bytes were met."""
    text, n = _ESCAPED.subn(_cp1252, text)
    return repair_mojibake(text).strip(), n > 0


def invalid_bytes_anomaly(path: Path, where: str) -> Anomaly:
    """The (non-skipping) anomaly for a row whose bytes were not valid UTF-8."""
    return Anomaly(str(path), f"{where}: invalid UTF-8 bytes (read as cp1252)", skipped=False)
