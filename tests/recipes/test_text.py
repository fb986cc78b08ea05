"""Text recipe: suites on generated corpora (single-label, dialogue context, multi-label),
train/evaluate round trip, multi-label thresholds, and the committed suites' smoke runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config, parse_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result
from emofuse.recipes import get_suite
from emofuse.recipes.text import (evaluate, group_proba, load_task, multilabel_metrics,
                                  run_suite, train, tune_thresholds)

WORDS = {"joy": ["happy", "wonderful", "delighted", "great fun"],
         "sadness": ["sad", "lonely", "miserable", "in tears"],
         "anger": ["furious", "angry", "outraged", "so mad"]}


def _dair(root: Path, n: int = 8) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for split, k in (("train", n), ("val", 3), ("test", 3)):
        lines = []
        for label, words in WORDS.items():
            for i in range(k):
                w = words[rng.integers(len(words))]
                lines.append(f"i feel {w} about day {i} of {split};{label}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def _cfg(root: Path, systems: dict, *, corpus: str = "dair", features: dict | None = None,
         name: str = "best_dev", metric: str = "accuracy", seeds=(0, 1)) -> object:
    return parse_config({
        "suite": f"ter-test-{corpus}", "task": {"modality": "text"},
        "data": {"corpus": corpus, "root": str(root)}, "protocol": {"kind": "official"},
        "features": {"name": "text_clean", "params": features or {}},
        "model": {"name": name, "params": {"select_metric": metric, "systems": systems}},
        "train": {"max_epochs": 2, "batch_size": 8, "lr": 1e-3, "seeds": list(seeds),
                  "num_threads": 1, "class_weighted": True}})


MLP = {"model": "minilm_mlp", "params": {"hidden": 16, "epochs": 3, "patience": 2}}


def test_single_label_suite_on_a_generated_corpus(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(_dair(tmp_path / "dair"), {
        "tfidf": {"model": "tfidf_lr", "params": {"C": [1.0, 10.0], "min_df": 1}},
        "mlp": MLP,
        "mlp_filtered": {**MLP, "features": {"filter_unemotional": True}},
        "nrc": {"model": "lexicon_rule"},
        "ens": {"model": "ensemble", "params": {"members": ["tfidf", "mlp"]}}})
    res = run_suite(cfg)
    validate_result(res)
    assert res["classes"] == ["happy", "sad", "angry"]
    assert res["primary_system"] in res["dev_scores"]
    m = res["metrics"]
    assert len(m["accuracy_mlp"]["per_fold"]) == 2           # one entry per seed
    assert len(m["accuracy_tfidf"]["per_fold"]) == 1         # deterministic: one run
    assert m["accuracy_tfidf"]["mean"] > 0.6
    assert res["timing"]["tfidf"]["runs"][0]["chosen"]["C"] in (1.0, 10.0)
    assert "weights" in res["timing"]["ens"]["runs"][0]
    assert (tmp_path / "benchmarks/results" / res["confusion_png"]).is_file()
    assert res["timing"]["mlp_filtered"]["runs"][0]["train_items"] <= 24
    json.dumps(res)


def test_config_problems_are_clear(tmp_path):
    root = _dair(tmp_path / "dair")
    with pytest.raises(ConfigError, match=r"systems\.x\.model: expected one of .*'bert_large'"):
        run_suite(_cfg(root, {"x": {"model": "bert_large"}}))
    with pytest.raises(ConfigError, match="features.params.lowercase: unknown key"):
        run_suite(_cfg(root, {"t": {"model": "tfidf_lr"}}, features={"lowercase": True}))
    with pytest.raises(ConfigError, match=r"systems\.t\.params\.C: expected a number > 0"):
        run_suite(_cfg(root, {"t": {"model": "tfidf_lr", "params": {"C": [1, 0]}}}))
    with pytest.raises(ConfigError, match="ensemble"):
        run_suite(_cfg(root, {"t": {"model": "tfidf_lr"},
                              "e": {"model": "ensemble", "params": {"members": ["t", "z"]}}}))
    with pytest.raises(ConfigError, match="'bert' is not a text model"):
        run_suite(_cfg(root, {}, name="bert"))
    bad = _cfg(root, {"t": {"model": "tfidf_lr"}})
    bad.features.name = "mfcc"
    with pytest.raises(ConfigError, match="text_clean"):
        load_task(bad)
    bad.features.name = "text_clean"
    bad.protocol.kind = "speaker_kfold"
    with pytest.raises(ConfigError, match="official"):
        load_task(bad)


def _meld(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    head = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,"
            "Episode,StartTime,EndTime")
    emos = {"joy": "that is wonderful news", "sadness": "I miss her so much",
            "neutral": "the meeting is at noon", "anger": "stop lying to me"}
    for split, n_dia in (("train", 6), ("dev", 2), ("test", 2)):
        rows, sr = [head], 1
        for d in range(n_dia):
            for u, (emo, text) in enumerate(emos.items()):
                rows.append(f'{sr},"{text} {d}",{"Ross" if u % 2 else "Monica"},{emo},'
                            f'neutral,{d},{u},1,1,"0:0:1,0","0:0:2,0"')
                sr += 1
        (root / f"{split}_sent_emo.csv").write_text("\n".join(rows) + "\n")
    return root


def test_one_system_named_by_the_model(tmp_path, monkeypatch):
    """Without systems, model.name is the one system, with its model's default parameters."""
    monkeypatch.chdir(tmp_path)
    res = run_suite(_cfg(_dair(tmp_path / "dair"), {}, name="tfidf_lr"))
    assert res["primary_system"] == "tfidf_lr" and set(res["dev_scores"]) == {"tfidf_lr"}


