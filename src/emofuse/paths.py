"""Where emofuse finds data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root", "protocols_root", "cache_dir", "repo_root", "examples_dir"]

_PKG = Path(__file__).resolve().parent


def repo_root() -> Path:
    """Root of the source checkout (two levels above the package), used for defaults."""
    return _PKG.parent.parent


def data_root() -> Path:
    """Root of the corpora: ``$EMOFUSE_DATA`` or ``../shared/data`` next to the checkout."""
    env = os.environ.get("EMOFUSE_DATA")
    if env:
        return Path(env).expanduser()
    for base in (Path.cwd(), repo_root()):
        cand = base.parent / "shared" / "data"
        if cand.is_dir():
            return cand
    return repo_root().parent / "shared" / "data"


def protocols_root() -> Path:
    """Folder of shared benchmark folds: ``$EMOFUSE_PROTOCOLS`` or ``<data_root>/../protocols``."""
    env = os.environ.get("EMOFUSE_PROTOCOLS")
    if env:
        return Path(env).expanduser()
    return data_root().parent / "protocols"


def cache_dir() -> Path:
    """Feature and model cache: ``$EMOFUSE_CACHE`` or ``~/.cache/emofuse``. Safe to delete."""
    env = os.environ.get("EMOFUSE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg).expanduser() / "emofuse" if xdg else Path.home() / ".cache" / "emofuse"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 4 MiB chunks."""
    import hashlib

    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def examples_dir() -> Path | None:
    """The example files: ``examples/`` in the working directory, the repository's, or the copy
    installed inside the package (wheels); ``None`` when none is found."""
    here = Path(__file__).resolve()
    for cand in (Path("examples"), here.parents[2] / "examples", here.parent / "examples"):
        if (cand / "ATTRIBUTION.md").is_file():
            return cand
    return None
