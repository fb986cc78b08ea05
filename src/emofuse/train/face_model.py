"""Saved face models: the network of a model folder (safetensors + card), or its ONNX copy."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..models.face_runtime import build_net

__all__ = ["load_fast", "load_predictor"]


def load_fast(model_dir: str | Path):
    """``(onnx net, card)`` of a saved face model with an ONNX copy (no torch imported), or
    ``None`` (then use :func:`load_predictor`)."""
    from .._onnx import load_onnx
    from ..models.checkpoint import read_card

    card = read_card(model_dir)
    if card.get("task") != "face":
        return None
    net = load_onnx(model_dir, card)
    return None if net is None else (net, card)


def load_predictor(model_dir: str | Path):
    """``(net, card)`` of a saved face model (see :func:`train`)."""
    from ..models.checkpoint import load_model

    state, card = load_model(model_dir)
    if card.get("task") != "face":
        raise DataError(model_dir, f"not a face model (task {card.get('task')!r})")
    model = card.get("model") or {}
    net = build_net(model.get("name", ""), model.get("params") or {}, len(card["labels"]))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(model_dir, f"weights do not fit the network in card.json ({exc})") \
            from None
    return net.eval(), card
