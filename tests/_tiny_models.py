"""Tiny models for the product-layer tests: registered features + a two-layer torch head,
saved with :func:`emofuse.train.save_model` into a bundle folder (speech, face, text, fusion).

They exercise the real loading, detection, fusion, service and export code paths in
milliseconds; they know nothing about emotions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from emofuse.features import register_feature
from emofuse.inference import ModalityOutput, register_predictor
from emofuse.inference.generic import LateFusion, TorchFeaturePredictor
from emofuse.models import register_model
from emofuse.train import save_model

SPEECH_LABELS = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]
FACE_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
TEXT_LABELS = ["sad", "happy", "love", "angry", "fear", "surprise"]


@register_feature("tiny_audio", modality="speech")
def tiny_audio(y: np.ndarray, *, sr: int = 16000) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    zcr = float(np.mean(np.abs(np.diff(np.sign(y))) > 0)) if len(y) > 1 else 0.0
    return np.array([np.abs(y).mean(), y.std(), zcr, np.abs(y).max(initial=0.0)], np.float32)


@register_feature("tiny_image", modality="face")
def tiny_image(rgb: np.ndarray) -> np.ndarray:
    x = rgb.reshape(-1, 3).astype(np.float32) / 255.0
    return np.concatenate([x.mean(0), x.std(0)]).astype(np.float32)


@register_feature("tiny_text", modality="text")
def tiny_text(texts: list[str]) -> np.ndarray:
    return np.array([[len(t) / 100.0, t.count("!"), "happy" in t.lower(), "sad" in t.lower()]
                     for t in texts], np.float32)


@register_model("tiny_mlp")
class TinyMLP(nn.Module):
    def __init__(self, *, in_dim: int, n_classes: int, hidden: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.Tanh(), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_predictor("tiny-face")
class TinyFace(TorchFeaturePredictor):
    """The whole image is the face, unless the image is flat (then there is no face)."""

    def predict(self, x):
        if float(np.asarray(x, dtype=np.float32).std()) < 2.0:
            return ModalityOutput(None)
        return super().predict(x)


def _card(task: str, labels: list[str], feature: str, in_dim: int, **extra) -> dict:
    return {"task": task, "labels": labels, "predictor": "torch-feature",
            "features": {"name": feature, "params": {}},
            "model": {"name": "tiny_mlp", "params": {"in_dim": in_dim}},
            "data": {"corpora": ["synthetic"]}, "protocol": {"kind": "none"},
            "metrics": {}, "licence": "test fixture", **extra}


def make_bundle(root: Path, *, fusion: bool = True, seed: int = 0) -> Path:
    """Write speech, face, text (and fusion) tiny models under ``root``; returns ``root``."""
    torch.manual_seed(seed)
    specs = {"speech": (SPEECH_LABELS, "tiny_audio", 4),
             "face": (FACE_LABELS, "tiny_image", 6),
             "text": (TEXT_LABELS, "tiny_text", 4)}
    for name, (labels, feat, dim) in specs.items():
        card = _card(name, labels, feat, dim)
        if name == "face":
            card["predictor"] = "tiny-face"
        save_model(root / name, TinyMLP(in_dim=dim, n_classes=len(labels)), card)
    if fusion:
        labels = sorted(set(SPEECH_LABELS) | set(FACE_LABELS))
        LateFusion.save(root / "fusion", {"speech": 0.7, "face": 0.3}, labels=labels, data={},
                        protocol={}, metrics={})
    return root


def write_wav(path: Path, seconds: float = 1.0, sr: int = 16000, *, freq: float = 220.0,
              silence: tuple[float, float] | None = None) -> Path:
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
    if silence:
        y[int(silence[0] * sr): int(silence[1] * sr)] = 0.0
    sf.write(str(path), y.astype(np.float32), sr, format="WAV")
    return path


def write_image(path: Path, *, flat: bool = False, size: int = 64, fmt: str | None = None) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    arr = (np.full((size, size, 3), 128, np.uint8) if flat
           else rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    Image.fromarray(arr).save(path, format=fmt)
    return path


EXAMPLE_SPEECH = Path(__file__).resolve().parents[1] / "examples" / "speech.flac"


def speech_samples(n: int) -> np.ndarray:
    """``n`` samples (16 kHz) of real speech: the voiced part of ``examples/speech.flac``
    (1.0-2.9 s, a RAVDESS sentence) repeated, so voice-activity detection finds speech."""
    from emofuse.media import load_audio

    y, _ = load_audio(EXAMPLE_SPEECH, sr=16000)
    voiced = y[16000: int(2.9 * 16000)]
    return np.resize(voiced, n).astype(np.float32)


def write_video(path: Path, *, seconds: float = 1.0, audio: bool = True, fps: int = 10,
                flat: bool = False) -> Path:
    """A small mp4 (mpeg4 video, optional AAC audio) written with PyAV."""
    import av

    rng = np.random.default_rng(2)
    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        ast = c.add_stream("aac", rate=16000) if audio else None
        if ast is not None:
            ast.layout = "mono"
        for _ in range(int(seconds * fps)):
            img = (np.full((64, 64, 3), 100, np.uint8) if flat
                   else rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if ast is not None:
            n = int(seconds * 16000)
            y = speech_samples(n)
            for start in range(0, n, 1024):
                chunk = y[start:start + 1024]
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                fr.sample_rate = 16000
                for pkt in ast.encode(fr):
                    c.mux(pkt)
            for pkt in ast.encode():
                c.mux(pkt)
    return path


def make_adaptive_speech(folder: Path, *, feature: str = "tiny_audio", dim: int = 4,
                         seed: int = 0) -> Path:
    """A speech model of kind ``adaptive`` (inductive, folder and enrol heads, random
    weights) over a registered vector ``feature`` of ``dim`` values."""
    from emofuse.models.speech_adaptive import AdaptiveHead, AdaptiveLinear

    rng = np.random.default_rng(seed)
    labels = ["neutral", "happy", "sad", "angry"]
    heads = {m: AdaptiveHead(columns=np.arange(dim), mean=rng.normal(0, 0.1, dim),
                             var=np.full(dim, 0.01), coef=rng.normal(0, 1, (4, dim)),
                             intercept=np.zeros(4), temperature=1.5)
             for m in ("inductive", "folder", "enrol")}
    model = AdaptiveLinear(labels, heads, prior_mean=np.zeros(dim), prior_var=np.full(dim, 0.01))
    arrays, tree = model.to_arrays()
    card = {"task": "speech", "kind": "adaptive", "labels": labels, "adaptive": tree,
            "model": {"name": "adaptive_linear", "params": {}}, "setting": "inductive",
            "sr": 16000, "features": {"feature": feature, "version": "1", "sr": 16000,
                                      "params": {}},
            "data": {"corpora": ["synthetic"]}, "protocol": {"kind": "none"}, "metrics": {},
            "licence": "test fixture"}
    return save_model(folder, {k: torch.from_numpy(v) for k, v in arrays.items()}, card)
