"""emofuse: multimodal human emotion recognition.

The public API is small; everything under modules starting with ``_`` is private.
"""

from __future__ import annotations

from .errors import ConfigError, DataError, EmofuseError, LabelError, LeakageError, MediaError

from ._version import __version__

__all__ = ["__version__", "EmofuseError", "DataError", "MediaError", "ConfigError",
           "LeakageError", "LabelError", "load_corpus", "list_corpora", "Recognizer",
           "Prediction"]


def __getattr__(name: str):
    # the inference API is imported on first use so that ``import emofuse`` stays light
    if name in ("Recognizer", "Prediction"):
        from . import inference

        return getattr(inference, name)
    raise AttributeError(f"module 'emofuse' has no attribute {name!r}")


def load_corpus(*args, **kwargs):
    """Load a corpus into uniform records; see :func:`emofuse.corpora.load_corpus`."""
    from .corpora import load_corpus as _load

    return _load(*args, **kwargs)


def list_corpora() -> list[str]:
    """Names of every corpus loader."""
    from .corpora import list_corpora as _list

    return _list()
