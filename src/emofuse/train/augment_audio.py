"""Audio augmentation: waveform transforms (audiomentations) and SpecAugment (torch).

>>> aug = WaveAugment(noise_snr_db=(10, 30), pitch_semitones=(-2, 2))   # doctest: +SKIP
>>> copies = aug.copies(y, sr=16000, n=2, seed=7)                       # doctest: +SKIP
>>> spec_aug = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=20)

:class:`WaveAugment` draws each transform with probability ``p``: Gaussian noise at a chosen
signal-to-noise ratio, gain, time-stretch and pitch shift. The trainer uses it to make a few
augmented copies of every training utterance once (cheap on CPU), and random crops, SpecAugment
and mixup on every step. :class:`SpecAugment` masks random frequency bands and time spans of a
``(batch, n_mels, frames)`` spectrogram, only in training mode.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["WaveAugment", "SpecAugment", "mixup_pairs"]


@dataclass(frozen=True)
class WaveAugment:
    """Random waveform transforms (each applied with probability ``p``).

    Attributes
    ----------
    noise_snr_db
        Range of the SNR (dB) of added white noise; ``None`` turns it off.
    gain_db
        Range of the gain (dB); ``None`` turns it off.
    stretch
        Range of the time-stretch rate (``0.9`` = 10 % slower); ``None`` turns it off.
    pitch_semitones
        Range of the pitch shift in semitones; ``None`` turns it off.
    p
        Probability of each transform.
    """

    noise_snr_db: tuple[float, float] | None = (10.0, 30.0)
    gain_db: tuple[float, float] | None = (-6.0, 6.0)
    stretch: tuple[float, float] | None = (0.9, 1.1)
    pitch_semitones: tuple[float, float] | None = (-2.0, 2.0)
    p: float = 0.5

    @classmethod
    def from_params(cls, params: Mapping[str, Any] | None) -> WaveAugment:
        """Build from a config mapping; a :class:`ConfigError` names unknown keys."""
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(params) - known):
            raise ConfigError(f"waveform augmentation: unknown keys {unknown}; known: "
                              f"{sorted(known)}")
        conv = {k: (tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in params.items()}
        return cls(**conv)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _compose(self) -> Any:
        import audiomentations as A

        ts: list[Any] = []
        if self.noise_snr_db:
            ts.append(A.AddGaussianSNR(min_snr_db=self.noise_snr_db[0],
                                       max_snr_db=self.noise_snr_db[1], p=self.p))
        if self.gain_db:
            ts.append(A.Gain(min_gain_db=self.gain_db[0], max_gain_db=self.gain_db[1], p=self.p))
        if self.stretch:
            ts.append(A.TimeStretch(min_rate=self.stretch[0], max_rate=self.stretch[1],
                                    leave_length_unchanged=False, p=self.p))
        if self.pitch_semitones:
            ts.append(A.PitchShift(min_semitones=self.pitch_semitones[0],
                                   max_semitones=self.pitch_semitones[1], p=self.p))
        return A.Compose(ts, p=1.0) if ts else None

    def copies(self, y: np.ndarray, *, sr: int, n: int, seed: int) -> list[np.ndarray]:
        """``n`` augmented copies of ``y`` (float32, clipped to [-1, 1]); reproducible for a
        given ``seed``."""
        compose = self._compose()
        if compose is None or n <= 0:
            return []
        state = (np.random.get_state(), random.getstate())  # audiomentations uses both RNGs
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            out = [np.clip(compose(samples=np.asarray(y, np.float32), sample_rate=sr), -1, 1)
                   .astype(np.float32) for _ in range(n)]
        finally:
            np.random.set_state(state[0])
            random.setstate(state[1])
        return out


class SpecAugment(nn.Module):
    """SpecAugment's frequency and time masking (Park et al. 2019) on ``(B, M, T)`` features.

    Each item gets ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks`` spans of
    up to ``time_width`` frames set to ``value`` (0: the mean of normalised features). Identity
    in evaluation mode.
    """

    def __init__(self, *, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 20, value: float = 0.0) -> None:
        super().__init__()
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.value = value

    @staticmethod
    def _masks(b: int, size: int, count: int, width: int, device: torch.device) -> torch.Tensor:
        """``(B, size)`` boolean mask, True inside any of ``count`` random spans per item."""
        mask = torch.zeros(b, size, dtype=torch.bool, device=device)
        if count <= 0 or width <= 0 or size <= 1:
            return mask
        pos = torch.arange(size, device=device)
        for _ in range(count):
            w = torch.randint(0, min(width, size) + 1, (b, 1), device=device)
            start = (torch.rand(b, 1, device=device) * (size - w + 1)).long()
            mask |= (pos >= start) & (pos < start + w)
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        b, m, t = x.shape
        fm = self._masks(b, m, self.freq_masks, self.freq_width, x.device)[:, :, None]
        tm = self._masks(b, t, self.time_masks, self.time_width, x.device)[:, None, :]
        return x.masked_fill(fm | tm, self.value)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, time_width={self.time_width}")


def mixup_pairs(n: int, alpha: float, *, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A mixup pairing for a batch of ``n``: ``(perm, lam)`` with ``lam ~ Beta(alpha, alpha)``
    per item, folded to ``>= 0.5`` so the first item dominates."""
    perm = torch.randperm(n, generator=generator)
    lam = torch.distributions.Beta(alpha, alpha).sample((n,))
    return perm, torch.maximum(lam, 1 - lam)
