"""Adapters: each turns a model folder into a predictor that :class:`~emofuse.Recognizer` runs.

==================  ===========================================================================
name                what it loads
==================  ===========================================================================
``speech``          :class:`emofuse.speech.SpeechPredictor` (any ``kind``: waveform, vector,
                    classical, ensemble)
``face``            a face expression network (:mod:`emofuse.models.face_runtime`) on aligned grayscale crops
                    from :func:`emofuse.media.faces.extract_faces` (detector and crop side from
                    the card)
``text``            :class:`emofuse.text.TextPredictor`
``fusion``          ``emofuse.fusion.load_predictor(model_dir)``, an object with
                    ``fuse({modality: {label: p}}) -> ({label: p}, {modality: weight})``
``late-fusion``     :class:`LateFusion`: learned modality weights over probabilities
``torch-feature``   :class:`TorchFeaturePredictor`: a registered feature extractor and a
                    registered torch model (handy for small custom models)
==================  ===========================================================================

Every adapter is registered with :func:`emofuse.inference.register_adapter`; a card picks one
with its ``predictor`` key (default: its ``task``). The modality modules are imported only when
a model of theirs is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, EmofuseError
from .inference import (Face, ModalityOutput, ModelUnavailableError, Waveform, late_fusion,
                        register_adapter)

__all__ = ["SpeechAdapter", "FaceAdapter", "TextAdapter", "TorchFeaturePredictor", "LateFusion",
           "softmax"]


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _probs(labels: list[str], p: np.ndarray) -> dict[str, float]:
    return {str(k): round(float(v), 6) for k, v in zip(labels, p)}


def _import(modality: str, module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise ModelUnavailableError(f"no {modality} model available: {module} is not part of "
                                    "this installation") from None


def _noise(seconds: float = 3.0, sr: int = 16000) -> np.ndarray:
    """A fixed speech-like test signal: noise shaped by a syllable-rate envelope."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    return (0.1 * rng.standard_normal(t.size) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
            ).astype(np.float32)


