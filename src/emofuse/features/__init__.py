"""Feature extractors (registered by name) and the on-disk feature cache.

An extractor is a function ``fn(x, **params) -> np.ndarray``; :func:`extract_cached` computes it
for a file once and keeps the result in :class:`~emofuse.features.cache.FeatureCache`, keyed by
the file's content, the extractor's name and version, and its parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._plugins import Registry

__all__ = ["register_feature", "get_feature", "list_features", "Feature"]

_MODULES = ("speech", "speaker_encoder", "whisper", "face", "text", "video")


@dataclass(frozen=True)
class Feature:
    name: str
    fn: Callable[..., Any]
    modality: str
    version: str


#: feature name -> :class:`Feature`
_REGISTRY: Registry[Feature] = Registry("feature", __name__, _MODULES)


def register_feature(name: str, *, modality: str, version: str = "1") -> Callable:
    """Decorator registering an extractor under ``name`` (bump ``version`` when outputs change)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY.register(name, Feature(name, fn, modality, version))
        return fn

    return deco


def list_features() -> list[str]:
    return _REGISTRY.names()


def get_feature(name: str) -> Feature:
    return _REGISTRY.get(name)
