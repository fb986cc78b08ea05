"""Checksums for files emofuse writes into its cache (ONNX encoders, joined weights): each file
gets a small ``<name>.sha256.json`` beside it; a file that no longer matches is reported so that
the caller rebuilds it instead of using it."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["atomic_write", "file_sha256", "record_digest", "verify_digest", "digest_path"]

_CHUNK = 1 << 20


def digest_path(path: str | os.PathLike) -> Path:
    """Where the digest record of ``path`` lives: ``<path>.sha256.json``."""
    p = Path(path)
    return p.with_name(p.name + ".sha256.json")


def atomic_write(target: str | os.PathLike, data: bytes | Iterable[bytes]) -> str:
    """Write ``data`` to ``target`` through a temporary file and a rename; return its sha256."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in ([data] if isinstance(data, bytes) else data):
                h.update(chunk)
                f.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def record_digest(path: str | os.PathLike, sha256: str | None = None) -> str:
    """Record the SHA-256 (computed unless given), size and mtime of ``path`` beside it."""
    path = Path(path)
    sha256 = sha256 or file_sha256(path)
    atomic_write(digest_path(path), json.dumps({**_stamp(path), "sha256": sha256}).encode())
    return sha256


def verify_digest(path: str | os.PathLike, *, expected: str | None = None) -> bool:
    """Whether ``path`` still has the digest recorded beside it (and ``expected``, if given).

    An unchanged size and mtime trust the record (no rehash); otherwise the file is hashed
    again. ``False`` for a missing file, a missing or unreadable record, or a mismatch.
    """
    path = Path(path)
    try:
        rec = json.loads(digest_path(path).read_text("utf-8"))
        stamp = _stamp(path)
    except (OSError, ValueError):
        return False
    want = expected or rec.get("sha256")
    if not isinstance(want, str) or (expected and rec.get("sha256") != expected):
        return False
    if rec.get("size") == stamp["size"] and rec.get("mtime_ns") == stamp["mtime_ns"]:
        return True
    if stamp["size"] != rec.get("size"):
        return False
    if file_sha256(path) != want:
        return False
    record_digest(path, want)  # touched but intact: refresh the stamp
    return True
