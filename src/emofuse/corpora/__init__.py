"""Corpus loaders. Each turns a corpus' own layout into uniform :class:`Record` objects.

>>> from emofuse.corpora import load_corpus
>>> scan = load_corpus("ravdess")            # doctest: +SKIP
>>> scan.summary()["items"]                  # doctest: +SKIP
1440
"""

from __future__ import annotations

from pathlib import Path

from .._plugins import import_present
from ._base import Anomaly, Corpus, CorpusScan, Record, get_corpus, list_corpora, register

__all__ = ["Record", "Anomaly", "CorpusScan", "Corpus", "register", "get_corpus",
           "list_corpora", "load_corpus"]

_MODULES = ("ravdess", "cremad", "savee", "tess", "emodb", "ased", "nemo", "urdu", "fer2013",
            "ckplus", "iemocap", "meld", "goemotions", "dair", "generic")
_loaded = False


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    import_present(__name__, _MODULES)
    _loaded = True


def load_corpus(name: str, root: str | Path | None = None, *, check_media: bool = True,
                **options) -> CorpusScan:
    """Load corpus ``name`` from ``root`` (default: its folder under the shared data root)."""
    return get_corpus(name, **options).load(root, check_media=check_media)
