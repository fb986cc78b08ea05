"""``output.card``: facts a model card states (corpora, languages, licences, quoted figures),
added after training by ``recipes.train_model`` / ``emofuse train``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import CardFacts
from emofuse.errors import ConfigError
from emofuse.models.checkpoint import load_model, save_model, update_card
from emofuse.recipes import card_facts


def _result(path: Path) -> Path:
    path.write_text(json.dumps({"suite": "xcorpus-toy", "git_commit": "abc", "protocol": "p",
                                "metrics": {"accuracy": {"mean": 0.5, "std": 0.1,
                                                         "per_fold": [0.4, 0.6]}}}))
    return path


def test_facts_quote_the_committed_figures(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    _result(tmp_path / "r.json")
    facts = CardFacts(training_corpora=["toy"], languages=["en"], licences={"toy": "CC0"},
                      cross_corpus=[{"results": "r.json", "metrics": ["accuracy"]}])
    out = card_facts(facts)
    assert out["training_corpora"] == ["toy"] and out["licences"] == {"toy": "CC0"}
    q = out["cross_corpus_results"]["xcorpus-toy"]
    assert q["metrics"]["accuracy"] == {"mean": 0.5, "per_fold": [0.4, 0.6]}
    assert q["git_commit"] == "abc" and q["source"] == "r.json"
    assert card_facts(CardFacts()) == {}


def test_missing_result_or_metric_is_a_config_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="nope.json not found"):
        card_facts(CardFacts(cross_corpus=[{"results": "nope.json", "metrics": ["ua"]}]))
    _result(tmp_path / "r.json")
    with pytest.raises(ConfigError, match="has no metric ua"):
        card_facts(CardFacts(cross_corpus=[{"results": "r.json", "metrics": ["ua"]}]))


def test_a_named_model_must_be_the_one_measured(tmp_path: Path, monkeypatch) -> None:
    """A reference naming its model refuses a result that measured another one, and the card
    of the trained model says whether the quoted result measured these very weights."""
    import torch

    from emofuse.recipes import _mark_same_weights

    monkeypatch.chdir(tmp_path)
    r = json.loads(_result(tmp_path / "r.json").read_text())
    r["models"] = {"face": {"folder": "x", "weights_sha256": None}}
    (tmp_path / "r.json").write_text(json.dumps(r))
    ref = {"results": "r.json", "metrics": ["accuracy"]}
    with pytest.raises(ConfigError, match="r.json measured face, not runs/face-v3/model"):
        card_facts(CardFacts(cross_corpus=[{**ref, "model": "runs/face-v3/model"}]))
    out = card_facts(CardFacts(cross_corpus=[{**ref, "model": "face"}]))
    q = out["cross_corpus_results"]["xcorpus-toy"]
    assert q["model"] == "face" and q["measured_weights_sha256"] is None
    card = {"labels": ["a", "b"], "features": {}, "data": {}, "protocol": {}, "metrics": {}}
    save_model(tmp_path / "m", {"w": torch.tensor(np.arange(4.0))}, card)
    sha = json.loads((tmp_path / "m" / "card.json").read_text())["weights_sha256"]
    assert _mark_same_weights(out, tmp_path / "m")["cross_corpus_results"]["xcorpus-toy"][
        "same_weights"] is None                               # not recorded: unknown
    for measured, same in ((sha, True), ("0" * 64, False)):
        r["models"]["face"]["weights_sha256"] = measured
        (tmp_path / "r.json").write_text(json.dumps(r))
        out = card_facts(CardFacts(cross_corpus=[{**ref, "model": "face"}]))
        marked = _mark_same_weights(out, tmp_path / "m")["cross_corpus_results"]["xcorpus-toy"]
        assert marked["same_weights"] is same and marked["measured_weights_sha256"] == measured
    plain = card_facts(CardFacts(cross_corpus=[ref]))          # a recipe's figures: no check
    assert "same_weights" not in _mark_same_weights(plain, tmp_path / "m")[
        "cross_corpus_results"]["xcorpus-toy"]


def test_update_card_keeps_weights_and_automatic_keys(tmp_path: Path) -> None:
    import torch

    card = {"labels": ["a", "b"], "features": {}, "data": {}, "protocol": {}, "metrics": {}}
    save_model(tmp_path, {"w": torch.tensor(np.arange(4.0))}, card)
    before = json.loads((tmp_path / "card.json").read_text())
    update_card(tmp_path, {"languages": ["en"]})
    state, after = load_model(tmp_path)                 # checksum still matches
    assert after == {**before, "languages": ["en"]} and state["w"].shape == (4,)
    with pytest.raises(ValueError, match="weights_sha256"):
        update_card(tmp_path, {"weights_sha256": "x"})
    assert not [p for p in tmp_path.iterdir() if p.name not in ("card.json",
                                                                "model.safetensors")]


def test_emofuse_train_refuses_a_missing_quoted_result_before_training(tmp_path: Path) -> None:
    import shutil
    import subprocess
    import sys

    from emofuse.paths import repo_root

    cfg = (repo_root() / "configs" / "example-tiny.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.replace("  card: null", "  card: {cross_corpus: [{results: nope.json, "
                                                "metrics: [ua]}]}"))
    exe = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or shutil.which("emofuse")
    out = tmp_path / "model"
    p = subprocess.run([exe, "train", "--config", str(bad), "--quick", "--out", str(out)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.returncode == 2 and "nope.json not found" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()


def test_quote_card_refreshes_the_quote_without_training(tmp_path: Path, monkeypatch) -> None:
    """``quote_card`` (``make cards``): after a quoted suite is rerun, the card re-reads it and
    marks whether it measured these weights; a config without facts leaves the card alone."""
    import torch

    from emofuse.config import RunConfig
    from emofuse.recipes import quote_card

    monkeypatch.chdir(tmp_path)
    card = {"labels": ["a", "b"], "features": {}, "data": {}, "protocol": {}, "metrics": {}}
    save_model(tmp_path / "m", {"w": torch.tensor(np.arange(4.0))}, card)
    sha = json.loads((tmp_path / "m" / "card.json").read_text())["weights_sha256"]
    r = json.loads(_result(tmp_path / "r.json").read_text())
    r["models"] = {"face": {"folder": "x", "weights_sha256": sha}}
    (tmp_path / "r.json").write_text(json.dumps(r))
    base = {"suite": "fer-fer2013", "task": {"modality": "face"}, "data": {"corpus": "fer2013"},
            "features": {"name": "face_crops"}, "model": {"name": "resnet18"}}
    cfg = RunConfig.model_validate({**base, "output": {"dir": "x", "card": {
        "languages": ["en"], "cross_corpus": [{"results": "r.json", "model": "face",
                                               "metrics": ["accuracy"]}]}}})
    quote_card(cfg, tmp_path / "m")
    state, after = load_model(tmp_path / "m")           # weights untouched, checksum valid
    q = after["cross_corpus_results"]["xcorpus-toy"]
    assert q["same_weights"] is True and after["languages"] == ["en"]
    before = (tmp_path / "m" / "card.json").read_bytes()
    quote_card(RunConfig.model_validate(base), tmp_path / "m")
    assert (tmp_path / "m" / "card.json").read_bytes() == before
    with pytest.raises(ConfigError, match="no card.json"):
        quote_card(cfg, tmp_path / "nowhere")
