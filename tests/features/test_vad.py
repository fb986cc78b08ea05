"""Voice activity without torch (Silero's sequence ONNX model)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emofuse.features.vad import FRAME_S, speech_probabilities, speech_seconds, vad_available

pytestmark = pytest.mark.skipif(not vad_available(), reason="silero-vad / onnxruntime missing")
SPEECH = Path(__file__).resolve().parents[2] / "examples" / "speech.flac"


def test_speech_found_in_speech_and_not_in_noise_tone_dc():
    from emofuse.media import load_audio

    y, sr = load_audio(SPEECH, sr=16000)
    assert speech_seconds(y, sr=sr) > 1.0
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    for x in (rng.normal(0, 0.3, 32000), 0.5 * np.sin(2 * np.pi * 440 * t),
              np.full(32000, 0.5), rng.uniform(-1, 1, 32000), np.zeros(32000)):
        assert speech_seconds(x.astype(np.float32), sr=16000) < 0.25


def test_frames_rates_and_empty():
    from emofuse.media import load_audio

    y, _ = load_audio(SPEECH, sr=48000)
    p = speech_probabilities(y, sr=48000)
    assert p.shape == (int(np.ceil(len(y) / 3 / 512)),) and p.max() > 0.9
    assert speech_probabilities(np.zeros(0), sr=16000).shape == (0,)
    assert FRAME_S == 0.032


def test_no_torch_import():
    code = ("import numpy as np, sys; from emofuse.features.vad import speech_seconds; "
            "speech_seconds(np.zeros(16000, np.float32), sr=16000); "
            "assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_trim_silence_cuts_the_padding_and_only_it():
    from emofuse.features.vad import trim_silence
    from emofuse.media import load_audio

    y, sr = load_audio(SPEECH, sr=16000)
    core = trim_silence(y, sr=sr)
    pad = np.zeros(sr, np.float32)
    padded = np.concatenate([pad, y, pad])
    cut = trim_silence(padded, sr=sr)
    assert len(core) <= len(y) and abs(len(cut) - len(core)) <= 2 * 512   # one frame each side
    assert len(cut) < len(padded) - 1.5 * sr                      # the two padding seconds go
    assert trim_silence(np.zeros(8000, np.float32), sr=sr).shape == (8000,)   # no speech: kept
    y48, _ = load_audio(SPEECH, sr=48000)                        # any rate
    assert abs(len(trim_silence(y48, sr=48000)) / 3 - len(core)) <= 2 * 512


def test_compute_feature_trims_before_the_extractor(tmp_path):
    import soundfile as sf

    from emofuse.errors import ConfigError
    from emofuse.features.cache import FeatureCache
    from emofuse.features.speech import compute_feature, extract
    from emofuse.features.vad import trim_silence
    from emofuse.media import load_audio

    y, sr = load_audio(SPEECH, sr=16000)
    padded = np.concatenate([np.zeros(sr, np.float32), y, np.zeros(sr, np.float32)])
    p: dict = {}
    a = compute_feature(padded, "logmel_stats", params={**p, "trim": "vad"}, sr=sr)
    assert np.allclose(a, compute_feature(trim_silence(padded, sr=sr), "logmel_stats", params=p, sr=sr))
    assert not np.allclose(a, compute_feature(padded, "logmel_stats", params=p, sr=sr))
    with pytest.raises(ConfigError, match="trim is 'none' or 'vad'"):
        compute_feature(padded, "logmel_stats", params={**p, "trim": "energy"}, sr=sr)
    f = tmp_path / "padded.wav"
    sf.write(f, padded, sr)
    cache = FeatureCache(tmp_path / "cache")
    assert np.allclose(extract(f, "logmel_stats", params={**p, "trim": "vad"}, cache=cache), a,
                       atol=1e-4)
    assert not np.allclose(extract(f, "logmel_stats", params=p, cache=cache), a, atol=1e-4)


def test_the_predictor_trims_as_training_did():
    """A model whose card features say ``trim: vad`` gets trimmed vectors in the product too."""
    from emofuse.features.speech import compute_feature
    from emofuse.inference.speech_models import Member
    from emofuse.media import load_audio

    y, sr = load_audio(SPEECH, sr=16000)
    padded = np.concatenate([np.zeros(sr, np.float32), y, np.zeros(sr, np.float32)])
    feature = {"feature": "logmel_stats", "version": "1", "sr": sr, "params": {"trim": "vad"}}
    m = Member("vector", ["a", "b"], None, {"name": "x", "params": {}}, feature=feature)
    v = m.vectors([padded])[0]
    assert np.allclose(v, compute_feature(padded, "logmel_stats", params={"trim": "vad"}, sr=sr))
    assert not np.allclose(v, compute_feature(padded, "logmel_stats", sr=sr))


def test_the_same_clip_twice_runs_the_model_once(monkeypatch):
    """The product's no-speech check and its silence trim ask about the same clip: the second
    answer is the kept one (a copy), and any other clip runs the model."""
    import emofuse.features.vad as vad

    runs = []
    real = vad._probabilities
    monkeypatch.setattr(vad, "_probabilities",
                        lambda y, *, sr: (runs.append(sr), real(y, sr=sr))[1])
    y = np.random.default_rng(1).normal(size=16000).astype(np.float32) * 0.1
    a = speech_probabilities(y, sr=16000)
    a[:] = 7.0                                   # the caller's copy, not the kept answer
    b = speech_probabilities(y.astype(np.float64), sr=16000)
    assert len(runs) == 1 and b.max() <= 1.0
    speech_probabilities(y, sr=8000)              # another rate: another answer
    y2 = y.copy()
    y2[5] += 0.01
    speech_probabilities(y2, sr=16000)            # other samples: another answer
    assert len(runs) == 3
