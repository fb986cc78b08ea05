"""Export-friendly equivalents of networks (for :mod:`emofuse.export`): ``torch.stft`` as a DFT
by convolutions, a module taking a plain tensor for one taking a dict, and a fixed test
signal to trace with."""

from __future__ import annotations

from typing import Any

import numpy as np

from .types import SR

__all__ = ["with_conv_stft", "dict_input", "with_prototypes", "test_signal"]


def test_signal(seconds: float = 3.0, sr: int = SR) -> np.ndarray:
    """A fixed speech-like test signal: noise shaped by a syllable-rate envelope."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    return (0.1 * rng.standard_normal(t.size) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
            ).astype(np.float32)


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


def with_conv_stft(module: Any) -> Any:
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


def dict_input(module: Any, key: str) -> Any:
    """A module taking a plain tensor, for one that takes ``{key: tensor}`` (ONNX export)."""
    import torch

    class DictInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner({key: x})

    return DictInput().eval()


def with_prototypes(module: Any, protos: np.ndarray, sizes: list[int], *, pooling: str,
                    centre: bool = False, keep_input: bool = True) -> Any:
    """A module taking the MiniLM embedding that appends its zero-shot prototype similarities
    (:func:`emofuse.features.text_prototypes.prototype_features`, the same computation in
    torch: ``protos`` the template matrix, ``sizes`` the templates per label) before
    ``module``, so that an exported text model takes the embedding itself."""
    import torch

    bounds = np.cumsum([0, *sizes]).tolist()
    if pooling not in ("all", "mean", "max", "meanmax") or bounds[-1] != len(protos):
        raise ValueError(f"prototypes: pooling {pooling!r}, {len(protos)} templates for "
                         f"{bounds[-1]}")

    class Prototypes(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module
            self.register_buffer("protos", torch.from_numpy(np.asarray(protos, np.float32)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            sims = (x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)) @ self.protos.T
            if centre:
                sims = sims - sims.mean(dim=1, keepdim=True)
            feats = [sims] if pooling == "all" else []
            blocks = [sims[:, a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            if pooling in ("mean", "meanmax"):
                feats.append(torch.stack([b.mean(dim=1) for b in blocks], 1))
            if pooling in ("max", "meanmax"):
                feats.append(torch.stack([b.amax(dim=1) for b in blocks], 1))
            return self.inner(torch.cat([x, *feats] if keep_input else feats, 1))

    return Prototypes().eval()
