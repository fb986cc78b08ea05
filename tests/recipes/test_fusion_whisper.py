"""av-ravdess-whisper: the reliability gate and SNR estimate on synthetic data, the config, and
the suite's --quick smoke run on the shared RAVDESS data (skipped when it is absent)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result
from emofuse.fusion.reliability import (
    ReliabilityGate,
    estimate_snr,
    log_proba,
    reliability_signals,
)
from emofuse.paths import repo_root
from emofuse.recipes import get_suite
from emofuse.augment.online import white_noise as add_white_noise
from emofuse.recipes._fusion_params import ReliabilityParams
from emofuse.recipes.fusion_whisper import layer_columns

CONFIG = repo_root() / "configs" / "av-ravdess-whisper.yaml"


def _speech_like(seconds: float = 3.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = (np.sin(2 * np.pi * 2 * t) > 0).astype(float)            # bursts and pauses
    y = env * np.sin(2 * np.pi * 180 * t) * 0.3
    y[: sr // 3] = 0.0                                                # leading silence
    return y.astype(np.float32)


def test_snr_estimate_falls_with_the_true_snr():
    y = _speech_like()
    rng = np.random.default_rng
    est = [estimate_snr(y)] + [estimate_snr(add_white_noise(y, snr_db=s, rng=rng(0)))
                               for s in (15, 5, 0, -5)]
    assert all(a > b for a, b in itertools.pairwise(est)), est
    assert est[0] > 40 and est[3] < 15


def _synthetic(n: int, rng: np.random.Generator, noisy: bool):
    """Audio member right 80 % of the time (clean) or at chance (noisy), face right 60 %."""
    C = 4
    y = rng.integers(C, size=n)

    def member(acc: float) -> np.ndarray:
        right = rng.random(n) < acc
        pred = np.where(right, y, rng.integers(C, size=n))
        p = np.full((n, C), 0.1)
        p[np.arange(n), pred] = 0.7
        return p

    pa, pf = member(0.25 if noisy else 0.8), member(0.6)
    ones = np.ones(n, bool)
    snr = np.full(n, 5.0 if noisy else 50.0)
    R = reliability_signals(pa, pf, audio_present=ones, face_present=ones, snr_db=snr)
    return log_proba(pa), log_proba(pf), R, y


def test_gate_moves_weight_off_a_degraded_modality_and_missing_falls_back():
    rng = np.random.default_rng(0)
    parts = [_synthetic(400, rng, noisy) for noisy in (False, True)]
    La, Lf, R, y = (np.concatenate([p[i] for p in parts]) for i in range(4))
    gate = ReliabilityGate(l2=0.01).fit(La, Lf, R, y)
    _, w_clean = gate.predict(*parts[0][:3])
    _, w_noisy = gate.predict(*parts[1][:3])
    assert w_noisy[:, 0].mean() < 0.5 * w_clean[:, 0].mean()    # audio loses weight in noise
    # audio missing: zero log-probabilities, zero signals -> the face member's own argmax
    La_c, Lf_c, _, _ = parts[0]
    n = len(Lf_c)
    pf = np.exp(Lf_c)
    R_m = reliability_signals(np.full_like(pf, 0.25), pf, audio_present=np.zeros(n, bool),
                              face_present=np.ones(n, bool), snr_db=None)
    fused, w = gate.predict(np.zeros_like(La_c), Lf_c, R_m)
    assert np.array_equal(fused.argmax(1), Lf_c.argmax(1)) and np.all(w > 0)
    np.testing.assert_allclose(fused.sum(1), 1.0)


def test_config_and_parameters():
    cfg = load_config(CONFIG)
    assert cfg.suite == "av-ravdess-whisper" and cfg.protocol.kind == "emobox"
    assert get_suite("av-ravdess-whisper").modality == "fusion"
    assert cfg.train.seeds == [0, 1, 2]
    p = ReliabilityParams.of(cfg.model)
    assert p.audio.layers and p.gate.signals and p.inner_folds == 5
    fp = cfg.features.params
    assert fp["noise"]["snr_db"] == 0 and 0 not in fp["augment"]["snr_db"]   # 0 dB: test only
    cols = layer_columns([2, 3], available=[1, 2, 3, 4, 5, 6])
    assert cols[0] == 1024 and cols[-1] == 3 * 1024 - 1 and len(cols) == 2048
    with pytest.raises(ConfigError):
        layer_columns([7], available=[1, 2, 3])
    bad = cfg.model_copy(deep=True)
    bad.model.params = {**bad.model.params, "nonsense": 1}
    with pytest.raises(ConfigError, match="nonsense"):
        ReliabilityParams.of(bad.model)
    # partial nested sections keep the other defaults (as the merged dicts did)
    q = ReliabilityParams.of({"audio": {"C": 0.1}, "gate": {"l2": 0.1}, "inner_folds": 3})
    assert q.audio.layers == [[3], [3, 4], [2, 3, 4]] and q.audio.max_iter == 2000
    assert q.gate.train_conditions[0] == "clean" and q.face.candidates() == [0.01, 0.1, 1.0]
    with pytest.raises(ConfigError, match="inner_folds"):
        ReliabilityParams.of({"inner_folds": 1})


@pytest.mark.slow
def test_quick_suite_runs(shared_data: Path, shared_cache, tmp_path: Path, monkeypatch) -> None:
    # the quick subset's features, shared with tests/recipes/test_fusion.py's quick runs (the
    # Whisper states: ~48 clips x 3 conditions, extracted here)
    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache("av-ravdess-quick")))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(CONFIG)
    result = get_suite("av-ravdess-whisper").run(cfg, quick=True)
    validate_result(result)
    m = result["metrics"]
    for suffix in ("", "_spknorm"):
        assert 0.0 <= m[f"ua{suffix}"]["mean"] <= 1.0
        for name in ("audio", "face", "fused_static"):
            assert f"{name}.ua{suffix}" in m
        for cond in ("audio_noise", "audio_missing", "face_missing"):
            assert f"fused.ua_{cond}{suffix}" in m
    for setting in ("inductive", "spknorm"):
        f = result["systems"]["fused"][setting]
        face = result["systems"]["face"][setting]["clean"]["ua"]["mean"]
        # audio removed: the gate leaves the face member's decisions unchanged
        assert f["audio_missing"]["ua"]["mean"] == pytest.approx(face)
        assert len(result["choices"][setting]) == 2
    assert result["targets"] and "## Targets" in result["notes"]
    assert result["gate"]["inductive"]["clean"]["audio"] > 0
