"""The check every reader makes of a path before opening it."""

from __future__ import annotations

from pathlib import Path

from ..errors import MediaError

__all__ = ["check_file"]


def check_file(path: Path, what: str = "a file", *, empty_ok: bool = False) -> None:
    """Raise :class:`~emofuse.errors.MediaError` when ``path`` is missing, a folder (``what``
    names what it should have been) or, unless ``empty_ok``, empty."""
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if path.is_dir():
        raise MediaError(path, f"is a folder, not {what}")
    if not empty_ok and path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
