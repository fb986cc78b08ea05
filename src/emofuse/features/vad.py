"""Voice activity without torch: Silero VAD's sequence ONNX model (shipped in the ``silero-vad``
package) run with onnxruntime, one call per block of frames.

Used to tell speech from inputs that carry no speech at all (noise, tones, DC, silence), whose
emotion predictions are meaningless.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import threading
from pathlib import Path

import numpy as np

from ..errors import EmofuseError
from ..media.limits import SPEECH_SR

__all__ = ["vad_available", "speech_probabilities", "speech_seconds", "trim_silence",
           "FRAME_S"]

_SR = SPEECH_SR
_FRAME, _CONTEXT = 512, 64
#: Length of one VAD frame in seconds.
FRAME_S = _FRAME / _SR
_BLOCK = 512  # frames per ONNX call (16 s of audio)
_LOCK = threading.Lock()


def _model_file() -> Path | None:
    spec = importlib.util.find_spec("silero_vad")  # locates the package without importing torch
    if spec is None or not spec.submodule_search_locations:
        return None
    f = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad_16k_sequence.onnx"
    return f if f.is_file() else None


def vad_available() -> bool:
    """Whether the Silero sequence model and onnxruntime are installed."""
    return _model_file() is not None and importlib.util.find_spec("onnxruntime") is not None


@functools.cache
def _session():
    f = _model_file()
    if f is None or importlib.util.find_spec("onnxruntime") is None:
        raise EmofuseError("voice-activity detection needs the silero-vad and onnxruntime "
                           "packages (pip install silero-vad onnxruntime)")
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(str(f), so, providers=["CPUExecutionProvider"])


def speech_probabilities(y: np.ndarray, *, sr: int) -> np.ndarray:
    """Probability of speech for every 32 ms frame of a mono waveform (any rate). The last
    answer is kept (keyed by the samples' digest): the product's no-speech check and its
    silence trim ask about the same clip one after the other."""
    y = np.asarray(y, dtype=np.float32).reshape(-1)
    key = (sr, y.size, hashlib.blake2b(y.tobytes(), digest_size=16).digest())
    with _LOCK:
        if _LAST and _LAST[0] == key:
            return _LAST[1].copy()
    p = _probabilities(y, sr=sr)
    with _LOCK:
        _LAST[:] = [key, p]
    return p.copy()


_LAST: list = []


def _probabilities(y: np.ndarray, *, sr: int) -> np.ndarray:
    from ..media import resample

    if sr != _SR:
        y = resample(y, sr, _SR)
    n = (y.size + _FRAME - 1) // _FRAME
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    frames = np.zeros((n, _FRAME), dtype=np.float32)
    frames.reshape(-1)[: y.size] = np.clip(y, -1.0, 1.0)
    context = np.zeros((n, _CONTEXT), dtype=np.float32)
    context[1:] = frames[:-1, -_CONTEXT:]
    blocks = np.concatenate([context, frames], axis=1)
    h = np.zeros((1, 1, 128), dtype=np.float32)
    c = np.zeros_like(h)
    sess, out = _session(), []
    with _LOCK:
        for i in range(0, n, _BLOCK):
            p, h, c = sess.run(["speech_probs", "hn", "cn"],
                               {"input": blocks[i: i + _BLOCK], "h": h, "c": c})
            out.append(np.asarray(p, dtype=np.float32).reshape(-1))
    return np.concatenate(out)


def speech_seconds(y: np.ndarray, *, sr: int, threshold: float = 0.5) -> float:
    """Seconds of the waveform that Silero VAD calls speech (frames above ``threshold``)."""
    return float(np.count_nonzero(speech_probabilities(y, sr=sr) > threshold) * FRAME_S)


def trim_silence(y: np.ndarray, *, sr: int, threshold: float = 0.5, margin_s: float = 0.1
                 ) -> np.ndarray:
    """``y`` without its leading and trailing non-speech: from ``margin_s`` before the first
    to ``margin_s`` after the last VAD frame whose speech probability exceeds ``threshold``
    (``y`` itself when no frame does). Corpora differ in how much silence surrounds the
    speech, and pooled features mix it in."""
    y = np.asarray(y)
    p = speech_probabilities(y, sr=sr)
    on = np.flatnonzero(p > threshold)
    if not len(on):
        return y
    step = _FRAME * sr / _SR                       # one VAD frame in samples at ``sr``
    m = int(round(margin_s * sr))
    start = max(0, int(on[0] * step) - m)
    end = min(len(y), int(round((on[-1] + 1) * step)) + m)
    return y[start:end]
