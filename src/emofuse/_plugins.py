"""Registries, and the import of the optional sub-modules of a package that register things."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["Registry", "import_present", "import_until"]

T = TypeVar("T")


def import_present(package: str, modules: Iterable[str]) -> None:
    """Import ``package.<m>`` for each ``m`` that exists; a module not written (or not
    installed) yet is skipped, while an import error *inside* a present module propagates."""
    for mod in modules:
        name = f"{package}.{mod}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def import_until(package: str, modules: Iterable[str], done: Callable[[], bool]) -> None:
    """Import ``package.<m>`` one module at a time until ``done()`` is true, so looking up one
    registered name does not import every modality's dependencies (fast cold start)."""
    for mod in modules:
        if done():
            return
        import_present(package, [mod])


_MISSING: Any = object()


class Registry(dict[str, T]):
    """Names -> the registered things of one kind (models, features, corpora, generators,
    suites, adapters): one ``register`` / ``get`` / ``names`` for all of them.

    The modules of ``package`` that register things are imported lazily: :meth:`get` imports
    them one at a time until the name appears (a lookup does not pull in every modality's
    dependencies), :meth:`names` imports them all. It is a ``dict``, so tests may save and
    restore it like one.
    """

    def __init__(self, kind: str, package: str | None = None, modules: Iterable[str] = (), *,
                 error: Callable[[str], Exception] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self.package = package
        self.modules = tuple(modules)
        self._error = error

    def register(self, name: str, obj: T) -> T:
        """Add ``obj`` under ``name`` (a later registration replaces an earlier one)."""
        self[name] = obj
        return obj

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator(name)`` registers the decorated object."""
        def deco(obj: T) -> T:
            return self.register(name, obj)

        return deco

    def build(self, name: str, **params: Any) -> Any:
        """Call the factory registered as ``name`` with ``params``; bad parameters become a
        :class:`~emofuse.errors.ConfigError` naming the kind and the name."""
        from .errors import ConfigError

        factory = self.get(name)
        try:
            return factory(**params)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from None

    def load(self, name: str | None = None) -> None:
        """Import the registering modules (until ``name`` is registered, when given)."""
        if self.package is None:
            return
        if name is None:
            import_present(self.package, self.modules)
        else:
            import_until(self.package, self.modules, lambda: name in self)

    def get(self, name: str, default: Any = _MISSING) -> Any:  # type: ignore[override]
        """The object registered as ``name``; unknown names raise the registry's error
        (a :class:`~emofuse.errors.ConfigError` listing the known names) unless ``default``
        is given (then it is returned, as ``dict.get`` does)."""
        if name not in self:
            self.load(name)
        if name in self:
            return self[name]
        if default is not _MISSING:
            return default
        msg = f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or 'none yet'}"
        if self._error is not None:
            raise self._error(msg)
        from .errors import ConfigError

        raise ConfigError(msg)

    def names(self) -> list[str]:
        """Every registered name, sorted (all registering modules imported)."""
        self.load()
        return sorted(self)
