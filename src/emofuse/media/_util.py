"""Small helpers shared by the media readers."""

from __future__ import annotations

__all__ = ["describe", "looks_like_text", "SNIFF_BYTES"]

#: How many leading bytes are inspected to tell text from binary data.
SNIFF_BYTES = 64


def describe(exc: BaseException) -> str:
    """First line of an exception's message, or its type name when the message is empty."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def looks_like_text(data: bytes) -> bool:
    """Whether the first :data:`SNIFF_BYTES` bytes are printable ASCII (or tab/CR/LF).

    ``False`` for empty data.
    """
    head = data[:SNIFF_BYTES]
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
