"""Online augmentation: the random changes made to training data on the fly (per copy, epoch
or batch), in one module of small keyword-only functions. Offline augmentation (synthetic sets
from generators, with manifests) is the rest of :mod:`emofuse.augment`.

========================  ==================================================================
waveforms (numpy)         :func:`white_noise` at an SNR with a clip-fixed :func:`clip_rng`
                          (multi-condition training copies, noisy test conditions);
                          :func:`random_crop`; :func:`wave_copies` (audiomentations noise,
                          gain, time-stretch, pitch); :func:`speed_perturb` (Kaldi-style,
                          a feature setting: defined in :mod:`emofuse.features.speech`)
spectrograms (torch)      :func:`spec_mask`: SpecAugment's frequency and time masks
any batch (torch)         :func:`mixup_pairs` draws a mixup pairing, :func:`mix` applies it
face batches (torch)      :func:`face_batch`: flip, rotation, scaling, shift, random erasing;
                          :func:`face_degrade`: blur, downscale, low light, JPEG (capture
                          chain, after :func:`face_batch`);
                          :func:`diff_augment`: DiffAugment of a GAN discriminator's inputs
feature vectors (numpy)   :func:`speaker_shift`: a row's speaker mean swapped for another's
========================  ==================================================================

Every function draws from the generator it is given (``rng``, ``generator``, ``seed``), so a
run is reproducible; none keeps state.

>>> y = np.ones(16000, np.float32)
>>> noisy = white_noise(y, snr_db=10.0, rng=np.random.default_rng(0))
>>> round(10 * np.log10(np.mean(y ** 2) / np.mean((noisy - y) ** 2)))
10
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..features.speech import speed_perturb

__all__ = ["white_noise", "clip_rng", "random_crop", "wave_copies", "speed_perturb",
           "spec_mask", "mixup_pairs", "mix", "face_batch", "face_degrade", "diff_augment",
           "DIFFAUG_POLICIES", "speaker_shift"]

#: the DiffAugment transforms :func:`diff_augment` knows
DIFFAUG_POLICIES = ("color", "translation", "cutout")


# -- waveforms ---------------------------------------------------------------------------------


def white_noise(y: np.ndarray, *, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``y`` plus white Gaussian noise at ``snr_db`` dB SNR over the whole clip (float32).

    The signal power is the mean square of the entire clip (silences included), the usual
    global definition; a silent clip is returned unchanged.
    """
    y = np.asarray(y, dtype=np.float64)
    power = float(np.mean(y ** 2)) if y.size else 0.0
    if power <= 0:
        return y.astype(np.float32)
    noise = rng.standard_normal(y.shape) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return (y + noise).astype(np.float32)


def clip_rng(path: str | os.PathLike, *, seed: int) -> np.random.Generator:
    """A generator fixed by the clip's content and ``seed`` (the same noise on every run)."""
    from ..features.cache import content_hash

    return np.random.default_rng([int(seed), int(content_hash(path)[:12], 16)])


def random_crop(y: np.ndarray, *, n: int, rng: np.random.Generator | None) -> np.ndarray:
    """A window of ``n`` samples: random (``rng``) or centred (``None``); a shorter input is
    repeated to ``n``."""
    if len(y) < n:
        y = np.tile(y, int(np.ceil(n / max(1, len(y)))))[: max(n, len(y))]
        return y[:n]
    start = int(rng.integers(0, len(y) - n + 1)) if rng is not None else (len(y) - n) // 2
    return y[start:start + n]


def wave_copies(y: np.ndarray, *, sr: int, n: int, seed: int,
                noise_snr_db: Sequence[float] | None = (10.0, 30.0),
                gain_db: Sequence[float] | None = (-6.0, 6.0),
                stretch: Sequence[float] | None = (0.9, 1.1),
                pitch_semitones: Sequence[float] | None = (-2.0, 2.0),
                p: float = 0.5) -> list[np.ndarray]:
    """``n`` augmented copies of ``y`` (float32, clipped to [-1, 1]), reproducible for a given
    ``seed``: Gaussian noise at an SNR drawn in ``noise_snr_db``, gain, time-stretch rate and
    pitch shift, each applied with probability ``p`` (a range of ``None``: that one off)."""
    import audiomentations as A

    ts: list[Any] = []
    if noise_snr_db:
        ts.append(A.AddGaussianSNR(min_snr_db=noise_snr_db[0], max_snr_db=noise_snr_db[1], p=p))
    if gain_db:
        ts.append(A.Gain(min_gain_db=gain_db[0], max_gain_db=gain_db[1], p=p))
    if stretch:
        ts.append(A.TimeStretch(min_rate=stretch[0], max_rate=stretch[1],
                                leave_length_unchanged=False, p=p))
    if pitch_semitones:
        ts.append(A.PitchShift(min_semitones=pitch_semitones[0],
                               max_semitones=pitch_semitones[1], p=p))
    if not ts or n <= 0:
        return []
    compose = A.Compose(ts, p=1.0)
    state = (np.random.get_state(), random.getstate())  # audiomentations uses both RNGs
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        return [np.clip(compose(samples=np.asarray(y, np.float32), sample_rate=sr), -1, 1)
                .astype(np.float32) for _ in range(n)]
    finally:
        np.random.set_state(state[0])
        random.setstate(state[1])


