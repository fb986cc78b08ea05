"""Limits checked before decoding, sample cleaning, and text in any common encoding."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from emofuse.errors import ConfigError, MediaError
from emofuse.media import load_audio, load_image
from emofuse.media.audio import clean_samples
from emofuse.media.text import decode_text, read_lines


def test_header_rate_refused_before_decoding(tmp_path):
    p = tmp_path / "one_hz.wav"
    sf.write(p, np.zeros(4800, np.float32), 1, subtype="PCM_16")
    t0 = time.perf_counter()
    with pytest.raises(MediaError, match="one_hz.wav: implausible sample rate of 1 Hz"):
        load_audio(p)
    assert time.perf_counter() - t0 < 1.0


def test_duration_limit_from_environment(tmp_path, monkeypatch):
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(16000 * 5, np.float32), 16000)
    monkeypatch.setenv("EMOFUSE_MAX_AUDIO_S", "2")
    with pytest.raises(MediaError, match="longer than the 0-min limit"):
        load_audio(p)
    monkeypatch.setenv("EMOFUSE_MAX_AUDIO_S", "nan")  # an unusable setting keeps the default
    assert load_audio(p)[0].size == 16000 * 5


def test_nonfinite_and_overflowing_samples_cleaned_with_warnings():
    y = np.array([0.1, np.nan, np.inf, -np.inf, 1e30, -0.5], np.float32)
    with pytest.warns(UserWarning) as rec:
        z = clean_samples(y, "x.wav")
    msgs = " ".join(str(w.message) for w in rec)
    assert "3 non-finite" in msgs and "beyond full scale" in msgs
    assert np.all(np.isfinite(z)) and np.max(np.abs(z)) <= 1.0


def test_all_nonfinite_samples_refused_by_name(tmp_path):
    p = tmp_path / "nan.wav"
    sf.write(p, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="nan.wav: every sample is NaN or infinity"):
        load_audio(p)


def test_pixel_limit(tmp_path, monkeypatch):
    from PIL import Image

    p = tmp_path / "big.png"
    Image.new("RGB", (400, 300)).save(p)
    monkeypatch.setenv("EMOFUSE_MAX_PIXELS", "1000")
    with pytest.raises(MediaError, match="big.png: image (is 400x300 pixels: )?(is )?larger than"):
        load_image(p)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                      "utf-32", "cp1252", "latin-1"])
def test_text_in_common_encodings(tmp_path, encoding):
    text = "Je suis très heureux aujourd'hui, merci beaucoup\nsecond line"
    p = tmp_path / "t.txt"
    p.write_bytes(text.encode(encoding))
    with __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore")
        assert read_lines(p) == text.splitlines()


@pytest.mark.parametrize("data", [b"RIFF\x00\x40\x00\x40" * 100, b"\x00\x40" * 500,
                                  bytes(range(256)) * 4, b"OggS" + b"a" * 100])
def test_binary_is_not_text(data):
    with pytest.raises(MediaError, match="binary"):
        decode_text(data, "x.txt")


def test_prediction_options_validated():
    from emofuse.inference import PredictOptions

    for bad in ({"window": 0.0}, {"window": float("nan")}, {"frame_rate": 0.0},
                {"max_frames": 0}, {"segmentation": "magic"}, {"hop": -1.0}):
        with pytest.raises(ConfigError, match="invalid prediction options"):
            PredictOptions(**bad)
    assert PredictOptions(window=0.5, hop=None).window == 0.5
