"""emofuse: multimodal human emotion recognition.

The public API is small; everything under modules starting with ``_`` is private.
"""

from __future__ import annotations

from .errors import ConfigError, DataError, EmofuseError, LabelError, LeakageError, MediaError

__version__ = "0.1.0"

__all__ = ["__version__", "EmofuseError", "DataError", "MediaError", "ConfigError",
           "LeakageError", "LabelError", "load_corpus", "list_corpora"]


def load_corpus(*args, **kwargs):
    """Load a corpus into uniform records; see :func:`emofuse.corpora.load_corpus`."""
    from .corpora import load_corpus as _load

    return _load(*args, **kwargs)


def list_corpora() -> list[str]:
    """Names of every corpus loader."""
    from .corpora import list_corpora as _list

    return _list()
