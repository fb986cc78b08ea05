"""The emofuse web service: :func:`create_app` (FastAPI) with its web page.

FastAPI is imported only when the app is built, so ``import emofuse.serve`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the FastAPI application; see :func:`emofuse.serve.app.create_app`."""
    from .app import create_app as _create

    return _create(*args, **kwargs)
