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

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn

from ..augment.online import spec_mask, wave_copies
from ..errors import ConfigError

__all__ = ["WaveAugment", "SpecAugment"]


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

    def copies(self, y: np.ndarray, *, sr: int, n: int, seed: int) -> list[np.ndarray]:
        """``n`` augmented copies of ``y`` (float32, clipped to [-1, 1]); reproducible for a
        given ``seed`` (:func:`emofuse.augment.online.wave_copies`)."""
        return wave_copies(y, sr=sr, n=n, seed=seed, **self.to_dict())


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return spec_mask(x, freq_masks=self.freq_masks, freq_width=self.freq_width,
                         time_masks=self.time_masks, time_width=self.time_width,
                         value=self.value)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, time_width={self.time_width}")
