"""Speech models: shapes, front end, normalisation, augmentation, classical models and their
pickle-free storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emofuse.errors import ConfigError, DataError
from emofuse.models import build_model, list_models
from emofuse.models.classical import from_tensors, grid_search, to_tensors
from emofuse.models.speech import LogMel
from emofuse.augment.online import mixup_pairs
from emofuse.train.augment_audio import SpecAugment, WaveAugment

torch.set_num_threads(1)
SR = 16000
WAVE = ("bilstm_attn", "cnn2d", "wavegram_logmel")


def waves(batch: int, seconds: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch, int(SR * seconds), generator=g)


def test_registered() -> None:
    assert {*WAVE, "fercnn", "svm", "logreg", "lda"} <= set(list_models())


@pytest.mark.parametrize("name", WAVE)
@pytest.mark.parametrize("seconds", [0.3, 3.0])
def test_waveform_models_any_length(name: str, seconds: float) -> None:
    net = build_model(name, n_classes=5).eval()
    with torch.no_grad():
        out = net(waves(2, seconds))
    assert out.shape == (2, 5) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", WAVE)
def test_train_step_with_mixup_and_speaker_stats(name: str) -> None:
    net = build_model(name, n_classes=4, norm="speaker", n_mels=64)
    net.spec_augment = SpecAugment()
    stats = torch.stack([torch.full((64,), -40.0), torch.full((64,), 10.0)])[None].repeat(3, 1, 1)
    perm, lam = mixup_pairs(3, alpha=0.4)
    logits = net(waves(3, 1.0), stats, mix=(perm, lam))
    logits.sum().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_cnn2d_128_bands_and_parameter_count() -> None:
    net = build_model("cnn2d", n_classes=8, n_mels=128)
    assert sum(p.numel() for p in net.parameters()) < 500_000
    assert net.eval()(waves(1, 1.0)).shape == (1, 8)


def test_unknown_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cnn2d"):
        build_model("cnn2d", n_classes=3, chanels=[8])
    with pytest.raises(ConfigError, match="multiple"):
        build_model("wavegram_logmel", n_classes=3, wave_channels=[8, 8, 20])


def test_logmel_front_end_matches_librosa() -> None:
    from emofuse.features.speech import logmel

    y = waves(1, 1.0)[0].numpy()
    ref = logmel(y, n_mels=64)
    ours = LogMel(n_mels=64, norm="none").spectrogram(torch.from_numpy(y)[None])[0].numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 0.05


def test_normalisations() -> None:
    x = waves(2, 1.0)
    u = LogMel(norm="utterance")(x)
    assert u.mean(dim=2).abs().max() < 1e-4 and (u.std(dim=2) - 1).abs().max() < 1e-3
    s = LogMel(norm="utterance_scalar")(x)
    assert s.mean(dim=(1, 2)).abs().max() < 1e-4
    spk = LogMel(norm="speaker")
    db = spk.spectrogram(x)
    stats = torch.stack([db.mean(dim=2), db.std(dim=2)], dim=1)
    assert torch.allclose(spk(x, stats), u, atol=1e-3)
    assert torch.allclose(spk(x), u)  # no stats: per-utterance
    with pytest.raises(ValueError):
        LogMel(norm="global")


def test_gain_does_not_change_utterance_normalised_output() -> None:
    net = build_model("cnn2d", n_classes=3).eval()
    x = waves(1, 1.0)
    with torch.no_grad():
        assert torch.allclose(net(x), net(2 * x), atol=1e-3)


def test_fercnn_standardises_with_stored_statistics() -> None:
    net = build_model("fercnn", n_classes=6, dim=100)
    x = np.random.default_rng(0).normal(5, 3, (4, 100)).astype(np.float32)
    net.set_scaler(x.mean(0), x.std(0))
    assert net.eval()(torch.from_numpy(x)).shape == (4, 6)
    assert "mean" in net.state_dict() and "std" in net.state_dict()
    assert [m.out_channels for m in net.body if isinstance(m, torch.nn.Conv1d)] == \
        [256, 128, 64, 64, 32]


def test_spec_augment_masks_only_in_training() -> None:
    sa = SpecAugment(freq_masks=1, freq_width=10, time_masks=1, time_width=30)
    x = torch.ones(8, 64, 200)
    assert torch.equal(sa.eval()(x), x)
    y = sa.train()(x)
    assert (y == 0).any() and (y == 0).float().mean() < 0.5


def test_wave_augment_copies_reproducible() -> None:
    y = waves(1, 1.0)[0].numpy()
    aug = WaveAugment(p=1.0)
    a, b = aug.copies(y, sr=SR, n=2, seed=3), aug.copies(y, sr=SR, n=2, seed=3)
    assert len(a) == 2 and all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    assert all(np.abs(c).max() <= 1.0 for c in a)
    assert WaveAugment.from_params({"gain_db": [-3, 3], "p": 1}).gain_db == (-3, 3)
    with pytest.raises(ConfigError, match="unknown"):
        WaveAugment.from_params({"reverb": 1})
    assert WaveAugment(noise_snr_db=None, gain_db=None, stretch=None,
                       pitch_semitones=None).copies(y, sr=SR, n=2, seed=0) == []


def test_mixup_pairs_favour_the_first_item() -> None:
    perm, lam = mixup_pairs(16, alpha=0.4)
    assert sorted(perm.tolist()) == list(range(16)) and (lam >= 0.5).all()


def _data(n: int = 120, d: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    x = rng.normal(size=(n, d)) + y[:, None]
    groups = np.arange(n) % 4
    return x, y, groups


@pytest.mark.parametrize("name, params", [("svm", {"C": 1.0}), ("logreg", {"C": 1.0}),
                                          ("lda", {"shrinkage": 0.5})])
def test_classical_models_round_trip_without_pickle(name: str, params: dict) -> None:
    x, y, _ = _data()
    clf = build_model(name, **params).fit(x, y)
    arrays, tree = to_tensors(clf)
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    import json

    tree = json.loads(json.dumps(tree))
    back = from_tensors({k: torch.from_numpy(v) for k, v in arrays.items()}, tree)
    assert np.allclose(back.predict_proba(x), clf.predict_proba(x))
    assert (clf.predict(x) == y).mean() > 0.8


def test_classical_refuses_unknown_classes() -> None:
    tree = {"t": "obj", "c": "os.system", "a": {}}
    with pytest.raises(DataError, match="not allowed"):
        from_tensors({}, tree)
    with pytest.raises(TypeError):
        to_tensors(object())


def test_grid_search_is_grouped_and_returns_base_params() -> None:
    x, y, g = _data()
    params, score = grid_search("logreg", x, y, g, grid={"C": [0.01, 1.0]},
                                base={"max_iter": 500})
    assert params["max_iter"] == 500 and params["C"] in (0.01, 1.0) and score > 0.6
    with pytest.raises(DataError):
        grid_search("logreg", x, y, np.zeros(len(y)), grid={"C": [1.0]})


def test_lda_equal_priors_favour_the_rare_class() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, (90, 3)), rng.normal(1, 1, (10, 3))])
    y = np.array([0] * 90 + [1] * 10)
    probe = np.full((1, 3), 0.5)
    p_bal = build_model("lda", shrinkage=0.1).fit(x, y).predict_proba(probe)[0, 1]
    p_freq = build_model("lda", shrinkage=0.1, balanced=False).fit(x, y).predict_proba(probe)[0, 1]
    assert p_bal > p_freq