def test_dialogue_context_suite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(_meld(tmp_path / "meld"), {
        "mlp": MLP, "mlp_ctx": {**MLP, "features": {"context_turns": 2}},
        "ft_ctx": {"model": "minilm_finetune", "seeds": [0], "features": {"context_turns": 2},
                   "params": {"epochs": 1, "max_len": 48, "train_layers": 1}}},
        corpus="meld", name="mlp", metric="weighted_f1", seeds=[0])
    res = run_suite(cfg)
    assert res["primary_system"] == "mlp"
    assert {"weighted_f1_mlp_ctx", "weighted_f1_ft_ctx"} <= set(res["metrics"])
    assert res["corpus"] == "meld" and len(res["classes"]) == 4


def _goemotions(root: Path) -> Path:
    from emofuse.labels import GOEMOTIONS_28

    folder = root / "original"
    folder.mkdir(parents=True)
    (folder / "labels.txt").write_text("\n".join(GOEMOTIONS_28) + "\n")
    idx = {n: i for i, n in enumerate(GOEMOTIONS_28)}
    rows = [("thanks so much, I am grateful", ["gratitude"]),
            ("haha that is hilarious", ["amusement"]),
            ("this is so sad, I am sorry", ["sadness", "remorse"]),
            ("ok whatever, it is fine", ["neutral"]),
            ("wow, I did not expect that!", ["surprise"])]
    for split, n in (("train", 6), ("dev", 3), ("test", 3)):
        lines = [f"{t} {k}\t{','.join(str(idx[x]) for x in labs)}\t{split}{k}{j}"
                 for k in range(n) for j, (t, labs) in enumerate(rows)]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_multilabel_suite_with_ekman_grouping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(_goemotions(tmp_path / "go"), {
        "tfidf": {"model": "tfidf_lr", "params": {"C": 10.0, "min_df": 1}},
        "nrc_lr": {"model": "lexicon_lr"}}, corpus="goemotions", metric="macro_f1")
    res = run_suite(cfg)
    validate_result(res)
    assert len(res["classes"]) == 6                      # labels present in the corpus
    m = res["metrics"]
    assert {"macro_f1", "micro_f1", "ekman_macro_f1", "macro_f1_tfidf"} <= set(m)
    assert m["macro_f1_tfidf"]["mean"] > 0.8
    assert set(res["thresholds"]) == set(res["classes"])
    assert len(res["confusion"]) == len(res["classes"])


def test_tune_thresholds_and_metrics():
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    P = np.array([[0.3, 0.1], [0.25, 0.2], [0.1, 0.6], [0.05, 0.5]])
    th = tune_thresholds(Y, P)
    assert th[0] <= 0.25 and 0.5 < th[1] <= 0.6
    m = multilabel_metrics(Y, P >= th, ["a", "b"])
    assert m["macro_f1"] == 1.0 and m["exact_match"] == 1.0
    g = group_proba(np.array([[0.1, 0.7, 0.2]]), ["anger", "joy", "love"])
    assert g[0, 3] == 0.7 and g[0, 0] == 0.1              # happy = max(joy, love)


