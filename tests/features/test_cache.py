"""Feature cache: keys by content and settings, atomic writes, corruption and concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emofuse.features.cache import FeatureCache, content_hash, settings_json

SETTINGS = {"feature": "toy", "version": 1, "n": 3}


class Counter:
    """Feature function that counts its calls: the mean and length of the file's bytes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: str | os.PathLike | bytes) -> np.ndarray:
        self.calls += 1
        data = path if isinstance(path, bytes) else Path(path).read_bytes()
        return np.frombuffer(data, dtype=np.uint8).astype(np.float32)[:8] + 0.5


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "media" / "a.wav"
    path.parent.mkdir()
    path.write_bytes(bytes(range(64)) * 10)
    return path


def test_second_call_is_a_hit(tmp_path: Path, clip: Path) -> None:
    cache, fn = FeatureCache(tmp_path / "c"), Counter()
    first = cache.get_or_compute(clip, SETTINGS, fn)
    second = cache.get_or_compute(clip, SETTINGS, fn)
    assert fn.calls == 1 and (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(first, second)
    assert second.dtype == np.float32
    # a fresh object (another process, later) finds it too; stored in a shard folder
    assert FeatureCache(tmp_path / "c").get_or_compute(clip, SETTINGS, fn) is not None
    assert fn.calls == 1
    key = cache.key(clip, SETTINGS)
    assert (tmp_path / "c" / key[:2] / f"{key}.npy").is_file() and key in cache
    assert cache.stats()["entries"] == 1


def test_settings_change_the_key(tmp_path: Path, clip: Path) -> None:
    cache, fn = FeatureCache(tmp_path), Counter()
    cache.get_or_compute(clip, SETTINGS, fn)
    cache.get_or_compute(clip, {**SETTINGS, "version": 2}, fn)
    cache.get_or_compute(clip, {**SETTINGS, "n": 4}, fn)
    assert fn.calls == 3 and cache.stats()["entries"] == 3
    # key order, tuples vs lists and numpy scalars do not matter
    a = {"b": (1, 2), "a": np.float32(0.5), "c": {"y": 1, "x": [np.int64(3)]}}
    b = {"a": 0.5, "c": {"x": [3], "y": 1}, "b": [1, 2]}
    assert settings_json(a) == settings_json(b)
    assert cache.key(clip, a) == cache.key(clip, b)
    with pytest.raises(TypeError, match="cannot be part of a cache key"):
        cache.key(clip, {"fn": object()})


def test_same_content_elsewhere_is_a_hit(tmp_path: Path, clip: Path) -> None:
    cache, fn = FeatureCache(tmp_path / "c"), Counter()
    cache.get_or_compute(clip, SETTINGS, fn)
    copy = tmp_path / "renamed.flac"
    copy.write_bytes(clip.read_bytes())
    cache.get_or_compute(copy, SETTINGS, fn)
    cache.get_or_compute(clip.read_bytes(), SETTINGS, fn)  # raw bytes, same content
    assert fn.calls == 1 and cache.hits == 2


def test_changed_file_is_rehashed(tmp_path: Path, clip: Path) -> None:
    cache, fn = FeatureCache(tmp_path / "c"), Counter()
    cache.get_or_compute(clip, SETTINGS, fn)
    before = content_hash(clip)
    clip.write_bytes(b"other content, other size")
    assert content_hash(clip) != before
    cache.get_or_compute(clip, SETTINGS, fn)
    assert fn.calls == 2


@pytest.mark.parametrize("cut", [0, 20, 100])
def test_corrupt_entry_is_recomputed(tmp_path: Path, clip: Path, cut: int) -> None:
    cache, fn = FeatureCache(tmp_path / "c"), Counter()
    good = cache.get_or_compute(clip, SETTINGS, fn)
    key = cache.key(clip, SETTINGS)
    entry = tmp_path / "c" / key[:2] / f"{key}.npy"
    entry.write_bytes(entry.read_bytes()[:cut])  # a partial write from a crashed run
    again = cache.get_or_compute(clip, SETTINGS, fn)
    assert fn.calls == 2
    np.testing.assert_array_equal(again, good)
    np.testing.assert_array_equal(np.load(entry, allow_pickle=False), good)  # overwritten


def test_dict_values_and_no_pickle(tmp_path: Path, clip: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    calls = []

    def fn(path):
        calls.append(path)
        return {"frames": np.ones((4, 3), np.float16), "mask": np.array([1, 1, 0, 0], bool)}

    first = cache.get_or_compute(clip, SETTINGS, fn)
    second = cache.get_or_compute(clip, SETTINGS, fn)
    assert len(calls) == 1 and set(second) == {"frames", "mask"}
    assert second["frames"].dtype == np.float16 and second["mask"].dtype == bool
    np.testing.assert_array_equal(first["mask"], second["mask"])
    key = cache.key(clip, SETTINGS)
    entry = tmp_path / "c" / key[:2] / f"{key}.npz"
    entry.write_bytes(b"PK\x03\x04 not really a zip")
    cache.get_or_compute(clip, SETTINGS, fn)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="object arrays"):
        cache.get_or_compute(clip, {"other": 1}, lambda p: np.array([{"a": 1}], dtype=object))


def test_clear_and_deleting_the_folder_are_safe(tmp_path: Path, clip: Path) -> None:
    root = tmp_path / "c"
    cache, fn = FeatureCache(root), Counter()
    cache.get_or_compute(clip, SETTINGS, fn)
    cache.clear()
    assert not root.exists()
    cache.get_or_compute(clip, SETTINGS, fn)
    assert fn.calls == 2 and root.is_dir()
    import shutil
    shutil.rmtree(root)  # behind the cache's back
    cache.get_or_compute(clip, SETTINGS, fn)
    assert fn.calls == 3 and cache.get(cache.key(clip, SETTINGS)) is not None


def test_default_root_follows_emofuse_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "cache"))
    assert FeatureCache().root == tmp_path / "cache" / "features"


WORKER = textwrap.dedent("""
    import sys
    import numpy as np
    from emofuse.features.cache import FeatureCache
    root, me = sys.argv[1], int(sys.argv[2])
    cache = FeatureCache(root)
    n = 200_000
    key = "ab" + "0" * 62
    for i in range(40):
        cache.put(key, np.full(n, me, np.float32))        # both write the same entry
        got = cache.get(key)
        assert got is not None and got.shape == (n,), "torn read"
        assert got.min() == got.max() and got[0] in (1, 2), "mixed content"
        # and both fill distinct keys through get_or_compute
        out = cache.get_or_compute(f"item {i % 10}".encode(), {"v": 1},
                                   lambda b: np.frombuffer(b * 1000, np.uint8))
        assert out.shape == (len(f"item {i % 10}") * 1000,)
    print("ok", me, cache.hits, cache.misses)
""")


def test_concurrent_writers_do_not_corrupt(tmp_path: Path) -> None:
    root = tmp_path / "c"
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(root), str(me)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for me in (1, 2)]
    results = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert out.startswith("ok")
    cache = FeatureCache(root)
    final = cache.get("ab" + "0" * 62)
    assert final is not None and final.min() == final.max() and final[0] in (1, 2)
    assert cache.stats()["entries"] == 11
    assert not list(root.rglob("*.tmp"))  # no temporary left behind
