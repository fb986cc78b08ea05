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
processes) never leave a half-written entry. The folder may be deleted at any time.

Integrity: a damaged entry (truncated, bit-flipped, emptied, its header no longer matching its
size) is never used: it is logged (one warning naming the file), removed, and the look-up is a
miss, so the value is recomputed and written again.

* ``.npy`` entries end with a 12-byte trailer after the array data: :data:`_CRC_MAGIC` and the
  CRC-32 (:func:`zlib.crc32`, little-endian) of every byte before it (header and data). The
  trailer is plain trailing data to :func:`numpy.load`, which ignores it, so older emofuse
  versions still read these entries. A file that ends with the magic is always checked this
  way, and the header must put the end of the array right before the trailer.
* ``.npy`` entries without the trailer (written before it existed: legacy) are still used, after
  a structural check: a valid header, no object dtype, and a file size of exactly header + data
  (no byte missing, none extra). A bit flip inside a legacy entry's data cannot be detected.
  The format and the keys are unchanged, so no existing entry is invalidated; a legacy entry
  is not rewritten on a hit, it gets its checksum when it is next written (after a miss).
* ``.npz`` entries are zip archives, which already store a CRC-32 per member, checked here on
  every read; each member gets the same structural check.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union

import numpy as np
from numpy.lib import format as _npy_format

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
#: Marks the checksum trailer of an ``.npy`` entry: these 8 bytes, then ``<I`` CRC-32.
_CRC_MAGIC = b"EFCRC32\x01"
_TRAILER = struct.Struct("<8sI")


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
        """The stored value of ``key``, or ``None`` (counted as a miss) when absent, unreadable
        or damaged (checksum or size mismatch: see the module notes).

        A damaged entry is logged and removed so that the next write replaces it. The first look-up
        of a process sweeps the cache of temporary files left by writers that were killed.
        """
        self._sweep_once()
        for path in self._paths(key):
            try:
                value = _read(path)
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - damaged in any way: a miss, never a crash
                log.warning("feature cache entry %s is damaged or unreadable (%s: %s); "
                            "recomputing", path, type(exc).__name__, exc)
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass  # the next put() replaces it (or reports why it cannot)
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
    """The value stored at ``path``; ``ValueError`` (or ``OSError``, ``zipfile.BadZipFile``)
    when it is damaged."""
    if path.suffix == ".npy":
        with open(path, "rb") as f:
            data = f.read()
        return _parse_npy(data, trailer=True)
    out = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"unexpected archive member {info.filename!r}")
            # ZipFile.read checks the member's CRC-32
            out[info.filename[:-4]] = _parse_npy(z.read(info), trailer=False)
    if not out:
        raise ValueError("empty archive")
    return out


def _parse_npy(data: bytes, *, trailer: bool) -> np.ndarray:
    """The array in ``data`` (the bytes of an ``.npy`` file), checked: its size must be exactly
    header + array data, plus, where ``trailer`` is allowed and present, the checksum trailer,
    whose CRC-32 must match. Returns an array of its own, like :func:`numpy.load`."""
    fmt = _npy_format
    fp = io.BytesIO(data)
    version = fmt.read_magic(fp)
    if version in ((1, 0), (2, 0)):
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
            fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(fp)
        if dtype.hasobject:
            raise ValueError("object array (would need pickle)")
        if any(n < 0 for n in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        count = math.prod(shape)
        offset = fp.tell()
        end = offset + count * dtype.itemsize
        _check_size(data, end, trailer)  # before allocating anything
        if dtype.itemsize == 0:
            flat = np.ndarray(count, dtype=dtype)
        else:
            flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset).copy()
        return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)
    # other versions (3.0: utf-8 header, written only for unusual dtypes): numpy's own reader
    fp.seek(0)
    arr = fmt.read_array(fp, allow_pickle=False)
    _check_size(data, fp.tell(), trailer)
    return arr


def _check_size(data: bytes, end: int, trailer: bool) -> None:
    """Where ``trailer`` is allowed and ``data`` ends with one (told by its magic, whatever the
    size: a header whose shape was damaged could otherwise claim the trailer as array data),
    the array must stop right before it and its CRC-32 must match. Otherwise (legacy entry)
    ``data`` must stop exactly at ``end``."""
    size = len(data)
    if trailer and size >= _TRAILER.size:
        magic, crc = _TRAILER.unpack_from(data, size - _TRAILER.size)
        if magic == _CRC_MAGIC:
            if size - _TRAILER.size != end:
                raise ValueError(f"{size - _TRAILER.size} bytes before the checksum where the "
                                 f"header implies {end}")
            if zlib.crc32(memoryview(data)[:end]) != crc:
                raise ValueError("checksum mismatch")
            return
    if size != end:
        raise ValueError(f"{size} bytes where the header implies {end}")


class _CrcWriter:
    """File wrapper that keeps the CRC-32 of what goes through it."""

    def __init__(self, f: Any) -> None:
        self.f, self.crc = f, 0

    def write(self, b: Any) -> int:
        self.crc = zlib.crc32(b, self.crc)
        return self.f.write(b)


_SWEPT: set[str] = set()
_SWEPT_LOCK = threading.Lock()


def _write_atomic(target: Path, value: Value) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target.parent)  # what a writer killed mid-write left behind
    tmp = temp_path(target)
    try:
        with open(tmp, "xb") as f:
            if isinstance(value, dict):
                np.savez(f, allow_pickle=False, **value)  # zip: CRC-32 per member
            else:
                w = _CrcWriter(f)
                np.save(w, value, allow_pickle=False)
                f.write(_TRAILER.pack(_CRC_MAGIC, w.crc))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
