"""aug-text suite: a --quick run on a generated dair-style corpus with a fake LLM and a fake
embedding; statistics helpers; config problems; the committed config parses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config, parse_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result, write_result
from emofuse.recipes import config_path, get_suite
from emofuse.recipes import augment as aug
from tests.augment._fakes import FakeBackend, fake_embed, write_dair


@pytest.fixture()
def fakes(monkeypatch):
    monkeypatch.setattr(aug, "EMBED", fake_embed)
    monkeypatch.setattr("emofuse.augment.text.SmolLM2Backend", FakeBackend)


def _cfg(root, tmp_path, **params):
    base = {
        "fractions": [0.5, 1.0], "core_per_class": 2, "bootstrap": 20,
        "classifier": {"C": 5.0, "max_iter": 100},
        "generators": {
            "llm_generate": {"name": "llm_text", "budget": 12,
                             "quick_budget": 12,
                             "params": {"mode": "generate", "shots": 2, "batch_size": 4}},
            "llm_paraphrase": {"name": "llm_text", "budget": 6, "quick_budget": 6,
                               "params": {"mode": "paraphrase", "batch_size": 4}},
            "eda": {"name": "eda_text", "budget": 12, "quick_budget": 12}},
        "arms": {"real": [], "llm": ["llm_generate", "llm_paraphrase"], "eda": ["eda"],
                 "real_bal": {"class_weight": "balanced"},
                 "llm_bal": {"generators": ["llm_generate"], "class_weight": "balanced",
                             "baseline": "real_bal", "filter": "balanced"}},
        "primary": {"arm": "llm", "fraction": 0.5},
        "pool_dir": str(tmp_path / "pools")}
    base.update(params)
    return parse_config({
        "suite": "aug-test", "task": {"modality": "text"},
        "data": {"corpus": "dair", "root": str(root)}, "protocol": {"kind": "official"},
        "features": {"name": "text_clean", "params": {}},
        "model": {"name": "logreg_minilm", "params": base},
        "train": {"seeds": [0, 1], "num_threads": 1}})


def test_suite_runs_and_reuses_its_pools(tmp_path, fakes):
    root = write_dair(tmp_path / "dair", n=12)
    cfg = _cfg(root, tmp_path)
    logs: list[str] = []
    res = aug.aug_text(cfg, log=logs.append)
    validate_result(res)
    assert res["classes"] == ["happy", "sad", "angry"]
    assert res["seeds"] == [0, 1]
    m = res["metrics"]
    for arm in ("real", "llm", "eda"):
        for f in ("f50", "f100"):
            assert len(m[f"ua_{arm}_{f}"]["per_fold"]) == 2
    assert m["ua"] == m["ua_llm_f50"]
    comp = res["comparisons"]["llm_f50"]
    assert {"t_p", "wilcoxon_p", "diff_mean", "per_seed"} <= set(comp["ua"])
    assert comp["bootstrap"]["ua_ci_low"] <= comp["bootstrap"]["ua_ci_high"]
    # the rare class gets synthetic items, the largest none (balancing plan)
    assert comp["added_per_class_mean"]["happy"] == 0
    assert comp["added_per_class_mean"]["angry"] > 0
    assert set(res["per_class_recall"]) == {f"{a}_{f}" for a in ("real", "llm", "eda",
                                                                 "real_bal", "llm_bal")
                                           for f in ("f50", "f100")}
    q = res["quality"]["llm_generate"]
    assert q["candidates"] > 0 and "overall" in q["gates_candidates"]
    gen = res["generation"]["llm_generate"]
    assert gen["candidates"] > 0 and gen["requested"]["happy"] == 0
    # pools: manifests fitted on the core (training part) only
    man = json.loads(next((tmp_path / "pools").glob("llm_generate-*/manifest.json")).read_text())
    assert man["fitted_on"]["n"] == 6 and all(i.startswith("train-") for i in
                                               man["fitted_on"]["ids"])
    assert "Ablation" in res["notes"] and "| 50 % | llm |" in res["notes"]
    assert res["comparisons"]["llm_bal_f50"]["baseline"] == "real_bal"
    assert res["comparisons"]["real_bal_f50"]["baseline"] == "real"
    assert res["comparisons"]["real_bal_f50"]["n_synthetic_mean"] == 0
    assert "kept_balanced_filter" in res["quality"]["llm_generate"]
    assert "filter balanced" in res["notes"]
    j, md = write_result(res, tmp_path / "results")
    assert "Per-class recall" in md.read_text()
    # second run: pools are reused, not regenerated
    logs.clear()
    aug.aug_text(_cfg(root, tmp_path, fractions=[1.0], primary={"arm": "llm", "fraction": 1.0}),
                 quick=True, log=logs.append)
    assert sum("reused" in line for line in logs) == 3


def test_quick_flag_and_registered_suite(tmp_path, fakes):
    root = write_dair(tmp_path / "dair", n=12)
    s = get_suite("aug-text")
    assert s.modality == "text"
    res = s.run(_cfg(root, tmp_path, fractions=[1.0], primary={"arm": "eda", "fraction": 1.0}),
                quick=True)
    assert res["seeds"] == [0, 1]
    validate_result(res)


def test_config_problems(tmp_path, fakes):
    root = write_dair(tmp_path / "dair", n=6)
    with pytest.raises(ConfigError, match="unknown key"):
        aug.aug_text(_cfg(root, tmp_path, nope=1))
    with pytest.raises(ConfigError, match="'real' arm"):
        aug.aug_text(_cfg(root, tmp_path, arms={"eda": ["eda"]}))
    with pytest.raises(ConfigError, match="unknown generator"):
        aug.aug_text(_cfg(root, tmp_path, arms={"real": [], "x": ["nope"]}))
    with pytest.raises(ConfigError, match="real data only"):
        aug.aug_text(_cfg(root, tmp_path, arms={"real": ["eda"]}))
    with pytest.raises(ConfigError, match="not an arm"):
        aug.aug_text(_cfg(root, tmp_path, arms={"real": [], "x": {"baseline": "y"}}))
    with pytest.raises(ConfigError, match="unknown key"):
        aug.aug_text(_cfg(root, tmp_path, arms={"real": [], "x": {"weights": 1}}))
    with pytest.raises(ConfigError, match=r"filter: expected one of real, balanced"):
        aug.aug_text(_cfg(root, tmp_path, arms={"real": [], "x": {"filter": "strict"}}))
    with pytest.raises(ConfigError, match="fractions"):
        aug.aug_text(_cfg(root, tmp_path, fractions=[0.0]))


def test_stratified_subset_keeps_the_core_and_the_class_shares():
    y = np.array([0] * 100 + [1] * 20)
    core = np.array([0, 1, 100])
    sub = aug.stratified_subset(y, 0.1, core=core, seed=0)
    assert set(core) <= set(sub)
    assert np.sum(y[sub] == 0) == 10 and np.sum(y[sub] == 1) == 2
    assert len(aug.stratified_subset(y, 1.0, core=core, seed=3)) == 120
    other = aug.stratified_subset(y, 0.1, core=core, seed=1)
    assert not np.array_equal(sub, other)


def test_paired_tests_and_bootstrap():
    r = aug.paired_tests([0.5, 0.6, 0.55, 0.52, 0.58], [0.55, 0.66, 0.6, 0.58, 0.6])
    assert r["diff_mean"] > 0 and r["t_p"] < 0.05 and r["wilcoxon_p"] is not None
    same = aug.paired_tests([0.5, 0.5], [0.5, 0.5])
    assert same["t_p"] is None and same["wilcoxon_p"] is None
    y = np.array([0, 0, 1, 1, 2, 2] * 20)
    good, bad = y.copy(), np.zeros_like(y)
    b = aug.bootstrap_diff(y, [bad], [good], 3, n=200)
    assert b["ua_ci_low"] > 0.5 and b["accuracy_ci_high"] <= 1.0
    b0 = aug.bootstrap_diff(y, [good], [good], 3, n=50)
    assert b0["ua_ci_low"] == b0["ua_ci_high"] == 0.0


def test_committed_config_is_valid():
    cfg = load_config(config_path("aug-text"))
    assert cfg.suite == "aug-text" and cfg.data.corpus == "dair"
    p = aug.AugTextParams.of(cfg.model)
    assert p.fractions == [0.1, 0.25, 1.0] and len(cfg.train.seeds) >= 5
    assert {"real", "llm"} <= set(p.arms)
    assert p.arms["llm_bf"].filter == "balanced" and p.arms["llm"].filter == "real"
    # the large variant of the suite (run with --config) fits the same schema
    from emofuse.recipes import explain_suite_config

    assert explain_suite_config(config_path("aug-text")) == []
    large = load_config(Path(config_path("aug-text")).with_name("aug-text-large.yaml"))
    assert set(aug.AugTextParams.of(large.model).arms) >= {"real", "llm_bf"}


@pytest.mark.shared_data
def test_committed_suite_quick_on_real_dair(shared_data, tmp_path, fakes, monkeypatch):
    """The committed config on the real corpus (quick subset), LLM and encoder faked."""
    cfg = load_config(config_path("aug-text"))
    cfg.model.params = {**cfg.model.params, "pool_dir": str(tmp_path / "pools"),
                        "classifier": {"C": 5.0, "max_iter": 100}, "fractions": [1.0],
                        "primary": {"arm": "llm", "fraction": 1.0}, "bootstrap": 20}
    res = get_suite("aug-text").run(cfg, quick=True)
    validate_result(res)
    assert res["classes"] == ["happy", "sad", "angry", "fear", "surprise", "love"]
    assert set(res["generation"]) == {"llm_generate", "llm_paraphrase", "eda"}
