"""Face expression networks at run time: build one from a card, turn uint8 crops into its
input, test-time views, and class probabilities from a PyTorch module or its ONNX copy."""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["DEFAULT_TRAINING", "build_net", "split_model_params", "to_input", "tta_views",
           "predict_proba", "cpu_has_native_bf16", "use_bf16"]

#: Training defaults (``model.params.training``).
DEFAULT_TRAINING: dict[str, Any] = {
    "label_smoothing": 0.1, "rare_class_floor": 0.15, "precision": "auto",
    "warmup_epochs": 1.0, "momentum": 0.9, "optimizer": "sgd", "channels_last": False,
    "distill_from": None, "distill_weight": 0.5, "distill_temperature": 2.0,
}


def split_model_params(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    params = dict(params)
    training = {**DEFAULT_TRAINING, **(params.pop("training", None) or {})}
    unknown = set(training) - set(DEFAULT_TRAINING)
    if unknown:
        raise ConfigError(f"model.params.training: unknown key(s) {sorted(unknown)}; known: "
                          f"{', '.join(DEFAULT_TRAINING)}")
    if training["precision"] not in ("auto", "bf16", "fp32"):
        raise ConfigError("model.params.training.precision must be auto, bf16 or fp32")
    return params, training


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether torch's oneDNN computes bfloat16 on this CPU with its own kernels (AVX512 cores,
    AVX512-BF16, AMX). On an AVX2-only CPU bf16 autocast is emulated: about 13x slower than
    fp32 for the face ResNet on a 2-core AVX2 machine."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):   # no oneDNN query in this torch build: assume so
        return True


def use_bf16(precision: str, device_type: str = "cpu") -> bool:
    """Whether training ``precision`` (auto, bf16, fp32) runs CPU bf16 autocast: ``auto`` where
    the CPU has native bf16; ``bf16`` always on a CPU (logged once when it is emulated)."""
    if device_type != "cpu" or precision == "fp32":
        return False
    if precision == "auto":
        return cpu_has_native_bf16()
    if not cpu_has_native_bf16():
        _warn_emulated_bf16()
    return True


@functools.cache
def _warn_emulated_bf16() -> None:
    logging.getLogger(__name__).warning(
        "precision: bf16 on a CPU without oneDNN bfloat16 kernels (AVX2 only) is emulated "
        "and about 13x slower than fp32; set model.params.training.precision to auto or fp32")


def build_net(name: str, params: dict[str, Any], n_classes: int):
    """The network of a config or model card (``training`` settings removed)."""
    from . import build_model

    arch, _ = split_model_params(params)
    return build_model(name, n_classes=n_classes, **arch)


def to_input(x: np.ndarray | Any):
    """uint8 crops ``(n, H, W)`` or ``(n, 1, H, W)`` -> float ``(n, 1, H, W)`` in [-1, 1]."""
    import torch

    t = torch.as_tensor(x)
    if t.ndim == 3:
        t = t[:, None]
    return t.float().div_(127.5).sub_(1.0)


def tta_views(x, *, flip: bool = True, shift: int = 3, scales: Sequence[float] = ()) -> list:
    """Test-time views of ``(n, 1, H, W)``: the image, shifts by ``shift`` pixels in four
    directions (reflect-padded), zooms by each factor of ``scales`` (``> 1`` crops the centre,
    ``< 1`` reflect-pads; bilinear back to ``H x W``), and the mirror image of each."""
    import torch
    import torch.nn.functional as F

    views = [x]
    h, w = x.shape[-2:]
    if shift:
        pad = F.pad(x, (shift,) * 4, mode="reflect")
        for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
            views.append(pad[..., shift + dy:shift + dy + h, shift + dx:shift + dx + w])
    for s in scales or ():
        py, px = _zoom_margins(h, w, float(s))
        z = (x[..., py:h - py, px:w - px] if s > 1 else
             F.pad(x, (-px, -px, -py, -py), mode="reflect") if s < 1 else x)
        views.append(F.interpolate(z, size=(h, w), mode="bilinear", align_corners=False))
    if flip:
        views += [torch.flip(v, dims=[-1]) for v in views]
    return views


def _zoom_margins(h: int, w: int, scale: float) -> tuple[int, int]:
    """Rows and columns removed from (``scale > 1``) or added to (negative) each border."""
    if scale <= 0:
        raise ConfigError(f"features.params.tta.scales: factors must be positive, got {scale}")
    return round(h * (1 - 1 / scale) / 2), round(w * (1 - 1 / scale) / 2)


def _tta_views_np(x: np.ndarray, *, flip: bool = True, shift: int = 3,
                  scales: Sequence[float] = ()) -> list[np.ndarray]:
    """:func:`tta_views` in numpy (same views, same order; cv2 bilinear for the zooms)."""
    import cv2

    views = [x]
    h, w = x.shape[-2:]
    if shift:
        pad = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)), mode="reflect")
        for dy, dx in ((-shift, 0), (shift, 0), (0, -shift), (0, shift)):
            views.append(pad[..., shift + dy:shift + dy + h, shift + dx:shift + dx + w])
    for s in scales or ():
        py, px = _zoom_margins(h, w, float(s))
        z = (x[..., py:h - py, px:w - px] if s > 1 else
             np.pad(x, ((0, 0), (0, 0), (-py, -py), (-px, -px)), mode="reflect") if s < 1 else x)
        views.append(np.stack([[cv2.resize(np.ascontiguousarray(c), (w, h),
                                           interpolation=cv2.INTER_LINEAR) for c in img]
                               for img in z]).astype(x.dtype) if len(z) else x.copy())
    if flip:
        views += [v[..., ::-1] for v in views]
    return views


def _predict_proba_onnx(net, crops: np.ndarray, *, tta: dict[str, Any] | None,
                        batch_size: int) -> np.ndarray:
    out = []
    for i in range(0, len(crops), batch_size):
        x = np.asarray(crops[i:i + batch_size], dtype=np.float32)
        x = (x[:, None] if x.ndim == 3 else x) / 127.5 - 1.0
        views = _tta_views_np(x, **tta) if tta else [x]
        # every view in one call: one image's two flips cost one call, not two
        z = net(np.concatenate(views)).astype(np.float64).reshape(len(views), len(x), -1)
        e = np.exp(z - z.max(2, keepdims=True))
        out.append((e / e.sum(2, keepdims=True)).mean(0).astype(np.float32))
    n_out = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)


def predict_proba(net, crops: np.ndarray, *, tta: dict[str, Any] | None = None,
                  batch_size: int = 256) -> np.ndarray:
    """Class probabilities ``(n, C)`` of uint8 crops, averaged over :func:`tta_views`.

    ``net`` is a PyTorch module or its ONNX copy (:class:`emofuse._onnx.OnnxNet`)."""
    from .._onnx import OnnxNet

    if isinstance(net, OnnxNet):
        return _predict_proba_onnx(net, crops, tta=tta, batch_size=batch_size)
    import torch

    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), batch_size):
            x = to_input(crops[i:i + batch_size])
            views = tta_views(x, **tta) if tta else [x]
            p = torch.stack([torch.softmax(net(v).float(), 1) for v in views]).mean(0)
            out.append(p.numpy())
    n_out = out[0].shape[1] if out else 0
    return np.concatenate(out) if out else np.zeros((0, n_out), np.float32)