@register_adapter("speech")
class SpeechAdapter:
    """:class:`emofuse.speech.SpeechPredictor` behind the :class:`ModalityPredictor` protocol."""

    modality = "speech"

    def __init__(self, predictor: Any) -> None:
        self.sp = predictor
        self.labels: list[str] = list(predictor.labels)
        self.card: dict[str, Any] = predictor.card
        #: :class:`emofuse.speech.SpeakerStats` applied to every prediction (see
        #: :meth:`emofuse.Recognizer.adapt_speech`); ``None``: the model's default.
        self.speaker: Any = None

    @classmethod
    def load(cls, model_dir: Path, card: dict[str, Any]) -> SpeechAdapter:
        mod = _import("speech", "emofuse.speech")
        return cls(mod.SpeechPredictor(model_dir))

    def predict(self, x: Waveform) -> ModalityOutput:
        r = self.sp.predict(x.y, sr=x.sr, speaker=self.speaker)
        return ModalityOutput(np.array([r["probs"][c] for c in self.labels], dtype=np.float64),
                              warnings=list(r.get("warnings", [])))

    def _member(self) -> Any | None:
        ms = self.sp.members
        return ms[0] if len(ms) == 1 and ms[0].kind in ("waveform", "vector") else None

    @property
    def module(self) -> Any:
        """The torch network (single waveform or vector model; ``None`` otherwise)."""
        m = self._member()
        return None if m is None else m.model

    def onnx_module(self) -> Any:
        """The network to export: a waveform model runs with its STFT computed as a DFT by
        convolutions (ONNX export does not take complex STFTs); the parity check compares the
        exported graph with the unchanged :attr:`module`."""
        m = self._member()
        if m is None or m.kind != "waveform":
            return self.module
        return _with_conv_stft(m.model)

    @property
    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Waveform models take any length; feature vectors have a fixed size."""
        m = self._member()
        if m is not None and m.kind == "waveform":
            return {"input": {0: "batch", 1: "samples"}}
        return {"input": {0: "batch"}}

    def example_input(self) -> Any:
        import torch

        m = self._member()
        if m is None:
            raise EmofuseError("only a single waveform or vector speech model can be exported")
        y = _noise(sr=m.sr)
        x = y[None] if m.kind == "waveform" else m.vectors([y])
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


class _RealSpectrum:
    """What :func:`_stft_by_conv` returns: the ``real`` and ``imag`` parts as real tensors."""

    def __init__(self, real: Any, imag: Any) -> None:
        self.real, self.imag = real, imag


def _stft_by_conv(input: Any, n_fft: int, hop_length: int | None = None,
                  win_length: int | None = None, window: Any = None, center: bool = True,
                  pad_mode: str = "reflect", normalized: bool = False,
                  onesided: bool | None = None, return_complex: bool | None = None) -> Any:
    """``torch.stft`` (one-sided) as a DFT by two convolutions, which ONNX can express.

    Same framing, centring, padding and window as ``torch.stft``; the kernels are computed in
    float64 and cast to the input's type.
    """
    import math

    import torch
    import torch.nn.functional as F

    hop = hop_length or n_fft // 4
    x = input[:, None, :] if input.dim() == 2 else input[None, None, :]
    if center:
        x = F.pad(x, (n_fft // 2, n_fft // 2), mode=pad_mode)
    win = torch.ones(win_length or n_fft, dtype=torch.float64) if window is None \
        else window.to(torch.float64)
    if win.numel() < n_fft:
        left = (n_fft - win.numel()) // 2
        win = F.pad(win, (left, n_fft - win.numel() - left))
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    ang = 2.0 * math.pi * k * n / n_fft
    scale = 1.0 / math.sqrt(n_fft) if normalized else 1.0
    cos = (torch.cos(ang) * win * scale).to(x.dtype)[:, None, :]
    sin = (-torch.sin(ang) * win * scale).to(x.dtype)[:, None, :]
    real, imag = F.conv1d(x, cos, stride=hop), F.conv1d(x, sin, stride=hop)
    if input.dim() == 1:
        real, imag = real[0], imag[0]
    return _RealSpectrum(real, imag)


def _with_conv_stft(module: Any) -> Any:
    """A module that runs ``module`` with ``torch.stft`` computed by :func:`_stft_by_conv`
    (for tracing to ONNX; the model code must use only ``.real`` and ``.imag`` of the STFT)."""
    import torch

    class ConvSTFT(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            original = torch.stft
            torch.stft = _stft_by_conv
            try:
                return self.inner(x)
            finally:
                torch.stft = original

    return ConvSTFT().eval()


@register_adapter("face")
class FaceAdapter:
    """A face expression network (:mod:`emofuse.models.face_runtime`) on detected, aligned crops.

    The card's ``features`` give the detector (``yunet`` by default), the crop ``side`` and
    optional test-time augmentation ``tta``. Every face found is classified; the largest one
    speaks for the image.
    """

    modality = "face"

    def __init__(self, net: Any, card: dict[str, Any]) -> None:
        self.net = net.eval()
        self.model_dir: Path | None = None
        self.card = card
        self.labels: list[str] = list(card["labels"])
        feats = card.get("features") or {}
        self.side = int(feats.get("side", 48))
        self.detector = str(feats.get("detector", "yunet"))
        self.tta = feats.get("tta") or None

    @classmethod
    def load(cls, model_dir: Path, card: dict[str, Any]) -> FaceAdapter:
        from .train.face_model import load_fast, load_predictor

        fast = load_fast(model_dir)  # the ONNX copy: no torch, fast cold start
        net, card = fast if fast is not None else load_predictor(model_dir)
        adapter = cls(net, card)
        adapter.model_dir = Path(model_dir)
        return adapter

    #: the adapter takes ``detect`` (``auto``, ``always``, ``never``) in :meth:`predict`
    supports_detect = True

    def whole_image_crop(self, rgb: np.ndarray) -> np.ndarray:
        """The whole image as the benchmark feeds a ready-made crop: grayscale (ITU-R 601
        luma, as Pillow converts), resized to the model's side (area when shrinking)."""
        import cv2

        gray = rgb if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]),
                                                      cv2.COLOR_RGB2GRAY)
        if gray.shape != (self.side, self.side):
            gray = cv2.resize(gray, (self.side, self.side), interpolation=cv2.INTER_AREA
                              if gray.shape[0] > self.side else cv2.INTER_LINEAR)
        return np.asarray(gray, dtype=np.uint8)

    def predict(self, rgb: np.ndarray, *, detect: str = "auto") -> ModalityOutput:
        """Classify the faces of an RGB image.

        ``detect``: ``always`` runs the face detector; ``never`` takes the whole image as the
        face crop; ``auto`` (default) takes images no larger than ``CROP_MAX_SIDE`` (96 px) as
        ready-made crops, exactly as the FER2013 benchmark feeds them, and detects in others.
        """
        from .media.faces import extract_faces
        from .features.face_crops import CROP_MAX_SIDE
        from .models.face_runtime import predict_proba

        if detect not in ("auto", "always", "never"):
            raise ValueError(f"detect must be auto, always or never, not {detect!r}")
        h, w = rgb.shape[:2]
        if detect == "never" or (detect == "auto" and max(h, w) <= CROP_MAX_SIDE):
            p = predict_proba(self.net, self.whole_image_crop(rgb)[None], tta=self.tta)[0]
            face = Face(box=(0, 0, int(w), int(h)), score=None,
                        label=self.labels[int(np.argmax(p))], probabilities=_probs(self.labels, p))
            return ModalityOutput(np.asarray(p, dtype=np.float64), [face])
        found = extract_faces(rgb, detector=self.detector, side=self.side)
        if not found:
            return ModalityOutput(None)
        proba = predict_proba(self.net, np.stack([f.crop for f in found]), tta=self.tta)
        faces = [Face(box=tuple(int(round(v)) for v in f.box), score=round(float(f.score), 4),
                      label=self.labels[int(np.argmax(p))], probabilities=_probs(self.labels, p))
                 for f, p in zip(found, proba)]
        return ModalityOutput(np.asarray(proba[0], dtype=np.float64), faces)  # largest first

    @property
    def module(self) -> Any:
        """The PyTorch network (loaded on first use when predictions run on ONNX)."""
        from ._onnx import OnnxNet

        if isinstance(self.net, OnnxNet):
            from .train.face_model import load_predictor

            return load_predictor(self.model_dir)[0]
        return self.net

    def example_input(self) -> Any:
        from .models.face_runtime import to_input

        rng = np.random.default_rng(0)
        return to_input(rng.integers(0, 256, (2, self.side, self.side), dtype=np.uint8))


