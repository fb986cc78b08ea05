"""Checksums for files emofuse writes into its cache (ONNX encoders, joined weights): each file
gets a small ``<name>.sha256.json`` beside it; a file that no longer matches is reported so that
the caller rebuilds it instead of using it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["atomic_write", "file_sha256", "record_digest", "verify_digest", "digest_path",
           "temp_path", "remove_stale_temps"]

_CHUNK = 1 << 20


def digest_path(path: str | os.PathLike) -> Path:
    """Where the digest record of ``path`` lives: ``<path>.sha256.json``."""
    p = Path(path)
    return p.with_name(p.name + ".sha256.json")


def temp_path(target: str | os.PathLike) -> Path:
    """A hidden temporary name beside ``target`` that carries this process' id
    (``.<name>.<pid>.<random>.tmp``), so that :func:`remove_stale_temps` can tell the files
    a killed writer left behind."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete the temporary files in ``folder`` whose writing process no longer runs (killed
    while writing); return how many. Files of running processes are left alone."""
    n = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        parts = name[:-4].split(".")
        pid = next((int(x) for x in reversed(parts) if x.isdigit()), None)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        try:
            os.unlink(os.path.join(folder, name))
            n += 1
        except OSError:
            pass
    return n


def atomic_write(target: str | os.PathLike, data: bytes | Iterable[bytes]) -> str:
    """Write ``data`` to ``target`` through a temporary file and a rename; return its sha256."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)
    tmp = temp_path(target)
    h = hashlib.sha256()
    try:
        with open(tmp, "xb") as f:
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
