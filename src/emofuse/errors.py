"""One exception root for everything emofuse raises on purpose.

Every error that concerns a file names that file and says what is wrong with it, so that a
command-line user sees one clear line instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "EmofuseError",
    "DataError",
    "MediaError",
    "ConfigError",
    "LeakageError",
    "LabelError",
]


class EmofuseError(Exception):
    """Root of all emofuse errors."""


class DataError(EmofuseError):
    """A corpus, manifest or file is missing or malformed.

    Parameters
    ----------
    path
        The file or folder concerned (may be ``None`` when no single file is to blame).
    problem
        What is wrong, in words a user can act on.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class MediaError(DataError):
    """A media file (audio, video, image, text) cannot be decoded."""


class ConfigError(EmofuseError):
    """A configuration file is invalid; the message lists every problem."""


class LeakageError(EmofuseError):
    """A split puts the same speaker, dialogue or identical item on both sides."""


class LabelError(EmofuseError):
    """A label is unknown to the corpus or to the unified taxonomy."""