def _dict_input(module: Any, key: str) -> Any:
    """A module taking a plain tensor, for one that takes ``{key: tensor}`` (ONNX export)."""
    import torch

    class DictInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner({key: x})

    return DictInput().eval()


@register_adapter("text")
class TextAdapter:
    """:class:`emofuse.text.TextPredictor` behind the :class:`ModalityPredictor` protocol.

    Multi-label models (sigmoid outputs) are rescaled to sum to one.
    """

    modality = "text"

    def __init__(self, predictor: Any) -> None:
        self.tp = predictor
        self.labels: list[str] = list(predictor.labels)
        self.card: dict[str, Any] = predictor.card

    @classmethod
    def load(cls, model_dir: Path, card: dict[str, Any]) -> TextAdapter:
        mod = _import("text", "emofuse.text")
        return cls(mod.TextPredictor.load(model_dir))

    def predict(self, text: str) -> ModalityOutput:
        from .text import check_text

        clean, notes = check_text(text)
        p = np.asarray(self.tp.predict_proba([clean])[0], dtype=np.float64)
        s = p.sum()
        return ModalityOutput(p / s if s > 0 else np.full(len(p), 1 / len(p)), warnings=notes)

    @property
    def module(self) -> Any:
        """The head over sentence embeddings (``minilm_mlp``); ``None`` for other models."""
        if self.tp.card["model"]["name"] != "minilm_mlp":
            return None
        return _dict_input(self.tp.module, "x")

    def example_input(self) -> Any:
        import torch

        from .features.text import minilm

        emb = minilm(["what a wonderful surprise", "this is awful"], max_len=self.tp.max_len)
        in_dim = self.tp.module.hparams.in_dim
        if in_dim > emb.shape[1]:  # a context model: empty context
            emb = np.concatenate([emb, np.zeros((len(emb), in_dim - emb.shape[1]))], axis=1)
        return torch.from_numpy(np.asarray(emb, dtype=np.float32))


@register_adapter("fusion")
def _fusion_module(model_dir: Path, card: dict[str, Any]) -> Any:
    mod = _import("fusion", "emofuse.fusion")
    loader = getattr(mod, "load_predictor", None)
    if loader is None:
        raise ModelUnavailableError("no fusion model available: emofuse.fusion has no "
                                    "load_predictor(); use a 'late-fusion' card or none")
    return loader(model_dir)


# -- generic adapters ---------------------------------------------------------------------------


