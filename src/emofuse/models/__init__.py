"""Model registry: every model is registered by name and built from a config's ``params``.

>>> from emofuse.models import build_model, list_models
>>> net = build_model("cnn2d", n_classes=8, **params)     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._plugins import Registry

__all__ = ["register_model", "build_model", "list_models"]

_MODULES = ("speech", "face", "text", "fusion", "classical")
#: model name -> class or factory
_REGISTRY: Registry[Callable[..., Any]] = Registry("model", __name__, _MODULES)


def register_model(name: str) -> Callable:
    """Decorator registering a model class or factory under ``name``."""
    return _REGISTRY.decorator(name)


def list_models() -> list[str]:
    return _REGISTRY.names()


def build_model(name: str, **params: Any) -> Any:
    """Instantiate model ``name`` with ``params``; a :class:`ConfigError` names bad parameters."""
    return _REGISTRY.build(name, **params)
