"""``emofuse.augment.online``: the online augmentations, each reproducible from its generator,
and what the training code calls (the models' mixup, SpecAugment, WaveAugment)."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.augment import online


def test_white_noise_snr_and_reproducible(tmp_path):
    y = np.sin(np.linspace(0, 200, 16000)).astype(np.float32)
    a = online.white_noise(y, snr_db=5.0, rng=np.random.default_rng(3))
    b = online.white_noise(y, snr_db=5.0, rng=np.random.default_rng(3))
    assert a.dtype == np.float32 and np.array_equal(a, b)
    snr = 10 * np.log10(np.mean(y.astype(float) ** 2) / np.mean((a - y) ** 2))
    assert abs(snr - 5.0) < 0.2
    assert np.array_equal(online.white_noise(np.zeros(10), snr_db=0, rng=np.random.default_rng()),
                          np.zeros(10, np.float32))
    wav = tmp_path / "a.bin"
    wav.write_bytes(b"clip")
    r1, r2 = online.clip_rng(wav, seed=1), online.clip_rng(wav, seed=1)
    assert r1.integers(0, 10**9) == r2.integers(0, 10**9)


def test_random_crop():
    y = np.arange(10, dtype=np.float32)
    assert np.array_equal(online.random_crop(y, n=4, rng=None), y[3:7])
    assert np.array_equal(online.random_crop(y[:3], n=7, rng=None), np.tile(y[:3], 3)[:7])
    c = online.random_crop(y, n=4, rng=np.random.default_rng(0))
    assert len(c) == 4 and np.array_equal(c, np.arange(c[0], c[0] + 4))


def test_speaker_shift_never_keeps_the_own_speaker():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3)).astype(np.float32)
    spk = np.array(list("aabbccaabbcc"))
    out, src = online.speaker_shift(x, speakers=spk, copies=2, seed=4)
    assert out.shape == (24, 3) and np.array_equal(src, np.tile(np.arange(12), 2))
    assert not np.allclose(out[:12], x)


def test_mixup_and_spec_mask():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(0)
    perm, lam = online.mixup_pairs(8, alpha=0.4, generator=g)
    assert sorted(perm.tolist()) == list(range(8)) and bool((lam >= 0.5).all())
    x = torch.arange(8.0).view(8, 1)
    m = online.mix(x, perm=perm, lam=lam)
    assert torch.allclose(m[:, 0], lam * x[:, 0] + (1 - lam) * x[perm, 0])
    torch.manual_seed(1)
    s = online.spec_mask(torch.ones(4, 40, 100), freq_masks=2, freq_width=8, time_masks=2,
                         time_width=20)
    assert s.shape == (4, 40, 100) and 0 < float((s == 0).float().mean()) < 0.6
    from emofuse.models.speech import _mix
    from emofuse.train.augment_audio import SpecAugment

    assert torch.equal(_mix(x, (perm, lam)), m)
    spec = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=20)
    torch.manual_seed(1)
    assert torch.equal(spec.train()(torch.ones(4, 40, 100)), s)


def test_face_batch_and_diff_augment_reproducible():
    torch = pytest.importorskip("torch")
    x = torch.rand(6, 1, 48, 48) * 2 - 1
    a = online.face_batch(x, generator=torch.Generator().manual_seed(2))
    b = online.face_batch(x, generator=torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    d = online.diff_augment(x, policy=online.DIFFAUG_POLICIES,
                            generator=torch.Generator().manual_seed(0))
    assert d.shape == x.shape


def test_wave_copies_match_wave_augment():
    pytest.importorskip("audiomentations")
    y = (0.1 * np.sin(np.linspace(0, 400, 8000))).astype(np.float32)
    a = online.wave_copies(y, sr=16000, n=2, seed=7)
    b = online.wave_copies(y, sr=16000, n=2, seed=7)
    assert len(a) == 2 and all(np.array_equal(u, v) for u, v in zip(a, b))
    assert online.wave_copies(y, sr=16000, n=2, seed=7, noise_snr_db=None, gain_db=None,
                              stretch=None, pitch_semitones=None) == []
    from emofuse.train.augment_audio import WaveAugment

    wave = WaveAugment().copies(y, sr=16000, n=2, seed=7)
    assert all(np.array_equal(u, v) for u, v in zip(wave, a))
