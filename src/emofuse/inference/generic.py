"""Generic predictors: a learned fusion model (``fusion``), fixed modality weights
(``late-fusion``, :class:`LateFusion`) and a registered feature extractor followed by a
registered torch model (``torch-feature``, :class:`TorchFeaturePredictor`, handy for small
custom models)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .card import ModelCard, load_weights
from .protocol import import_modality, late_fusion, register_predictor, softmax
from .types import SR, ModalityOutput, ModelUnavailableError, Waveform, face_of

__all__ = ["TorchFeaturePredictor", "LateFusion"]


@register_predictor("fusion")
def _fusion_module(model_dir: Path, card: ModelCard) -> Any:
    mod = import_modality("fusion", "emofuse.fusion")
    loader = getattr(mod, "load_predictor", None)
    if loader is None:
        raise ModelUnavailableError("no fusion model available: emofuse.fusion has no "
                                    "load_predictor(); use a 'late-fusion' card or none")
    return loader(model_dir)


# -- generic adapters ---------------------------------------------------------------------------


@register_predictor("torch-feature")
class TorchFeaturePredictor:
    """A registered feature extractor followed by a registered torch model.

    The card holds ``task`` (``speech``, ``face`` or ``text``), ``labels``,
    ``features: {"name": ..., "params": {...}}`` (see :mod:`emofuse.features`) and
    ``model: {"name": ..., "params": {...}}`` (see :mod:`emofuse.models`; ``n_classes`` is
    filled in from the labels). The extractor is called as ``fn(y, sr=sr, **params)`` (speech),
    ``fn(rgb, **params)`` (face: the whole image is taken as the face) or
    ``fn([text], **params)[0]`` (text).
    """

    def __init__(self, module: Any, card: ModelCard) -> None:
        from ..features import get_feature

        self.module = module.eval()
        self.card = card
        self.modality = str(card.task)
        self.labels = list(card.labels)
        feats = card.features
        self.feature = get_feature(feats["name"])
        self.params = dict(feats.get("params") or {})

    @classmethod
    def load(cls, model_dir: Path, card: ModelCard) -> TorchFeaturePredictor:
        from ..models import build_model

        state = load_weights(model_dir, card)
        spec = card.model or {}
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise DataError(Path(model_dir) / "card.json",
                            "a torch-feature model needs model: {name, params}")
        params = {"n_classes": len(card.labels), **(spec.get("params") or {})}
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
        return ModalityOutput(p, [face_of(self.labels, p, (0, 0, int(w), int(h)))])

    def example_input(self) -> Any:
        """One batch of model input computed from a synthetic item (for ONNX export)."""
        import torch

        from .onnx_wrap import test_signal

        if self.modality == "speech":
            item: Any = Waveform(test_signal(2.0), SR)
        elif self.modality == "text":
            item = "what a wonderful surprise"
        else:
            item = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
        return torch.from_numpy(self.features(item))[None]


@register_predictor("late-fusion")
class LateFusion:
    """Weighted average of per-modality probabilities over the union of their labels.

    The model file holds one tensor ``weights`` ordered as the card's ``modalities``; the
    weights of the modalities present are renormalised.
    """

    def __init__(self, weights: Mapping[str, float], card: ModelCard) -> None:
        self.weights = {k: float(v) for k, v in weights.items()}
        self.card = card
        self.labels = list(card.labels)

    @classmethod
    def load(cls, model_dir: Path, card: ModelCard) -> LateFusion:
        state = load_weights(model_dir, card)
        mods = list(card.modalities)
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

        from ..models.checkpoint import save_model

        mods = list(weights)
        card = {"task": "fusion", "predictor": "late-fusion", "labels": list(labels),
                "modalities": mods, "features": {}, "data": dict(data),
                "protocol": dict(protocol), "metrics": dict(metrics), **extra}
        return save_model(path_dir, {"weights": torch.tensor([float(weights[m]) for m in mods])},
                          card)
