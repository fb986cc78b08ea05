"""Speech features: shapes, pitch on known tones, registry, cached extraction, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.features import get_feature, list_features
from emofuse.features import speech as S
from emofuse.features.cache import FeatureCache

SR = 16000


def tone(f0: float = 200.0, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    y = amp * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2 * f0 * t))
    return y.astype(np.float32)


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    path = tmp_path / "a.wav"
    sf.write(path, tone(), SR)
    return path


def test_every_extractor_is_registered_as_speech() -> None:
    names = {"logmel", "mfcc", "prosody", "egemaps", "lld_stats", "fused"}
    assert names <= set(list_features())
    assert all(get_feature(n).modality == "speech" for n in names)


@pytest.mark.parametrize("n_mels", [64, 128])
def test_logmel_bands_and_frames(n_mels: int) -> None:
    m = S.logmel(tone(), n_mels=n_mels)
    assert m.shape == (n_mels, 101) and m.dtype == np.float32
    assert m.max() - m.min() <= 80.0 + 1e-3  # top_db clipping


@pytest.mark.filterwarnings("ignore:n_fft=")
def test_mfcc_stacks_deltas() -> None:
    assert S.mfcc(tone(), n_mfcc=13).shape == (39, 101)
    assert S.mfcc(tone(), n_mfcc=13, deltas=False).shape == (13, 101)
    assert S.mfcc(tone(seconds=0.02), n_mfcc=13).shape[0] == 39  # too short for deltas: zeros


@pytest.mark.parametrize("pitch", ["autocorr", "pyin"])
def test_prosody_finds_the_pitch_of_a_tone(pitch: str) -> None:
    rms, zcr, f0, voicing = S.prosody(tone(200.0, seconds=0.6), pitch=pitch)
    voiced = f0 > 0
    assert voiced.mean() > 0.7
    assert np.median(f0[voiced]) == pytest.approx(200.0, rel=0.03)
    assert np.all((zcr >= 0) & (zcr <= 1)) and np.all(np.isfinite(rms))


def test_pitch_autocorr_silence_is_unvoiced() -> None:
    f0, voicing = S.pitch_autocorr(np.zeros(SR, np.float32))
    assert not f0.any()


def test_egemaps_and_fused_vectors() -> None:
    e = S.egemaps(tone())
    assert e.shape == (S.EGEMAPS_DIM,) and np.all(np.isfinite(e))
    assert S.lld_stats(tone(), n_mfcc=10).shape == (24 * 10 + 17,)
    f = S.fused(tone())
    assert f.shape == (88 + 24 * 20 + 17,) and np.all(np.isfinite(f))
    assert np.allclose(f[:88], e)


def test_short_and_silent_input_gives_finite_vectors() -> None:
    for y in (tone(seconds=0.05), np.zeros(SR // 2, np.float32)):
        assert np.all(np.isfinite(S.fused(y)))


def test_prosody_stats_use_voiced_frames_only() -> None:
    lld = S.prosody(tone(220.0))
    st = S.prosody_stats(lld)
    semitones = 12 * np.log2(220.0 / 27.5)
    assert st[8] == pytest.approx(semitones, abs=0.5)     # F0 mean
    assert S.prosody_stats(np.zeros((4, 0))).shape == (17,)


def test_utterance_stats_shape_and_empty() -> None:
    assert S.utterance_stats(np.ones((3, 10))).shape == (24,)
    assert not S.utterance_stats(np.ones((3, 0))).any()


def test_extract_is_cached_by_content_and_settings(tmp_path: Path, wav: Path) -> None:
    cache = FeatureCache(tmp_path / "c")
    a = S.extract(wav, "mfcc", params={"n_mfcc": 13}, cache=cache)
    b = S.extract(wav, "mfcc", params={"n_mfcc": 13}, cache=cache)
    assert cache.hits == 1 and np.array_equal(a, b)
    S.extract(wav, "mfcc", params={"n_mfcc": 12}, cache=cache)   # other settings: a miss
    assert cache.misses == 2
    assert S.feature_settings("mfcc", {"n_mfcc": 13})["version"] == get_feature("mfcc").version


def test_speed_perturbation_scales_length_and_pitch(tmp_path: Path, wav: Path) -> None:
    y = tone(220.0)
    fast = S.speed_perturb(y, 1.1)
    assert len(fast) == pytest.approx(len(y) / 1.1, abs=2)
    assert S.speed_perturb(y, 1.0) is y
    f0 = S.prosody_stats(S.prosody(fast))[8]
    assert f0 == pytest.approx(12 * np.log2(220.0 * 1.1 / 27.5), abs=0.5)
    cache = FeatureCache(tmp_path / "c")
    a = S.extract(wav, "mfcc", params={"n_mfcc": 13}, cache=cache)
    b = S.extract(wav, "mfcc", params={"n_mfcc": 13, "speed": 0.9}, cache=cache)
    assert cache.misses == 2 and b.shape[1] > a.shape[1]


def test_extract_many_reports_a_bad_file_and_goes_on(tmp_path: Path, wav: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio at all")
    missing = tmp_path / "missing.wav"
    out, errors = S.extract_many([wav, bad, missing, wav], "egemaps",
                                 cache=FeatureCache(tmp_path / "c"))
    assert [x is None for x in out] == [False, True, True, False]
    assert [Path(e["path"]).name for e in errors] == ["bad.wav", "missing.wav"]
    assert "text" in errors[0]["reason"]


def test_feature_settings_refuses_other_modalities(monkeypatch) -> None:
    from emofuse.errors import ConfigError, EmofuseError

    with pytest.raises(ConfigError):
        S.feature_settings("no-such-feature")
    from emofuse import features

    monkeypatch.setitem(features._REGISTRY, "toy_text",
                        features.Feature("toy_text", lambda x: x, "text", "1"))
    with pytest.raises(EmofuseError, match="text feature"):
        S.feature_settings("toy_text")


def test_concat_puts_parts_side_by_side_and_caches_each(tmp_path: Path, wav: Path) -> None:
    from emofuse.errors import ConfigError

    parts = [{"name": "egemaps"}, {"name": "lld_stats", "params": {"n_mfcc": 13}}]
    cache = FeatureCache(tmp_path / "c")
    alone = S.extract(wav, "egemaps", cache=cache)                       # miss 1
    both = S.extract(wav, "concat", params={"parts": parts}, cache=cache)  # hit + miss 2
    assert cache.hits == 1 and cache.misses == 2
    assert both.shape == (88 + 24 * 13 + 17,) and np.array_equal(both[:88], alone)
    y, _ = sf.read(wav, dtype="float32")       # the in-memory path gives the same vector
    assert np.allclose(S.concat(y, parts=parts), both, atol=1e-5)
    fast = S.extract(wav, "concat", params={"parts": parts, "speed": 1.1}, cache=cache)
    assert np.array_equal(fast[:88], S.extract(wav, "egemaps", params={"speed": 1.1},
                                               cache=cache))
    for bad in ([], "egemaps", [{"name": "concat"}], [{"name": "mfcc", "oops": 1}],
                [{"name": "egemaps", "params": {"speed": 2}}]):
        with pytest.raises(ConfigError, match="concat"):
            S.extract(wav, "concat", params={"parts": bad}, cache=cache)
    with pytest.raises(ConfigError, match="utterance-level"):
        S.concat(tone(), parts=[{"name": "mfcc"}])


def test_ge2e_speaker_encoder_states(tmp_path: Path, monkeypatch) -> None:
    from emofuse.errors import ConfigError, DataError
    from emofuse.features import speaker_encoder as G

    try:
        G.ge2e_weights_path()
    except DataError as exc:
        pytest.skip(f"Resemblyzer weights not installed ({exc})")
    y = tone(seconds=1.5)
    full = G.ge2e(y, sr=SR, layers=(0, 2), embedding=True)
    assert full.shape == (2 * 512 + 256,) and full.dtype == np.float32
    assert np.isfinite(full).all()
    assert np.linalg.norm(full[-256:]) == pytest.approx(1.0, abs=1e-4)
    assert np.allclose(G.ge2e(y, sr=SR, layers=(2,)), full[512:1024], atol=1e-5)
    resampled = G.ge2e(S.speed_perturb(y, 1.0)[::2].copy(), sr=8000)    # any input rate
    assert resampled.shape == (512,)
    assert G.ge2e(np.zeros(800, np.float32), sr=SR).shape == (512,)   # 50 ms of silence
    for bad in ({"layers": (3,)}, {"layers": (), "embedding": False}):
        with pytest.raises(ConfigError, match="ge2e"):
            G.ge2e(y, sr=SR, **bad)
    monkeypatch.setattr(G.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match="Resemblyzer"):
        G.ge2e_weights_path()


def test_normalize_gain_sets_the_rms_level_and_keeps_silence():
    from emofuse.features.speech import normalize_gain

    rng = np.random.default_rng(0)
    y = (0.001 * rng.standard_normal(16000)).astype(np.float32)
    out = normalize_gain(y)
    assert out.dtype == np.float32
    assert 20 * np.log10(np.sqrt(np.mean(out.astype(np.float64) ** 2))) == pytest.approx(-23, abs=1e-3)
    assert np.allclose(normalize_gain(y, target_dbfs=-10) / normalize_gain(y), 10 ** (13 / 20))
    assert np.array_equal(normalize_gain(np.zeros(100, np.float32)), np.zeros(100))
    assert normalize_gain(np.zeros(0, np.float32)).size == 0


def test_compute_feature_gain_makes_the_level_irrelevant():
    from emofuse.errors import ConfigError
    from emofuse.features.speech import compute_feature

    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    y = (0.1 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(16000)).astype(np.float32)
    quiet, loud = compute_feature(y * 0.05, "logmel_stats", params={"gain": "rms"}), \
        compute_feature(y, "logmel_stats", params={"gain": "rms"})
    assert np.allclose(quiet, loud, atol=1e-3)
    assert not np.allclose(compute_feature(y * 0.05, "logmel_stats"),
                           compute_feature(y, "logmel_stats"), atol=1e-3)
    with pytest.raises(ConfigError, match="gain is 'none' or 'rms'"):
        compute_feature(y, "logmel_stats", params={"gain": "peak"})
