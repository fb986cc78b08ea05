"""Whisper speech suites (ser-ravdess-whisper, ser-savee-whisper): their configs, the LDA
``cholesky`` solver they use, and a smoke run of the speech recipe with a Whisper-shaped
vector, layer columns and an inner grid over layers, on tiny generated data (a stand-in for
the encoder: no model weights, no real training). The suites' ``--quick`` runs on the real
corpora are in ``tests/recipes/test_speech.py`` (``test_quick_suite_runs``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.config import load_config, parse_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import results_to, validate_result
from emofuse.models import build_model
from emofuse.models.classical import from_tensors, to_tensors
from emofuse.paths import repo_root
from emofuse.recipes import get_suite
from emofuse.recipes.speech import parse_run, run_benchmark

CONFIGS = repo_root() / "configs"
SUITES = ("ser-ravdess-whisper", "ser-savee-whisper")
CANONICAL = {"layers": [1, 2, 3, 4, 5, 6], "pooling": "meanstd", "padding": "clip"}
DIM = 6 * 1024


@pytest.mark.parametrize("name", SUITES)
def test_suite_config_uses_the_canonical_vector_and_layer_columns(name: str) -> None:
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert get_suite(name).modality == "speech"
    assert cfg.suite == name and cfg.protocol.kind == "emobox"
    run = parse_run(cfg)
    assert run.settings == ["inductive", "spknorm"]
    for m in run.members:
        assert m.kind == "classical" and m.feature == "whisper"
        assert m.feature_params == CANONICAL   # the shared cache entry, reused across suites
        candidates = [m.params["columns"]] + list((m.grid or {}).get("columns", []))
        for columns in candidates:             # whole 512-column halves of layers 1..6
            for a, b in columns:
                assert 0 <= a < b <= DIM and a % 512 == 0 and b % 512 == 0
        for key in m.grid or {}:               # the grid only changes model parameters
            assert key in ("columns", "shrinkage", "C")


def test_cholesky_lda_is_the_lsqr_lda() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 30)
    x = rng.normal(size=(120, 60)) + 0.8 * np.eye(4)[y] @ rng.normal(size=(4, 60))
    ref = build_model("lda", shrinkage=0.4).fit(x, y)
    fast = build_model("lda", shrinkage=0.4, solver="cholesky", columns=[[0, 60]]).fit(x, y)
    np.testing.assert_allclose(fast.predict_proba(x), ref.predict_proba(x), atol=1e-6)
    arrays, tree = to_tensors(fast)                # saved as safetensors like the others
    np.testing.assert_array_equal(from_tensors(arrays, tree).predict(x), fast.predict(x))
    unbalanced = build_model("lda", shrinkage=0.4, balanced=False, solver="cholesky")
    ref = build_model("lda", shrinkage=0.4, balanced=False)
    yy = np.r_[y, np.zeros(20, int)]
    xx = np.r_[x, rng.normal(size=(20, 60))]
    np.testing.assert_allclose(unbalanced.fit(xx, yy).predict_proba(xx),
                               ref.fit(xx, yy).predict_proba(xx), atol=1e-6)


@pytest.mark.parametrize("params", [{"solver": "svd"}, {"solver": "cholesky",
                                                         "shrinkage": "auto"},
                                    {"solver": "cholesky", "shrinkage": 0.0}])
def test_bad_lda_solver_is_explained(params: dict) -> None:
    with pytest.raises(ConfigError, match="lda"):
        build_model("lda", **params)


# -- a smoke run on generated data --------------------------------------------------------------

LABELS = ("angry", "happy", "sad")


def _tiny_corpus(root: Path) -> Path:
    """6 speakers x 3 classes x 3 clips of 0.4 s (a tone whose pitch depends on the class)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,label,speaker"]
    t = np.arange(6400) / 16000
    for s in range(6):
        for c, label in enumerate(LABELS):
            for k in range(3):
                f0 = 120 + 60 * c + 10 * s + rng.uniform(-5, 5)
                y = 0.2 * np.sin(2 * np.pi * f0 * t) + 0.01 * rng.standard_normal(len(t))
                path = root / f"s{s}_{label}_{k}.wav"
                sf.write(path, y.astype(np.float32), 16000)
                rows.append(f"{path.name},{label},s{s}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def _fake_whisper(y: np.ndarray, *, sr: int = 16000, layers=(3,), pooling: str = "meanstd",
                  padding: str = "clip") -> np.ndarray:
    """Whisper-shaped vector (1024 columns per layer) from the clip's spectrum: layer 3 carries
    the class (pitch), the other layers noise."""
    spec = np.abs(np.fft.rfft(y, 2048))[:1024]
    rng = np.random.default_rng(int(1e6 * float(np.abs(y).sum())) % 2**31)
    out = [spec / (spec.max() + 1e-9) if layer == 3 else rng.normal(size=1024)
           for layer in layers]
    return np.concatenate(out).astype(np.float32)


@pytest.fixture
def fake_whisper(monkeypatch):
    from emofuse import features

    feat = features.get_feature("whisper")
    monkeypatch.setitem(features._REGISTRY, "whisper",
                        features.Feature("whisper", _fake_whisper, "speech", feat.version + "-t"))


def test_whisper_lda_with_inner_layer_grid_runs_end_to_end(tmp_path: Path,
                                                           fake_whisper) -> None:
    root = _tiny_corpus(tmp_path / "data")
    cfg = parse_config({
        "suite": "ser-tiny-whisper", "task": {"modality": "speech"},
        "data": {"corpus": "manifest", "root": str(root)},
        "protocol": {"kind": "speaker_kfold", "k": 3},
        "features": {"name": "whisper", "params": CANONICAL},
        "model": {"name": "lda", "params": {
            "settings": ["inductive", "spknorm"], "shrinkage": 0.5, "solver": "cholesky",
            "columns": [[2048, 2112]],        # 64 columns of each layer: a fast test
            "grid": {"columns": [[[0, 64]], [[2048, 2112]]], "shrinkage": [0.5]}}},
        "train": {"seeds": [0], "num_threads": 1, "val_fraction": 0.2}})
    with results_to(tmp_path / "out"):
        result = run_benchmark(cfg)
    validate_result(result)
    for suffix in ("", "_spknorm"):
        ua = result["metrics"][f"ua{suffix}"]
        assert len(ua["per_fold"]) == 3 and ua["mean"] > 0.6   # layer 3 carries the class
    for setting in ("inductive", "spknorm"):
        for run in result["runs"][setting]:
            (member,) = run["members"]
            assert member["chosen"]["columns"] == [[2048, 2112]]   # chosen on inner speakers
            assert 0.0 <= member["inner_cv_ua"] <= 1.0
    assert result["metrics"]["infer_3s_ms"]["mean"] > 0
    assert "columns" in result["notes"]
