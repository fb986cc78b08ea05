"""Content-addressed on-disk cache of extracted features.

>>> cache = FeatureCache()                                       # doctest: +SKIP
>>> settings = {"feature": "mfcc_stats", "version": 1, "n_mfcc": 20}
>>> x = cache.get_or_compute("a.wav", settings, extract_mfcc)    # doctest: +SKIP

An entry's key is the SHA-256 of the file's *content* (not its path, so a renamed or copied
file is still a hit) and of a canonical JSON of ``settings``, which must therefore contain
everything that changes the output, including the extractor's own version: bump it when the
extractor changes and old entries are simply never read again. :data:`CACHE_FORMAT` is mixed
in as well.

Values are one array (``.npy``) or a mapping of name to array (``.npz``), never pickled. Files
are written to a temporary name and renamed into place, so concurrent writers (threads or
processes) never leave a half-written entry; an unreadable entry (e.g. after a crash or a full
disk) is recomputed and overwritten. The folder may be deleted at any time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import threading
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..integrity import remove_stale_temps, temp_path
from ..paths import cache_dir

__all__ = ["FeatureCache", "CACHE_FORMAT", "content_hash", "settings_json", "Value"]

log = logging.getLogger(__name__)

#: Version of the on-disk layout and key recipe; bump to invalidate every entry at once.
CACHE_FORMAT = 1

Value = Union[np.ndarray, dict[str, np.ndarray]]
_CHUNK = 1 << 20
_hash_memo: dict[tuple[str, int, int], str] = {}
_memo_lock = threading.Lock()


def content_hash(path_or_bytes: str | os.PathLike | bytes) -> str:
    """SHA-256 hex digest of a file's content (or of ``bytes``).

    A file's digest is remembered in this process per (absolute path, size, mtime_ns), so a
    corpus is hashed only once per process unless a file changes.
    """
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return hashlib.sha256(path_or_bytes).hexdigest()
    path = Path(path_or_bytes).absolute()
    st = path.stat()
    memo_key = (str(path), st.st_size, st.st_mtime_ns)
    with _memo_lock:
        digest = _hash_memo.get(memo_key)
    if digest is None:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        with _memo_lock:
            _hash_memo[memo_key] = digest
    return digest


def settings_json(settings: Mapping[str, Any]) -> str:
    """Canonical JSON of ``settings``: sorted keys, no spaces, tuples as lists, numpy scalars
    as Python numbers. Raises ``TypeError`` for values that have no stable text form."""
    return json.dumps(_canonical(settings), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=True)


def _canonical(v: Any) -> Any:
    if isinstance(v, Mapping):
        keys = [str(k) for k in v]
        if len(set(keys)) != len(keys):
            raise TypeError(f"settings keys collide once turned into text: {sorted(keys)}")
        return {str(k): _canonical(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    if isinstance(v, np.generic):
        return _canonical(v.item())
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    raise TypeError(f"setting value {v!r} of type {type(v).__name__} cannot be part of a cache "
                    "key; use str, numbers, bools, None, lists or dicts")


class FeatureCache:
    """Feature cache under ``root`` (default ``<emofuse cache>/features``).

    Attributes
    ----------
    hits, misses
        How many look-ups found / did not find a readable entry in this object's lifetime.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else cache_dir() / "features"
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    # -- keys -------------------------------------------------------------------------------

    def key(self, path_or_bytes: str | os.PathLike | bytes, settings: Mapping[str, Any]) -> str:
        """Key of the entry for this content and these settings (64 hex digits)."""
        text = f"{CACHE_FORMAT}\n{content_hash(path_or_bytes)}\n{settings_json(settings)}"
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        shard = self.root / key[:2]
        return shard / f"{key}.npy", shard / f"{key}.npz"

    # -- look-up and storage ----------------------------------------------------------------

    def get_or_compute(self, path_or_bytes: str | os.PathLike | bytes,
                       settings: Mapping[str, Any],
                       fn: Callable[[Any], Any]) -> Value:
        """Cached ``fn(path_or_bytes)``; computed and stored on a miss.

        ``fn`` returns an array (or anything :func:`numpy.asarray` turns into a non-object
        array) or a mapping of names to arrays.
        """
        key = self.key(path_or_bytes, settings)
        value = self.get(key)
        if value is not None:
            return value
        return self.put(key, fn(path_or_bytes))

    def get(self, key: str) -> Value | None:
        """The stored value of ``key``, or ``None`` (counted as a miss) when absent/unreadable.

        An unreadable entry is removed so that the next write replaces it. The first look-up
        of a process sweeps the cache of temporary files left by writers that were killed.
        """
        self._sweep_once()
        for path in self._paths(key):
            try:
                value = _read(path)
            except FileNotFoundError:
                continue
            except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
                log.warning("feature cache entry %s is unreadable (%s); recomputing", path, exc)
                path.unlink(missing_ok=True)
                continue
            self.hits += 1
            return value
        self.misses += 1
        return None

    def _sweep_once(self) -> None:
        root = str(self.root)
        with _SWEPT_LOCK:
            if root in _SWEPT:
                return
            _SWEPT.add(root)
        try:
            shards = [e.path for e in os.scandir(root) if e.is_dir()]
        except OSError:
            return
        n = sum(remove_stale_temps(d) for d in shards)
        if n:
            log.info("feature cache %s: removed %d temporary file(s) of killed writers", root, n)

    def put(self, key: str, value: Any) -> Value:
        """Store ``value`` under ``key`` atomically and return it as stored (arrays)."""
        value = _as_value(value)
        npy, npz = self._paths(key)
        target, other = (npz, npy) if isinstance(value, dict) else (npy, npz)
        for attempt in (1, 2):  # the folder may vanish under us (someone cleared the cache)
            try:
                _write_atomic(target, value)
                other.unlink(missing_ok=True)  # a key holds one kind of value
                break
            except FileNotFoundError:
                if attempt == 2:
                    log.warning("could not write feature cache entry %s; continuing uncached",
                                target)
            except OSError as exc:  # full disk, read-only cache: caching is best effort
                log.warning("could not write feature cache entry %s (%s); continuing uncached",
                            target, exc)
                break
        return value

    def __contains__(self, key: str) -> bool:
        return any(p.exists() for p in self._paths(key))

    def clear(self) -> None:
        """Delete every entry (the whole folder). Counters are kept."""
        shutil.rmtree(self.root, ignore_errors=True)

    def stats(self) -> dict[str, int]:
        """Counters and on-disk size: ``hits``, ``misses``, ``entries``, ``bytes``."""
        files = [p for p in self.root.glob("??/*.np[yz]") if p.is_file()] \
            if self.root.is_dir() else []
        return {"hits": self.hits, "misses": self.misses, "entries": len(files),
                "bytes": sum(p.stat().st_size for p in files)}


def _as_value(value: Any) -> Value:
    if isinstance(value, Mapping):
        if not value:
            raise ValueError("cannot cache an empty mapping of arrays")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise ValueError(f"array names must be identifiers, got {k!r}")
            out[k] = _as_array(v, k)
        return out
    return _as_array(value, "value")


def _as_array(v: Any, name: str) -> np.ndarray:
    arr = np.asarray(v)
    if arr.dtype.hasobject:
        raise ValueError(f"cannot cache {name!r}: object arrays would need pickle")
    return arr


def _read(path: Path) -> Value:
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    if not out:
        raise ValueError("empty archive")
    return out


_SWEPT: set[str] = set()
_SWEPT_LOCK = threading.Lock()


def _write_atomic(target: Path, value: Value) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)  # what a writer killed mid-write left behind
    tmp = temp_path(target)
    try:
        with open(tmp, "xb") as f:
            if isinstance(value, dict):
                np.savez(f, allow_pickle=False, **value)
            else:
                np.save(f, value, allow_pickle=False)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