# -- spectrograms and batches (torch) ----------------------------------------------------------


def _spans(b: int, size: int, *, count: int, width: int, device: Any) -> Any:
    """``(B, size)`` boolean mask, True inside any of ``count`` random spans of up to
    ``width`` per item."""
    import torch

    mask = torch.zeros(b, size, dtype=torch.bool, device=device)
    if count <= 0 or width <= 0 or size <= 1:
        return mask
    pos = torch.arange(size, device=device)
    for _ in range(count):
        w = torch.randint(0, min(width, size) + 1, (b, 1), device=device)
        start = (torch.rand(b, 1, device=device) * (size - w + 1)).long()
        mask |= (pos >= start) & (pos < start + w)
    return mask


def spec_mask(x: Any, *, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
              time_width: int = 20, value: float = 0.0) -> Any:
    """SpecAugment's masking (Park et al. 2019) of a ``(B, M, T)`` tensor: per item
    ``freq_masks`` bands of up to ``freq_width`` bins and ``time_masks`` spans of up to
    ``time_width`` frames set to ``value`` (0: the mean of normalised features)."""
    b, m, t = x.shape
    fm = _spans(b, m, count=freq_masks, width=freq_width, device=x.device)[:, :, None]
    tm = _spans(b, t, count=time_masks, width=time_width, device=x.device)[:, None, :]
    return x.masked_fill(fm | tm, value)


def mixup_pairs(n: int, *, alpha: float, generator: Any = None) -> tuple[Any, Any]:
    """A mixup pairing for a batch of ``n``: ``(perm, lam)`` with ``lam ~ Beta(alpha, alpha)``
    per item, folded to ``>= 0.5`` so the first item dominates."""
    import torch

    perm = torch.randperm(n, generator=generator)
    lam = torch.distributions.Beta(alpha, alpha).sample((n,))
    return perm, torch.maximum(lam, 1 - lam)


def mix(x: Any, *, perm: Any, lam: Any) -> Any:
    """Mixup of a batch with its permutation: ``lam * x + (1 - lam) * x[perm]`` (``lam`` per
    item)."""
    lam = lam.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
    return lam * x + (1 - lam) * x[perm]


# -- face batches (torch) ----------------------------------------------------------------------