@register_adapter("torch-feature")
class TorchFeaturePredictor:
    """A registered feature extractor followed by a registered torch model.

    The card holds ``task`` (``speech``, ``face`` or ``text``), ``labels``,
    ``features: {"name": ..., "params": {...}}`` (see :mod:`emofuse.features`) and
    ``model: {"name": ..., "params": {...}}`` (see :mod:`emofuse.models`; ``n_classes`` is
    filled in from the labels). The extractor is called as ``fn(y, sr=sr, **params)`` (speech),
    ``fn(rgb, **params)`` (face: the whole image is taken as the face) or
    ``fn([text], **params)[0]`` (text).
    """

    def __init__(self, module: Any, card: dict[str, Any]) -> None:
        from .features import get_feature

        self.module = module.eval()
        self.card = card
        self.modality = str(card["task"])
        self.labels = list(card["labels"])
        feats = card["features"]
        self.feature = get_feature(feats["name"])
        self.params = dict(feats.get("params") or {})

    @classmethod
    def load(cls, model_dir: Path, card: dict[str, Any]) -> TorchFeaturePredictor:
        from .models import build_model
        from .train import load_model

        state, card = load_model(model_dir)
        spec = card.get("model") or {}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise DataError(Path(model_dir) / "card.json",
                            "a torch-feature model needs model: {name, params}")
        params = {"n_classes": len(card["labels"]), **(spec.get("params") or {})}
        module = build_model(spec["name"], **params)
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(Path(model_dir) / "model.safetensors",
                            f"weights do not fit model {spec['name']!r}: "
                            f"{str(exc).splitlines()[0]}") from None
        return cls(module, card)

    def features(self, x: Any) -> np.ndarray:
        """The model input of one item (no batch axis)."""
        fn = self.feature.fn
        if self.modality == "speech":
            return np.asarray(fn(x.y, sr=x.sr, **self.params), dtype=np.float32)
        if self.modality == "text":
            return np.asarray(fn([x], **self.params), dtype=np.float32)[0]
        return np.asarray(fn(x, **self.params), dtype=np.float32)

    def proba(self, feats: np.ndarray) -> np.ndarray:
        """Softmax output of the model for one item's features."""
        import torch

        with torch.inference_mode():
            logits = self.module(torch.from_numpy(np.ascontiguousarray(feats))[None])
        return softmax(logits.numpy()[0])

    def predict(self, x: Any) -> ModalityOutput:
        p = self.proba(self.features(x))
        if self.modality != "face":
            return ModalityOutput(p)
        h, w = x.shape[:2]
        face = Face(box=(0, 0, int(w), int(h)), score=None, label=self.labels[int(p.argmax())],
                    probabilities=_probs(self.labels, p))
        return ModalityOutput(p, [face])

    def example_input(self) -> Any:
        """One batch of model input computed from a synthetic item (for ONNX export)."""
        import torch

        if self.modality == "speech":
            item: Any = Waveform(_noise(2.0), 16000)
        elif self.modality == "text":
            item = "what a wonderful surprise"
        else:
            item = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
        return torch.from_numpy(self.features(item))[None]


@register_adapter("late-fusion")
class LateFusion:
    """Weighted average of per-modality probabilities over the union of their labels.

    The model file holds one tensor ``weights`` ordered as the card's ``modalities``; the
    weights of the modalities present are renormalised.
    """

    def __init__(self, weights: Mapping[str, float], card: dict[str, Any]) -> None:
        self.weights = {k: float(v) for k, v in weights.items()}
        self.card = card
        self.labels = list(card["labels"])

    @classmethod
    def load(cls, model_dir: Path, card: dict[str, Any]) -> LateFusion:
        from .train import load_model

        state, card = load_model(model_dir)
        mods = list(card.get("modalities") or [])
        w = state.get("weights")
        if w is None or w.numel() != len(mods):
            raise DataError(Path(model_dir) / "model.safetensors",
                            "late-fusion needs a 'weights' tensor with one value per entry of "
                            "the card's 'modalities'")
        return cls(dict(zip(mods, w.tolist())), card)

    def fuse(self, probabilities: Mapping[str, Mapping[str, float]]
             ) -> tuple[dict[str, float], dict[str, float]]:
        return late_fusion(probabilities, weights=self.weights)

    @staticmethod
    def save(path_dir: str | Path, weights: Mapping[str, float], *, labels: list[str],
             data: Mapping[str, Any], protocol: Mapping[str, Any],
             metrics: Mapping[str, Any], **extra: Any) -> Path:
        """Write a late-fusion model folder with these modality ``weights``."""
        import torch

        from .train import save_model

        mods = list(weights)
        card = {"task": "fusion", "predictor": "late-fusion", "labels": list(labels),
                "modalities": mods, "features": {}, "data": dict(data),
                "protocol": dict(protocol), "metrics": dict(metrics), **extra}
        return save_model(path_dir, {"weights": torch.tensor([float(weights[m]) for m in mods])},
                          card)
