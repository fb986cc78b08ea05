"""Feature cache integrity: a damaged entry (truncated, bit-flipped, emptied, header not
matching its size, checksum mismatch) is a miss: one warning naming it, recomputed, rewritten
with a checksum, never an exception. Legacy entries (no checksum) stay usable."""

from __future__ import annotations

import io
import logging
import zlib
from pathlib import Path

import numpy as np
import pytest

from emofuse.features import cache as cache_mod
from emofuse.features.cache import FeatureCache

SETTINGS = {"feature": "toy", "version": 1}
ITEM = b"some clip content"
VALUE = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
TRAILER = 12


class Fn:
    def __init__(self, value=VALUE) -> None:
        self.calls, self.value = 0, value

    def __call__(self, _):
        self.calls += 1
        return self.value


def _entry(tmp_path: Path, fn: Fn | None = None) -> tuple[FeatureCache, Fn, Path]:
    cache, fn = FeatureCache(tmp_path / "c"), fn or Fn()
    cache.get_or_compute(ITEM, SETTINGS, fn)
    key = cache.key(ITEM, SETTINGS)
    return cache, fn, tmp_path / "c" / key[:2] / f"{key}.npy"


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _assert_recomputed(cache: FeatureCache, fn: Fn, entry: Path, caplog) -> None:
    """The damaged entry was a miss with one warning naming it; the new one has a checksum."""
    with caplog.at_level(logging.WARNING, logger=cache_mod.__name__):
        got = cache.get_or_compute(ITEM, SETTINGS, fn)
    assert fn.calls == 2
    np.testing.assert_array_equal(got, fn.value)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(entry) in warnings[0].getMessage()
    data = entry.read_bytes()
    assert data[-TRAILER:-4] == cache_mod._CRC_MAGIC
    assert int.from_bytes(data[-4:], "little") == zlib.crc32(data[:-TRAILER])
    caplog.clear()
    np.testing.assert_array_equal(cache.get_or_compute(ITEM, SETTINGS, fn), fn.value)
    assert fn.calls == 2 and not caplog.records  # a hit again


def test_new_entries_carry_a_checksum_and_plain_numpy_reads_them(tmp_path: Path) -> None:
    _, _, entry = _entry(tmp_path)
    data = entry.read_bytes()
    assert len(data) == len(_npy_bytes(VALUE)) + TRAILER
    assert data[:-TRAILER] == _npy_bytes(VALUE)
    # older emofuse versions (np.load) ignore the trailer
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), VALUE)


@pytest.mark.parametrize("cut", [0, 5, 60, 128, -TRAILER - 3, -5, -1])
def test_truncated_entry_is_a_miss(tmp_path: Path, caplog, cut: int) -> None:
    cache, fn, entry = _entry(tmp_path)
    entry.write_bytes(entry.read_bytes()[:cut])
    _assert_recomputed(cache, fn, entry, caplog)


def test_zero_length_entry_is_a_miss(tmp_path: Path, caplog) -> None:
    cache, fn, entry = _entry(tmp_path)
    entry.write_bytes(b"")
    _assert_recomputed(cache, fn, entry, caplog)


@pytest.mark.parametrize("where", ["magic", "header", "data_first", "data_last", "trailer_magic",
                                   "crc"])
def test_flipped_byte_is_a_miss(tmp_path: Path, caplog, where: str) -> None:
    cache, fn, entry = _entry(tmp_path)
    data = bytearray(entry.read_bytes())
    n = len(data)
    pos = {"magic": 1, "header": 20, "data_first": 128, "data_last": n - TRAILER - 1,
           "trailer_magic": n - TRAILER + 2, "crc": n - 2}[where]
    data[pos] ^= 0x04
    entry.write_bytes(bytes(data))
    _assert_recomputed(cache, fn, entry, caplog)


def test_trailer_cut_off_exactly_leaves_a_valid_legacy_entry(tmp_path: Path, caplog) -> None:
    cache, fn, entry = _entry(tmp_path)
    entry.write_bytes(entry.read_bytes()[:-TRAILER])  # the array itself is intact
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(cache.get_or_compute(ITEM, SETTINGS, fn), VALUE)
    assert fn.calls == 1 and not caplog.records


def _with_header(arr_for_header: np.ndarray, payload: bytes) -> bytes:
    """An .npy whose header describes ``arr_for_header`` followed by ``payload``."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf,
                                         np.lib.format.header_data_from_array_1_0(arr_for_header))
    return buf.getvalue() + payload


@pytest.mark.parametrize("shape", [(2, 4), (4, 4), (12,), (3, 5)])
@pytest.mark.parametrize("checksum", [True, False])
def test_wrong_shape_entry_is_a_miss(tmp_path: Path, caplog, shape, checksum: bool) -> None:
    """The header's shape no longer matches the bytes that follow it (fewer or more), with or
    without a trailer; a (12,) header over 12 values is a consistent array but its checksum,
    computed over the old header, no longer matches; (3, 5) (one bit from (3, 4)) would take
    the 12 trailer bytes as its last 3 values if the trailer were told by the file's size."""
    cache, fn, entry = _entry(tmp_path)
    payload = VALUE.tobytes()
    data = _with_header(np.zeros(shape, np.float32), payload)
    if checksum:
        data += entry.read_bytes()[-TRAILER:]
    elif shape == (12,):
        pytest.skip("a consistent legacy entry of another shape cannot be told from a good one")
    entry.write_bytes(data)
    _assert_recomputed(cache, fn, entry, caplog)