def test_train_export_and_evaluate_round_trip(tmp_path):
    from emofuse.corpora import load_corpus
    from emofuse.inference.text import TextPredictor

    root = _dair(tmp_path / "dair")
    mlp = {"model": "minilm_mlp",
           "params": {"hidden": 32, "epochs": 40, "patience": 40, "lr": 0.01}}
    cfg = _cfg(root, {"mlp": mlp}, name="mlp")
    out = train(cfg, out_dir=tmp_path / "model")
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "text" and card["labels"] == ["happy", "sad", "angry"]
    assert "dev_accuracy" in card["metrics"]
    scan = load_corpus("dair", root)
    res = evaluate(out, scan.records, corpus="dair")
    assert res["items"] == 9 and res["metrics"]["accuracy"]["mean"] > 0.5
    pred = TextPredictor.load(out).analyse(["i feel so happy and wonderful"])
    assert pred[0].label == "happy"
    with pytest.raises(ConfigError, match="export"):
        train(_cfg(root, {"t": {"model": "tfidf_lr"}}, name="t"), out_dir=tmp_path / "x")


def test_committed_configs_match_the_typed_schemas(tmp_path):
    """Every committed text config validates against its suite's schemas; a wrong parameter
    is reported with its YAML line; the schema's defaults are the recipe's."""
    import yaml

    from emofuse.paths import repo_root
    from emofuse.recipes import config_path, explain_suite_config
    from emofuse.recipes.text_params import MLPParams, TextFeatureParams, TextSuiteParams

    paths = [config_path(n) for n in ("ter-dair", "ter-meld", "ter-goemotions")]
    for path in [*paths, repo_root() / "configs/models/text-v1.yaml"]:
        assert explain_suite_config(path) == [], path
        typed = TextSuiteParams.of(load_config(path).model)
        assert typed.systems and typed.export in typed.systems
    data = yaml.safe_load(paths[0].read_text())
    data["model"]["params"]["systems"]["frozen"]["params"]["dropout"] = 1.5
    data["features"]["params"]["emoji"] = "word"
    data["model"]["params"]["systems"]["frozen_filtered"]["params"]["hiden"] = 8
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = explain_suite_config(bad)
    assert len(problems) == 3, problems
    assert any(p.startswith("model.params.systems.frozen_filtered.params.hiden (line ")
               and "did you mean 'hidden'? minilm_mlp takes: " in p for p in problems)
    assert any(p.startswith("features.params.emoji (line ") and "did you mean 'words'" in p
               for p in problems)
    assert any(p.startswith("model.params.systems.frozen.params.dropout (line ")
               for p in problems)
    assert TextFeatureParams().model_dump() == {
        "urls": True, "mentions": True, "markup": True, "emoji": "words",
        "filter_unemotional": False, "context_turns": 0, "context_speakers": True,
        "vader_threshold": 0.3}
    grid = MLPParams.of({"hidden": [16, 32], "dropout": 0.1, "lr": 2})
    assert [p.given() for p in grid.points()] == [{"hidden": 16, "dropout": 0.1, "lr": 2},
                                                  {"hidden": 32, "dropout": 0.1, "lr": 2}]
    assert grid.model_kwargs(lr=1.0, weight_decay=0.5) == {
        "hidden": [16, 32], "dropout": 0.1, "lr": 2, "weight_decay": 0.5}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ter-dair", "ter-meld", "ter-goemotions"])
def test_committed_suites_quick(name, shared_data, tmp_path, monkeypatch):
    from emofuse.recipes import config_path

    cfg = load_config(config_path(name))
    monkeypatch.chdir(tmp_path)
    res = get_suite(name).run(cfg, quick=True)
    validate_result(res)
    assert res["suite"] == name and res["metrics"]["train_s"]["mean"] >= 0
    from emofuse.recipes.text_params import TextSuiteParams

    assert set(res["dev_scores"]) == set(TextSuiteParams.of(cfg.model).systems)
