"""Model registry: every model is registered by name and built from a config's ``params``.

>>> from emofuse.models import build_model, list_models
>>> net = build_model("cnn2d", n_classes=8, **params)     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._plugins import import_present, import_until
from ..errors import ConfigError

__all__ = ["register_model", "build_model", "list_models"]

_MODULES = ("speech", "face", "text", "fusion", "classical")
_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable:
    """Decorator registering a model class or factory under ``name``."""

    def deco(obj: Callable[..., Any]) -> Callable[..., Any]:
        _REGISTRY[name] = obj
        return obj

    return deco


def _load_all() -> None:
    import_present(__name__, _MODULES)


def _find(name: str) -> None:
    import_until(__name__, _MODULES, lambda: name in _REGISTRY)


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def build_model(name: str, **params: Any) -> Any:
    """Instantiate model ``name`` with ``params``; a :class:`ConfigError` names bad parameters."""
    _find(name)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    try:
        return _REGISTRY[name](**params)
    except TypeError as exc:
        raise ConfigError(f"model {name!r}: {exc}") from None