def face_batch(x: Any, *, flip: float = 0.5, rotate: float = 15.0,
               scale: Sequence[float] = (0.85, 1.15), shift: float = 0.1, erase: float = 0.5,
               erase_area: Sequence[float] = (0.02, 0.2), generator: Any = None) -> Any:
    """Random flip (probability), rotation (degrees), scaling, shift (fraction of the side: a
    random crop) and random erasing of a float batch ``(n, 1, H, W)`` in [-1, 1]; one affine
    warp each."""
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape

    def rand(*shape: int) -> Any:
        return torch.rand(*shape, generator=generator)

    angle = (rand(n) * 2 - 1) * math.radians(rotate)
    s = scale[0] + rand(n) * (scale[1] - scale[0])
    sign = torch.where(rand(n) < flip, -1.0, 1.0)
    tx, ty = ((rand(n) * 2 - 1) * 2 * shift for _ in range(2))  # grid units span 2 per side
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack([torch.stack([cos * sign, -sin, tx], 1),
                         torch.stack([sin * sign, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    if erase > 0:
        area = (erase_area[0] + rand(n) * (erase_area[1] - erase_area[0])) * h * w
        aspect = torch.exp((rand(n) * 2 - 1) * math.log(3.0))
        eh = torch.sqrt(area * aspect).clamp(1, h)
        ew = torch.sqrt(area / aspect).clamp(1, w)
        top = rand(n) * (h - eh)
        left = rand(n) * (w - ew)
        rows = torch.arange(h).view(1, h, 1)
        cols = torch.arange(w).view(1, 1, w)
        box = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
               & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
        box &= (rand(n) < erase).view(n, 1, 1)
        out = out.masked_fill(box[:, None], 0.0)
    return out


def face_degrade(x: Any, *, blur: float = 0.0, blur_sigma: Sequence[float] = (0.3, 2.0),
                 downscale: float = 0.0, downscale_side: Sequence[float] = (12, 40),
                 low_light: float = 0.0, low_light_factor: Sequence[float] = (0.15, 1.0),
                 jpeg: float = 0.0, jpeg_quality: Sequence[float] = (10, 90),
                 generator: Any = None) -> Any:
    """Capture-chain degradations of a float batch ``(n, 1, H, W)`` in [-1, 1], each drawn
    independently per image with its probability, in this order: Gaussian blur (sigma drawn
    in ``blur_sigma`` pixels), downscale (longer side drawn in ``downscale_side``, area
    reduction, bilinear resize back), low light (brightness factor drawn in
    ``low_light_factor`` plus read noise of 2 grey levels) and JPEG (quality drawn in
    ``jpeg_quality``). The kinds are those of :func:`emofuse.media.degrade.degrade_image`, on
    the ``uint8`` grey image ``(x + 1) * 127.5``; an image none touches is returned as it was.
    The same number of draws is taken from ``generator`` whatever is applied."""
    import cv2
    import torch

    from ..media.degrade import degrade_image

    n, _, h, w = x.shape
    probs = torch.tensor([blur, downscale, low_light, jpeg], dtype=torch.float64)
    if n == 0 or not bool((probs > 0).any()):
        return x
    ranges = torch.tensor([blur_sigma, downscale_side, low_light_factor, jpeg_quality],
                          dtype=torch.float64)
    apply = torch.rand(n, 4, generator=generator, dtype=torch.float64) < probs
    levels = ranges[:, 0] + torch.rand(n, 4, generator=generator, dtype=torch.float64) \
        * (ranges[:, 1] - ranges[:, 0])
    seeds = torch.randint(0, 2**31 - 1, (n,), generator=generator)
    rows = torch.nonzero(apply.any(1)).flatten().tolist()
    if not rows:
        return x
    out = x.clone()
    grey = ((x[rows, 0].detach().float().cpu() + 1) * 127.5).round().clamp(0, 255) \
        .to(torch.uint8).numpy()
    for img, i in zip(grey, rows):
        on, lv = apply[i].tolist(), levels[i].tolist()
        if on[0]:
            img = degrade_image(img, kind="blur", level=lv[0])
        if on[1]:
            small = degrade_image(img, kind="downscale", level=lv[1])
            img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        if on[2]:
            img = degrade_image(img, kind="low_light", level=lv[2], seed=int(seeds[i]))
        if on[3]:
            img = degrade_image(img, kind="jpeg", level=round(lv[3]))
        out[i, 0] = torch.from_numpy(img.astype(np.float32) / 127.5 - 1.0).to(out.dtype)
    return out


def diff_augment(x: Any, *, policy: Sequence[str], generator: Any = None) -> Any:
    """DiffAugment (Zhao et al. 2020) for grayscale batches in [-1, 1]: the same kind of random,
    differentiable change applied to real and generated images before the discriminator, so a
    discriminator fitted on a few thousand faces cannot memorise them.

    ``policy``: any of ``color`` (brightness and contrast), ``translation`` (shift by up to 1/8
    of the side, zero padding) and ``cutout`` (one square of half the side set to zero)."""
    import torch
    import torch.nn.functional as F

    gen = generator
    n, _, h, w = x.shape
    dev = x.device
    if "color" in policy:
        x = x + (torch.rand(n, 1, 1, 1, generator=gen, device=dev) - 0.5)
        mean = x.mean((1, 2, 3), keepdim=True)
        x = (x - mean) * (torch.rand(n, 1, 1, 1, generator=gen, device=dev) * 1.0 + 0.5) + mean
    if "translation" in policy:
        s = max(1, h // 8)
        tx = torch.randint(-s, s + 1, (n,), generator=gen, device=dev)
        ty = torch.randint(-s, s + 1, (n,), generator=gen, device=dev)
        gy, gx = torch.meshgrid(torch.arange(h, device=dev), torch.arange(w, device=dev),
                                indexing="ij")
        sy = (gy[None] - ty[:, None, None] + 1).clamp(0, h + 1)
        sx = (gx[None] - tx[:, None, None] + 1).clamp(0, w + 1)
        padded = F.pad(x, (1, 1, 1, 1))[:, 0]
        x = padded[torch.arange(n, device=dev)[:, None, None], sy, sx].unsqueeze(1)
    if "cutout" in policy:
        ch, cw = h // 2, w // 2
        oy = torch.randint(0, h - ch + 1, (n, 1, 1), generator=gen, device=dev)
        ox = torch.randint(0, w - cw + 1, (n, 1, 1), generator=gen, device=dev)
        gy = torch.arange(h, device=dev)[None, :, None]
        gx = torch.arange(w, device=dev)[None, None, :]
        keep = ~(((gy - oy) >= 0) & ((gy - oy) < ch) & ((gx - ox) >= 0) & ((gx - ox) < cw))
        x = x * keep.unsqueeze(1).to(x.dtype)
    return x


# -- feature vectors ---------------------------------------------------------------------------


def speaker_shift(x: np.ndarray, *, speakers: np.ndarray, copies: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` copies of every row of ``x`` with its speaker's mean swapped for a random
    other speaker's (never its own; needs two speakers); returns the copies and the row index
    each comes from."""
    speakers = np.asarray(speakers)
    names = list(np.unique(speakers))
    means = np.stack([x[speakers == s].mean(0) for s in names])
    pos = {s: i for i, s in enumerate(names)}
    own = np.array([pos[s] for s in speakers])
    rng = np.random.default_rng(seed)
    out, src = [], []
    for _ in range(copies):
        other = rng.integers(0, len(names) - 1, len(x))
        other = other + (other >= own)          # never the row's own speaker
        out.append(x + (means[other] - means[own]).astype(np.float32))
        src.append(np.arange(len(x)))
    return np.concatenate(out), np.concatenate(src)
