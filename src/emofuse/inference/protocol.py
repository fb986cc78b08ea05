"""The one predictor protocol: ``load(model_dir) -> Predictor``, ``Predictor.predict(x) ->
ModalityOutput``, and the registry of loaders a card picks from.

==================  ===========================================================================
loader              what it loads
==================  ===========================================================================
``speech``          :class:`emofuse.inference.speech.SpeechPredictor` (``kind``: waveform,
                    vector, classical, adaptive, ensemble)
``face``            :class:`emofuse.inference.face.FacePredictor`: a face expression network on
                    detected, aligned crops
``text``            :class:`emofuse.inference.text.TextPredictor`
``fusion``          ``emofuse.fusion.load_predictor(model_dir)``, an object with
                    ``fuse({modality: {label: p}}) -> ({label: p}, {modality: weight})``
``late-fusion``     :class:`emofuse.inference.generic.LateFusion`: fixed modality weights
``torch-feature``   :class:`emofuse.inference.generic.TorchFeaturePredictor`: a registered
                    feature extractor and a registered torch model
==================  ===========================================================================

A card names its loader in ``predictor`` (default: its ``task``). A loader is
``fn(model_dir, card) -> predictor``; a class with a ``load(model_dir, card)`` classmethod may
be registered directly. For ONNX export a predictor exposes ``module`` (a ``torch.nn.Module``
from model input to logits) and ``example_input()`` (a batch of input).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._plugins import Registry
from ..errors import DataError, EmofuseError
from .card import ModelCard, ModelInfo, read_card
from .types import ModalityOutput, ModelUnavailableError

__all__ = ["Predictor", "ModalityPredictor", "FusionPredictor", "register_predictor",
           "register_adapter", "list_adapters", "load_predictor", "load", "late_fusion",
           "softmax"]


@runtime_checkable
class Predictor(Protocol):
    """A loaded model of one modality.

    ``predict`` takes a :class:`~emofuse.inference.Waveform` (speech), an RGB ``uint8`` array
    (face) or a string (text). A face predictor may take ``detect`` (``auto``, ``always``,
    ``never``) and says so with ``supports_detect = True``.
    """

    modality: str
    labels: list[str]
    card: ModelCard

    def predict(self, x: Any) -> ModalityOutput: ...


#: The former name of :class:`Predictor`.
ModalityPredictor = Predictor


@runtime_checkable
class FusionPredictor(Protocol):
    """A loaded fusion model: joins per-modality probabilities into one distribution."""

    labels: list[str]
    card: ModelCard

    def fuse(self, probabilities: Mapping[str, Mapping[str, float]]
             ) -> tuple[dict[str, float], dict[str, float]]: ...


Loader = Callable[[Path, ModelCard], Any]
#: loader name (a card's ``predictor``, else its task) -> loader
_ADAPTERS: Registry[Loader] = Registry("predictor")
#: the modules of the built-in loaders, imported when a model is first loaded
_BUILTIN = ("speech", "face", "text", "generic")


def register_predictor(name: str) -> Callable[[Any], Any]:
    """Register ``loader(model_dir, card) -> predictor`` under ``name`` (a card's
    ``predictor``). A class with a ``load(model_dir, card)`` classmethod may be registered
    directly."""

    def deco(obj: Any) -> Any:
        _ADAPTERS.register(name, obj.load if isinstance(obj, type) else obj)
        return obj

    return deco


#: The former name of :func:`register_predictor`.
register_adapter = register_predictor


def _builtin() -> None:
    for mod in _BUILTIN:
        try:
            importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:  # a trimmed installation: its loader is missing
            if exc.name != f"{__package__}.{mod}":
                raise


def list_adapters() -> list[str]:
    """Names of the registered loaders."""
    _builtin()
    return _ADAPTERS.names()


def load_predictor(info: ModelInfo) -> Any:
    """Load the model of ``info`` with the loader its card names (``predictor``, else task)."""
    _builtin()
    name = info.card.predictor or info.modality
    loader = _ADAPTERS.get(name, None)
    if loader is None:
        raise DataError(info.path / "card.json", f"unknown predictor {name!r}; known: "
                        f"{', '.join(_ADAPTERS.names())}")
    return loader(info.path, info.card)


def load(model_dir: str | os.PathLike) -> Any:
    """The predictor of one model folder (its card read once)."""
    folder = Path(model_dir)
    card = read_card(folder)
    return load_predictor(ModelInfo(folder.name, str(card.modality), folder, card))


def import_modality(modality: str, module: str) -> Any:
    """``importlib.import_module(module)``; a missing module means the modality is not part of
    this installation (:class:`ModelUnavailableError`)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise ModelUnavailableError(f"no {modality} model available: {module} is not part of "
                                    "this installation") from None


def late_fusion(probabilities: Mapping[str, Mapping[str, float]], *,
                weights: Mapping[str, float] | None = None
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Weighted average of per-modality distributions over the union of their labels.

    ``weights`` default to equal; they are renormalised over the modalities present.
    Returns ``(fused probabilities, weights used)``.
    """
    from ..labels import CANONICAL

    mods = list(probabilities)
    if not mods:
        raise EmofuseError("nothing to fuse: no modality gave probabilities")
    raw = {m: max(float((weights or {}).get(m, 1.0 if weights is None else 0.0)), 0.0)
           for m in mods}
    total = sum(raw.values())
    w = {m: (raw[m] / total if total > 0 else 1.0 / len(mods)) for m in mods}
    union = {k for m in mods for k in probabilities[m]}
    labels = [c for c in CANONICAL if c in union] + sorted(union - set(CANONICAL))
    fused = {k: sum(w[m] * float(probabilities[m].get(k, 0.0)) for m in mods) for k in labels}
    s = sum(fused.values()) or 1.0
    return {k: v / s for k, v in fused.items()}, w


def fuse(per: Mapping[str, Mapping[str, float]], fusion: Any | None
         ) -> tuple[dict[str, float], dict[str, float]]:
    """One modality is its own answer; several are joined by ``fusion`` (a
    :class:`FusionPredictor`), or by :func:`late_fusion` with equal weights."""
    if len(per) == 1:
        return dict(next(iter(per.values()))), {next(iter(per)): 1.0}
    if fusion is not None:
        return fusion.fuse(per)
    return late_fusion(per)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64."""
    z = np.asarray(z, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
