"""The fast MiniLM path (tokenizers + onnxruntime, no torch): parity with
sentence-transformers, the ONNX cache, fallbacks, and a prediction without torch."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import emofuse.features.minilm as ft
from emofuse.errors import ConfigError

pytest.importorskip("onnxruntime")
pytest.importorskip("tokenizers")

TEXTS = ["", " \t\n ", "I am so happy", "😂😂🎉", "I hate this!!! 😡 face with tears of joy",
         "我很高兴 today очень рад", "Je suis très triste 我很难过", "مرحبا بالعالم، كيف حالك؟",
         "so happy today! " * 300,                                 # truncated at max_len
         "a " * 126, "a " * 127,                                   # around the 128-token limit
         "ok\x00\x07 fine", "Mañana será otro día, ¿verdad?", "@user loved it... really?!",
         "The quick brown fox jumps over the lazy dog."]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """A cache folder holding the ONNX export (built once for this module)."""
    cache = tmp_path_factory.mktemp("onnx-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("EMOFUSE_CACHE", str(cache))
    try:
        path = ft.prepare_fast_encoder()
    finally:
        mp.undo()
    return cache, path


@pytest.fixture
def fast(onnx_cache):
    return ft.FastEncoder(onnx_cache[1], ft.minilm_path() / "tokenizer.json", threads=1)


def test_onnx_file_is_cached_by_weights_hash(onnx_cache, monkeypatch):
    cache, path = onnx_cache
    monkeypatch.setenv("EMOFUSE_CACHE", str(cache))
    sha = hashlib.sha256((ft.minilm_path() / "model.safetensors").read_bytes()).hexdigest()
    assert path.parent == cache / "text-encoder" and sha in path.name
    assert path == ft.fast_encoder_path()                      # from the size/mtime stamp
    assert not list(path.parent.glob("*.tmp"))                 # written atomically
    before = path.stat().st_mtime_ns
    assert ft.prepare_fast_encoder() == path and path.stat().st_mtime_ns == before  # not rebuilt


@pytest.mark.parametrize("max_len", [128, 16])
def test_fast_encoder_matches_sentence_transformers(fast, max_len):
    ref = ft.minilm_torch(TEXTS, max_len=max_len)
    for batch_size in (64, 4):
        got = fast.encode(TEXTS, max_len=max_len, batch_size=batch_size)
        assert got.shape == (len(TEXTS), ft.MINILM_DIM) and got.dtype == np.float32
        diff = float(np.abs(got - ref).max())
        assert diff < 1e-4, (max_len, batch_size, diff)
    # sentence-transformers normalises (the model's Normalize module) whatever it is told
    raw = fast.encode(TEXTS[:4], max_len=max_len, normalize=False)
    assert np.abs(raw - ft.minilm_torch(TEXTS[:4], max_len=max_len, normalize=False)
                  ).max() < 1e-4
    assert fast.encode([]).shape == (0, ft.MINILM_DIM)


def test_long_text_is_truncated(fast):
    long = "so happy today but then it got really sad " * 50
    a, b = fast.encode([long], max_len=16)[0], fast.encode([long], max_len=128)[0]
    assert a @ b < 0.999                                      # truncation matters
    assert np.allclose(fast.encode([long + " and more"], max_len=16), a, atol=1e-6)


def test_minilm_uses_the_fast_path(onnx_cache, monkeypatch):
    monkeypatch.setenv("EMOFUSE_CACHE", str(onnx_cache[0]))
    monkeypatch.setattr(ft, "_FAST", {})
    assert isinstance(ft.fast_encoder(build=False), ft.FastEncoder)
    got = ft.minilm(TEXTS[:5])
    assert np.abs(got - ft.minilm_torch(TEXTS[:5])).max() < 1e-4
    monkeypatch.setenv("EMOFUSE_TEXT_ENCODER", "torch")
    assert ft.fast_encoder() is None
    monkeypatch.setenv("EMOFUSE_TEXT_ENCODER", "nonsense")
    with pytest.raises(ConfigError):
        ft.fast_encoder()


def test_falls_back_without_onnxruntime(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path))          # no shared ONNX export here
    monkeypatch.setattr(ft, "_FAST", {})
    monkeypatch.setitem(sys.modules, "onnxruntime", None)      # import fails
    assert ft.fast_encoder() is None
    assert ft.minilm(["I am so happy"]).shape == (1, ft.MINILM_DIM)
    with pytest.raises(ConfigError, match="onnxruntime"):
        ft.prepare_fast_encoder()
    monkeypatch.setattr(ft, "_FAST", {})
    monkeypatch.setenv("EMOFUSE_TEXT_ENCODER", "onnx")
    with pytest.raises(ConfigError, match="not available"):
        ft.fast_encoder()


def test_failed_export_falls_back_and_is_remembered(monkeypatch, tmp_path):
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path))          # no shared ONNX export here
    calls = []

    def broken(folder, target):
        calls.append(target)
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(ft, "_FAST", {})
    monkeypatch.setattr(ft, "_export", broken)
    assert ft.fast_encoder() is None and len(calls) == 1
    failed = ft.fast_encoder_path().with_suffix(".failed")
    assert "exporter exploded" in failed.read_text()
    assert ft.minilm(["fine"]).shape == (1, ft.MINILM_DIM)     # sentence-transformers
    monkeypatch.setattr(ft, "_FAST", {})                       # a new process
    assert ft.fast_encoder() is None and len(calls) == 1       # not retried
    with pytest.raises(ConfigError, match="exporter exploded"):
        ft.prepare_fast_encoder()                              # an explicit call retries
    assert len(calls) == 2


def test_weights_hash_is_remembered(monkeypatch, tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"abc")
    sha = ft._weights_sha256(weights)
    index = json.loads((ft._fast_dir() / "sources.json").read_text())
    assert index[str(weights)]["sha256"] == sha
    index[str(weights)]["sha256"] = "remembered"
    (ft._fast_dir() / "sources.json").write_text(json.dumps(index))
    assert ft._weights_sha256(weights) == "remembered"         # stat unchanged: not rehashed
    weights.write_bytes(b"abcd")
    assert ft._weights_sha256(weights) == hashlib.sha256(b"abcd").hexdigest()


_NO_TORCH = """
import sys
from emofuse.inference import Recognizer
p = Recognizer.load("text").predict_text("I can't believe we finally won, best day ever!")
heavy = sorted(m for m in ("torch", "transformers", "sentence_transformers", "lightning")
               if m in sys.modules)
print(p.label, heavy)
"""


def test_text_prediction_imports_no_torch(onnx_cache):
    env = {**os.environ, "EMOFUSE_CACHE": str(onnx_cache[0]), "OMP_NUM_THREADS": "1"}
    env.pop("EMOFUSE_MODELS", None)
    probe = subprocess.run([sys.executable, "-c", "import sys, emofuse.models.checkpoint; "
                            "print('torch' in sys.modules)"], capture_output=True, text=True,
                           env=env, check=True)
    if probe.stdout.strip() == "True":
        pytest.skip("emofuse.models.checkpoint imports torch (model cards are read with it)")
    r = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == "happy" and r.stdout.strip().endswith("[]"), r.stdout