def test_legacy_entry_without_checksum_is_accepted(tmp_path: Path, caplog) -> None:
    cache, fn, entry = _entry(tmp_path)
    legacy = Fn(np.full((5, 2), 3.5, np.float64))  # what an older version stored
    entry.write_bytes(_npy_bytes(legacy.value))
    with caplog.at_level(logging.WARNING):
        got = cache.get_or_compute(ITEM, SETTINGS, fn)
    assert fn.calls == 1 and not caplog.records and cache.hits == 1
    np.testing.assert_array_equal(got, legacy.value)
    ref = np.load(entry, allow_pickle=False)
    assert got.dtype == np.float64 and got.flags.writeable
    assert got.flags.owndata == ref.flags.owndata  # arrays as numpy's own reader gives them
    assert entry.read_bytes() == _npy_bytes(legacy.value)  # a hit does not rewrite it


@pytest.mark.parametrize("damage", ["truncated", "extra_bytes", "zero_length", "object"])
def test_damaged_legacy_entry_is_a_miss(tmp_path: Path, caplog, damage: str) -> None:
    cache, fn, entry = _entry(tmp_path)
    good = _npy_bytes(VALUE)
    data = {"truncated": good[:-7], "extra_bytes": good + b"\0" * 5, "zero_length": b"",
            "object": _npy_object_array()}[damage]
    entry.write_bytes(data)
    _assert_recomputed(cache, fn, entry, caplog)


def _npy_object_array() -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buf.getvalue()


@pytest.mark.parametrize("value", [
    np.asfortranarray(np.arange(24, dtype=np.int16).reshape(4, 6)),
    np.array(2.5),
    np.zeros((0, 3), np.float32),
    np.array(["ab", "c"]),
    np.arange(6, dtype=">u4"),
    np.array([(1, 2.0)], dtype=[("a", "i1"), ("b", "<f8")]),
    np.ones((3, 0), np.dtype("V0")),
], ids=["fortran", "0d", "empty", "str", "bigendian", "struct", "itemsize0"])
def test_roundtrip_of_unusual_arrays(tmp_path: Path, value: np.ndarray) -> None:
    _, fn, entry = _entry(tmp_path, Fn(value))
    got = FeatureCache(tmp_path / "c").get_or_compute(ITEM, SETTINGS, fn)
    assert fn.calls == 1
    assert got.dtype == value.dtype and got.shape == value.shape
    np.testing.assert_array_equal(got, value)
    ref = np.load(entry, allow_pickle=False)  # same layout as numpy's own reader gives
    assert got.flags.f_contiguous == ref.flags.f_contiguous
    assert got.flags.c_contiguous == ref.flags.c_contiguous


def _npz_entry(tmp_path: Path) -> tuple[FeatureCache, Fn, Path]:
    value = {"frames": np.arange(40, dtype=np.float32).reshape(10, 4),
             "mask": np.ones(10, bool)}
    cache, fn = FeatureCache(tmp_path / "c"), Fn(value)
    cache.get_or_compute(ITEM, SETTINGS, fn)
    key = cache.key(ITEM, SETTINGS)
    return cache, fn, tmp_path / "c" / key[:2] / f"{key}.npz"


def test_npz_damage_is_a_miss(tmp_path: Path, caplog) -> None:
    cache, fn, entry = _npz_entry(tmp_path)
    assert set(FeatureCache(tmp_path / "c").get(cache.key(ITEM, SETTINGS))) == {"frames", "mask"}
    data = bytearray(entry.read_bytes())
    pos = data.index(np.arange(40, dtype=np.float32).tobytes()[40:48])
    data[pos] ^= 0x10  # inside the array data: the zip's CRC-32 of the member catches it
    entry.write_bytes(bytes(data))
    for damage in ("flip", "truncated", "zero_length"):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=cache_mod.__name__):
            got = cache.get_or_compute(ITEM, SETTINGS, fn)
        np.testing.assert_array_equal(got["frames"], fn.value["frames"])
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and str(entry) in warnings[0].getMessage(), damage
        good = entry.read_bytes()
        entry.write_bytes(good[: len(good) // 2] if damage == "flip" else b"")
    assert fn.calls == 4


def test_undeletable_damaged_entry_does_not_crash(tmp_path: Path, caplog, monkeypatch) -> None:
    cache, fn, entry = _entry(tmp_path)
    entry.write_bytes(b"\x93NUMPY garbage")

    def refuse(self, missing_ok=False):
        raise PermissionError(13, "read-only", str(self))

    monkeypatch.setattr(Path, "unlink", refuse)
    with caplog.at_level(logging.WARNING, logger=cache_mod.__name__):
        got = cache.get_or_compute(ITEM, SETTINGS, fn)
    np.testing.assert_array_equal(got, VALUE)
    assert fn.calls == 2
