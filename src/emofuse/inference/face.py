"""Facial expression: :class:`FacePredictor`, a face expression network
(:mod:`emofuse.models.face_runtime`) on the detected, aligned crops of an RGB image.

The card's ``features`` give the detector (``yunet`` by default), the crop ``side`` and the
optional test-time augmentation ``tta``. Every face found is classified; the largest one speaks
for the image. A model folder with an ONNX copy (``model.onnx``) runs on onnxruntime without
importing torch. Videos go through :mod:`emofuse.inference.video`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .card import ModelCard, load_weights
from .protocol import register_predictor
from .types import ModalityOutput, face_of

__all__ = ["FacePredictor", "load_network"]

_CARD_TTA = "card"


def load_network(model_dir: str | Path, card: ModelCard) -> Any:
    """The PyTorch network of a face model folder (eval mode)."""
    from ..models.face_runtime import build_net

    if card.task != "face":
        raise DataError(model_dir, f"not a face model (task {card.task!r})")
    state = load_weights(model_dir, card)
    model = card.model or {}
    net = build_net(model.get("name", ""), model.get("params") or {}, len(card.labels))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(model_dir, f"weights do not fit the network in card.json ({exc})") \
            from None
    return net.eval()


@register_predictor("face")
class FacePredictor:
    """Faces of an RGB image -> expression probabilities.

    Parameters
    ----------
    net
        The network (a torch module or its :class:`~emofuse._onnx.OnnxNet` copy).
    card
        The model card (``labels``; ``features``: ``side``, ``detector``, ``tta``).
    tta
        Test-time augmentation settings (default: the card's).
    max_faces, min_size
        Most faces classified per image (largest first) and smallest face side in pixels
        (default: every face the detector finds).
    """

    modality = "face"
    #: :meth:`predict` takes ``detect`` (``auto``, ``always``, ``never``)
    supports_detect = True

    def __init__(self, net: Any, card: ModelCard, *, model_dir: str | Path | None = None,
                 tta: Any = _CARD_TTA, max_faces: int | None = None,
                 min_size: float = 0.0) -> None:
        self.net = net.eval()
        self.model_dir: Path | None = None if model_dir is None else Path(model_dir)
        self.card = card
        self.labels: list[str] = list(card.labels)
        feats = card.features
        self.side = int(feats.get("side", 48))
        self.detector = str(feats.get("detector", "yunet"))
        self.tta = (feats.get("tta") or None) if tta == _CARD_TTA else tta
        self.max_faces, self.min_size = max_faces, min_size

    @classmethod
    def load(cls, model_dir: str | Path, card: ModelCard, **options: Any) -> FacePredictor:
        """The model of ``model_dir``: its ONNX copy when there is one (no torch, fast cold
        start), else the PyTorch network."""
        from .._onnx import load_onnx

        net = load_onnx(model_dir, card.to_dict()) if card.task == "face" else None
        if net is None:
            net = load_network(model_dir, card)
        return cls(net, card, model_dir=model_dir, **options)

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
        from ..features.face_crops import CROP_MAX_SIDE
        from ..media.faces import extract_faces
        from ..models.face_runtime import predict_proba

        if detect not in ("auto", "always", "never"):
            raise ValueError(f"detect must be auto, always or never, not {detect!r}")
        h, w = rgb.shape[:2]
        if detect == "never" or (detect == "auto" and max(h, w) <= CROP_MAX_SIDE):
            p = predict_proba(self.net, self.whole_image_crop(rgb)[None], tta=self.tta)[0]
            face = face_of(self.labels, p, (0, 0, int(w), int(h)))
            return ModalityOutput(np.asarray(p, dtype=np.float64), [face])
        found = extract_faces(rgb, detector=self.detector, side=self.side,
                              max_faces=self.max_faces, min_size=self.min_size)
        if not found:
            return ModalityOutput(None)
        proba = predict_proba(self.net, np.stack([f.crop for f in found]), tta=self.tta)
        faces = [face_of(self.labels, p, tuple(int(round(v)) for v in f.box),
                         score=round(float(f.score), 4)) for f, p in zip(found, proba)]
        return ModalityOutput(np.asarray(proba[0], dtype=np.float64), faces)  # largest first

    @property
    def module(self) -> Any:
        """The PyTorch network (loaded on first use when predictions run on ONNX)."""
        from .._onnx import OnnxNet

        if isinstance(self.net, OnnxNet):
            assert self.model_dir is not None
            return load_network(self.model_dir, self.card)
        return self.net

    def example_input(self) -> Any:
        from ..models.face_runtime import to_input

        rng = np.random.default_rng(0)
        return to_input(rng.integers(0, 256, (2, self.side, self.side), dtype=np.uint8))
