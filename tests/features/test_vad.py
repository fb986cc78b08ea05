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
