"""Import the optional sub-modules of a package that register things on import."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable


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
