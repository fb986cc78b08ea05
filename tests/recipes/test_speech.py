"""Speech recipe: config parsing, ensemble weights, the suites' --quick smoke runs on the real
corpora, and ``emofuse train`` / ``emofuse evaluate`` across corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.config import load_config, parse_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import results_to, validate_result
from emofuse.paths import repo_root
from emofuse.recipes import get_suite, list_suites
from emofuse.recipes.speech import choose_weights, parse_run

CONFIGS = repo_root() / "configs"
# the speech recognisers (the aug-speech-* ablations have their own tests in tests/augment)
SPEECH_SUITES = sorted(s.name for s in list_suites()
                       if s.modality == "speech" and not s.name.startswith("aug-"))


def _cfg(model: dict, features: dict | None = None):
    return parse_config({"task": {"modality": "speech"}, "data": {"corpus": "savee"},
                         "features": features or {"name": "egemaps"}, "model": model})


def test_every_speech_suite_has_a_valid_config() -> None:
    assert {"ser-ravdess", "ser-savee"} <= set(SPEECH_SUITES)
    for name in SPEECH_SUITES:
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.suite == name and cfg.task.modality == "speech"
        assert cfg.protocol.kind == "emobox"
        run = parse_run(cfg)
        assert set(run.settings) <= {"inductive", "spknorm"}


def test_parse_single_model_and_ensemble() -> None:
    run = parse_run(_cfg({"name": "cnn2d", "params": {
        "channels": [8, 16], "settings": "inductive",
        "fit": {"crop_s": 2.0, "mixup": 0.2, "spec_augment": {}}}}))
    (m,) = run.members
    assert m.kind == "waveform" and m.params == {"channels": [8, 16]} and m.crop_s == 2.0
    assert run.settings == ["inductive"]
    run = parse_run(_cfg({"name": "ensemble", "params": {"weights": "val", "members": [
        {"name": "svm", "grid": {"C": [1, 10]}},
        {"name": "fercnn", "features": {"name": "fused", "params": {"n_mfcc": 13}}}]}}))
    assert [m.kind for m in run.members] == ["classical", "vector"]
    assert run.members[0].feature == "egemaps" and run.members[1].feature_params == {"n_mfcc": 13}
    (m,) = parse_run(_cfg({"name": "lda", "params": {"fit": {"speeds": [0.9, 1.1]}}})).members
    assert m.kind == "classical" and m.speeds == [0.9, 1.1]


@pytest.mark.parametrize("model, match", [
    ({"name": "cnn2d", "params": {"settings": ["transductive"]}}, "settings"),
    ({"name": "cnn2d", "params": {"fit": {"crop": 2}}}, "fit"),
    ({"name": "cnn2d", "params": {"norm": "speaker"}}, "spknorm"),
    ({"name": "ensemble", "params": {"members": []}}, "members"),
    ({"name": "ensemble", "params": {"members": [{"name": "svm", "colour": 1}]}}, "colour"),
    ({"name": "ensemble", "params": {"members": [{"name": "svm"}], "weights": [1, 2]}}, "weight"),
    ({"name": "resnet", "params": {}}, "not a speech model"),
    ({"name": "cnn2d", "params": {"fit": {"speeds": [0.9]}}}, "speeds"),
    ({"name": "svm", "params": {"fit": {"speeds": [0.0]}}}, "speeds"),
])
def test_bad_configs_are_explained(model: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_run(_cfg(model))


def test_choose_weights_prefers_the_better_member_and_even_ties() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    good = np.eye(3)[y] * 0.9 + 0.05
    bad = np.roll(good, 1, axis=1)
    w = choose_weights([good, bad], y)
    assert w[0] > w[1] and sum(w) == pytest.approx(1.0)
    assert choose_weights([good, good], y) == pytest.approx([0.5, 0.5])
    assert choose_weights([good], y) == [1.0]


#: the feature cache of the quick runs on the shared corpora (conftest ``shared_cache``):
#: these tests (and tests/test_configs.py's quick runs) extract the quick subsets once
SPEECH_QUICK = "speech-quick"


@pytest.mark.slow
@pytest.mark.shared_data
@pytest.mark.parametrize("name", SPEECH_SUITES)
def test_quick_suite_runs(name: str, shared_data: Path, shared_cache, tmp_path: Path,
                          monkeypatch) -> None:
    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache(SPEECH_QUICK)))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(CONFIGS / f"{name}.yaml")
    with results_to(tmp_path / "out"):                 # emofuse bench --results out
        result = get_suite(name).run(cfg, quick=True)
    validate_result(result)
    assert not (tmp_path / "benchmarks").exists()
    for s in parse_run(cfg).settings:
        suffix = "" if s == "inductive" else "_spknorm"
        assert 0.0 <= result["metrics"][f"ua{suffix}"]["mean"] <= 1.0
        assert f"macro_f1{suffix}" in result["metrics"]
        assert Path(result[f"confusion_png{suffix}"]).is_file()
        assert Path(result[f"confusion_png{suffix}"]).parent == tmp_path / "out"
    assert result["metrics"]["infer_3s_ms"]["mean"] > 0
    assert set(result["per_class"]) == set(result["classes"])
    assert "inductive" in result["notes"] and "speaker-normalised" in result["notes"]


def _folder_corpus(root: Path) -> Path:
    """A tiny user corpus (``folder`` layout) with a label SAVEE lacks (calm)."""
    rng = np.random.default_rng(0)
    for label in ("angry", "sad", "calm"):
        for i in range(2):
            t = np.arange(16000) / 16000
            y = 0.2 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) * (1 + 0.3 * np.sin(6 * t))
            path = root / label / f"spk{i}_{label}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, y.astype(np.float32), 16000)
    (root / "angry" / "broken.wav").write_text("not audio")
    return root


def _run(main, argv: list[str]) -> None:
    """Run the CLI; a failure (exit code != 0) fails the test."""
    try:
        main(argv)
    except SystemExit as exc:
        assert exc.code in (0, None), f"emofuse {' '.join(argv)} exited with {exc.code}"


@pytest.mark.slow
@pytest.mark.shared_data
def test_train_then_evaluate_on_another_corpus(shared_data: Path, shared_cache,
                                               tmp_path: Path, monkeypatch) -> None:
    from emofuse.cli import main

    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache(SPEECH_QUICK)))
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text((CONFIGS / "ser-savee-egemaps-svm.yaml").read_text())
    model = tmp_path / "model"
    _run(main, ["train", "--config", str(cfg), "--quick", "--out", str(model)])
    card = json.loads((model / "card.json").read_text())
    assert card["task"] == "speech" and len(card["labels"]) == 7
    corpus = _folder_corpus(tmp_path / "user")
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        _run(main, ["evaluate", "--model", str(model), "--corpus", "folder", "--root",
                    str(corpus), "--json"])
    res = json.loads(buf.getvalue())
    assert res["classes"] == ["sad", "angry"] and res["items"] == 4
    assert set(res["metrics"]) >= {"ua_spknorm", "wa_spknorm", "macro_f1_spknorm"} or \
        set(res["metrics"]) >= {"ua", "wa", "macro_f1"}
    reasons = [s["reason"] for s in res["skipped"]]
    assert sum("'calm'" in r for r in reasons) == 2
    assert any("broken.wav" in s.get("path", "") for s in res["skipped"])


def test_fit_temperature_calibrates_without_changing_the_argmax():
    import numpy as np

    from emofuse.evaluate.calibration import apply_temperature, fit_temperature, nll
    from emofuse.recipes.speech import TEMPERATURE_BOUNDS

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    logits = rng.normal(0, 1, (200, 4))
    logits[np.arange(200), y] += 1.0
    p = np.exp(8 * logits)  # far too confident
    p /= p.sum(1, keepdims=True)
    t = fit_temperature([p], [y], bounds=TEMPERATURE_BOUNDS)
    assert t > 2 and nll(p, y, temperature=t) < nll(p, y)
    assert (p.argmax(1) == apply_temperature(p, t).argmax(1)).all()
    # far beyond the default range: the speech range reaches it, the default stops at 50
    z = 100 * logits
    q = np.exp(z - z.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    assert fit_temperature([q], [y], bounds=TEMPERATURE_BOUNDS) > 80
    assert fit_temperature([q], [y]) <= 50
