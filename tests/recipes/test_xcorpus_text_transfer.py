"""xcorpus-text-transfer on the tiny generated corpora of test_xcorpus_text, with a hashed
bag-of-words stand-in for MiniLM (no encoder loaded): feature sets chosen by nested LOCO with
the head, the held-out corpus never choosing, the typed parameters, the committed config."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from emofuse.errors import ConfigError, DataError
from emofuse.evaluate.results import validate_result
from emofuse.features import text_prototypes
from emofuse.recipes import config_path, get_suite, load_suite_config
from emofuse.recipes import xcorpus_text as xt
from emofuse.recipes import xcorpus_text_transfer as xtt
from tests.recipes.test_xcorpus_text import _cfg as _base_cfg
from tests.recipes.test_xcorpus_text import _dair, _goemotions, _meld

SETS = [{"name": "minilm"},
        {"name": "proto", "minilm": False, "prototypes": "meanmax",
         "grid": {"head": "lr", "class_balance": 1, "C": [0.1, 10.0]}},
        {"name": "both", "prototypes": "all"}]


def _fake_embed(texts, **_):
    out = np.zeros((len(texts), 32), np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace("!", " ").replace(".", " ").split():
            out[i] += np.random.default_rng(zlib.crc32(w.encode())).normal(size=32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


@pytest.fixture()
def corpora(tmp_path, monkeypatch):
    import emofuse.features.minilm as minilm
    import emofuse.features.text as text

    monkeypatch.setattr(text, "embed_texts", _fake_embed)
    monkeypatch.setattr(minilm, "embed_texts", _fake_embed)
    text_prototypes._matrix.cache_clear()
    yield {"dair": str(_dair(tmp_path / "dair")), "meld": str(_meld(tmp_path / "meld")),
           "goemotions": str(_goemotions(tmp_path / "go"))}
    text_prototypes._matrix.cache_clear()


def _cfg(roots, sets=SETS):
    """test_xcorpus_text's config of the generated corpora, as this suite's."""
    base = _base_cfg(roots, grid={"head": "lr", "class_balance": [0, 1], "C": 1.0})
    model = base.model.model_copy(update={"name": "transfer", "params": {
        **base.model.params, "feature_sets": sets}})
    return base.model_copy(update={"suite": "xcorpus-text-transfer", "model": model})


def test_suite_chooses_features_with_the_head(corpora, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = get_suite("xcorpus-text-transfer").run(_cfg(corpora))
    validate_result(res)
    json.dumps(res)
    assert [c["test"] for c in res["cells"]] == ["dair", "meld", "goemotions"]
    for c in res["cells"]:
        sel = c["selection"]
        # 2 minilm + 2 proto + 2 both candidates, named "set: head"
        assert len(sel["candidates"]) == len(sel["dev_macro_f1"]) == len(sel["mean"]) == 6
        assert sel["candidates"][2] == "proto: lr cb1 corpus-none C0.1"
        best = int(np.argmax(sel["mean"]))       # the first best wins
        assert c["chosen_short"] == sel["candidates"][best]
        assert sel["chosen_mean"] == sel["mean"][best]
        assert c["chosen"]["features"] == c["features"] == c["chosen_short"].split(": ")[0]
        assert [f["left_out"] for f in sel["folds"]] == c["train"]
    assert [s["name"] for s in res["feature_sets"]] == ["minilm", "proto", "both"]
    assert "Feature sets" in res["notes"] and "Joint model" not in res["notes"]
    quick = get_suite("xcorpus-text-transfer").run(_cfg(corpora), quick=True)
    assert len(quick["feature_sets"]) == 2


def test_the_held_out_corpus_never_chooses(corpora):
    cfg = _cfg(corpora)
    p = xtt.check(cfg)
    table, _ = xt.load_table(p.corpora, roots=corpora, log=None)
    cands = {fs.name: xtt._set_candidates(fs, xt.candidates(p.grid), quick=False)
             for fs in p.feature_sets}

    def choose(t):
        ctxs = {n: xt.TextContext(v, cache=False) for n, v in
                xtt.feature_tables(t, p.feature_sets, labels=p.labels).items()}
        return xtt.select_features(ctxs, cands, ["dair", "goemotions"],
                                   ["neutral", "happy", "sad", "angry"])

    name, cand, summary = choose(table)
    m = table.corpus == "meld"
    table.labels[m] = np.random.default_rng(0).permutation(table.labels[m])
    table.x[m] = table.x[m][::-1]
    again = choose(table)
    assert again[:2] == (name, cand) and again[2]["mean"] == summary["mean"]


def test_params_and_committed_config(monkeypatch):
    with pytest.raises(ConfigError, match="repeat"):
        xtt.TransferParams.of({"feature_sets": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ConfigError, match="without any input"):
        xtt.TransferParams.of({"feature_sets": [{"name": "a", "minilm": False}]})
    with pytest.raises(ConfigError):
        xtt.TransferParams.of({"feature_sets": [{"name": "a", "prototypes": "median"}]})
    assert not xtt.TransferParams.of({}).joint and xtt.TransferParams.of({"joint": True}).joint
    p = xtt.check(load_suite_config(config_path("xcorpus-text-transfer")))
    assert p.feature_sets[0].name == "minilm" and len(p.feature_sets) >= 2
    n = sum(len(text_prototypes.PROTOTYPES[c]) for c in p.labels)
    protos = np.random.default_rng(0).normal(size=(n, 384)).astype(np.float32)
    monkeypatch.setattr(text_prototypes, "_matrix", lambda labels: protos)   # no encoder
    x = np.eye(3, 384, dtype=np.float32)
    fs = xtt.FeatureSet(name="p", minilm=False, prototypes="meanmax")
    assert xtt.feature_matrix(x, fs, labels=p.labels).shape == (3, 2 * len(p.labels))
    both = fs.model_copy(update={"minilm": True, "prototypes": "all"})
    assert xtt.feature_matrix(x, both, labels=p.labels).shape == (3, 384 + n)


def test_llm_states_params_and_train_cap(corpora, tmp_path, monkeypatch):
    """xcorpus-text-llm: states named by layer, checked against llm.layers; the train cap
    keeps a stratified sample of each train split and every other row, in order."""
    with pytest.raises(ConfigError, match="last<layer>"):
        xtt.TransferParams.of({"feature_sets": [{"name": "a", "llm": ["first3"]}]})
    with pytest.raises(ConfigError, match="not among llm.layers"):
        xtt.TransferParams.of({"feature_sets": [{"name": "a", "llm": ["last7"]}],
                               "llm": {"layers": [6, -1]}})
    only = xtt.TransferParams.of({"feature_sets": [{"name": "a", "minilm": False,
                                                    "llm": ["mean-1"]}]})
    assert only.feature_sets[0].llm == ["mean-1"] and only.train_cap is None
    table, _ = xt.load_table(["dair", "meld", "goemotions"], roots=corpora, log=None)
    n_train = {c: len(table.rows([c], "train")) for c in ("dair", "meld", "goemotions")}
    cap = min(n_train.values()) // 2
    small = xtt.cap_train(table, cap)
    for c, n in n_train.items():
        assert len(small.rows([c], "train")) == min(n, cap)
        for part in ("val", "test"):
            assert len(small.rows([c], part)) == len(table.rows([c], part))
    rest = iter(zip(table.texts, table.part))                               # order kept:
    assert all(row in rest for row in zip(small.texts, small.part))         # a subsequence
    assert xtt.cap_train(table, cap).texts == small.texts                   # seeded
    # feature_matrix appends the named layer's block
    llm = {"layers": [6, -1], "mean": np.arange(12.0).reshape(3, 4), "last": -np.ones((3, 4))}
    fs = xtt.FeatureSet(name="s", llm=["mean-1", "last6"])
    x = np.zeros((3, 5), np.float32)
    m = xtt.feature_matrix(x, fs, labels=["happy"], llm=llm)
    assert m.shape == (3, 5 + 2 + 2) and m[1, 5:7].tolist() == [6.0, 7.0]
    assert m[:, 7:].tolist() == [[-1.0, -1.0]] * 3
    with pytest.raises(ConfigError, match="needs the LLM states"):
        xtt.feature_matrix(x, fs, labels=["happy"])

    # the suite end to end, the language model replaced by word-seeded random states
    def fake_states(tab, settings, log=None):
        st = np.stack([_fake_embed([t])[0, :8] for t in tab.texts]).astype(np.float32)
        k = len(settings.layers)
        return {"layers": list(settings.layers), "mean": np.tile(st, k), "last": np.tile(-st, k)}

    monkeypatch.setattr(xtt, "llm_states", fake_states)
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(corpora, sets=[{"name": "minilm"}, {"name": "minilm+last-1", "llm": ["last-1"]}])
    cfg = cfg.model_copy(update={"suite": "xcorpus-text-llm", "model": cfg.model.model_copy(
        update={"params": {**cfg.model.params, "train_cap": cap, "joint": True,
                           "targets": {"meld_weighted_f1": 0.5}}})})
    res = get_suite("xcorpus-text-llm").run(cfg)
    validate_result(res)
    json.dumps(res)
    joint = res["joint"]                      # feature set and head chosen by LOCO over all
    sel = joint["selection"]
    assert [f["left_out"] for f in sel["folds"]] == ["dair", "meld", "goemotions"]
    assert len(sel["candidates"]) == 4 and joint["features"] in ("minilm", "minilm+last-1")
    assert joint["chosen_short"] == sel["candidates"][int(np.argmax(sel["mean"]))]
    assert {"test_dair", "test_meld", "test_goemotions"} <= set(joint["figures"])
    assert "joint_meld_test_weighted_f1" in res["status"]
    assert f"**{joint['chosen_short']}**" in res["notes"]
    assert res["train_used"] == {c: min(n, cap) for c, n in n_train.items()}
    assert "Training rows" in res["notes"] and "SmolLM2" in res["notes"]
    assert res["llm"]["layers"] == [6, 12, 18, 24, -1]
    assert all(c["features"] in ("minilm", "minilm+last-1") for c in res["cells"])


def test_joint_keep_rule_uncapped_corpus_and_own_grid(corpora, tmp_path, monkeypatch):
    """joint_keep: only candidates whose in-corpus dev figure of the kept corpus reaches the
    minimum compete (none eligible: the best such figure); joint_uncapped: that corpus' whole
    train split for the joint model only; joint_grid replaces every set's grid there."""
    with pytest.raises(ConfigError, match="not in corpora"):
        xtt.TransferParams.of({"joint_uncapped": ["iemocap"]})
    with pytest.raises(ConfigError):
        xtt.TransferParams.of({"joint_keep": {"corpus": "meld", "min": 1.5}})
    table, _ = xt.load_table(["dair", "meld", "goemotions"], roots=corpora, log=None)
    n_train = {c: len(table.rows([c], "train")) for c in ("dair", "meld", "goemotions")}
    cap = min(n_train.values()) // 2
    part = xtt.cap_train(table, cap, exempt=["meld"])
    assert len(part.rows(["meld"], "train")) == n_train["meld"]
    assert len(part.rows(["dair"], "train")) == cap
    monkeypatch.chdir(tmp_path)

    def run(keep):
        cfg = _cfg(corpora, sets=[{"name": "minilm"}])
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": {
            **cfg.model.params, "train_cap": cap, "joint": True, "joint_uncapped": ["meld"],
            "joint_grid": {"head": "lr", "class_balance": [0, 0.5, 1], "C": 1.0},
            "joint_keep": keep}})})
        return get_suite("xcorpus-text-transfer").run(cfg)

    res = run({"corpus": "meld", "metric": "weighted_f1", "min": 0.0})
    validate_result(res)
    joint, cells = res["joint"], res["cells"]
    sel = joint["selection"]
    assert len(sel["candidates"]) == 3 and all(sel["keep"]["eligible"])
    # everything eligible: the LOCO rule's own choice
    assert joint["chosen_short"] == sel["candidates"][int(np.argmax(sel["mean"]))]
    assert joint["train_used"]["meld"] == n_train["meld"]
    assert joint["train_used"]["dair"] == cap == res["train_used"]["dair"]
    assert res["train_used"]["meld"] == min(cap, n_train["meld"])   # LOCO cells stay capped
    assert "Keep rule" in res["notes"]
    none = run({"corpus": "meld", "metric": "weighted_f1", "min": 1.0})["joint"]
    keep = none["selection"]["keep"]
    assert not keep["any_eligible"]
    assert none["chosen_short"] == none["selection"]["candidates"][int(np.argmax(keep["dev"]))]
    assert [c["chosen_short"] for c in run({"corpus": "meld", "min": 1.0})["cells"]] == \
        [c["chosen_short"] for c in cells]                     # the cells are untouched


def test_transfer_model_folder_and_its_inputs_at_inference(corpora, tmp_path, monkeypatch):
    """emofuse train on an xcorpus-text-llm config saves the joint model with the inputs of
    its feature set in the card (features.inputs); TextPredictor rebuilds them (MiniLM,
    prototypes, SmolLM2 states) as the recipe did in training."""
    import emofuse.features.llm_text as llm_text
    import emofuse.inference.text as itext
    from emofuse.inference.text import TextPredictor
    from emofuse.recipes import get_modality

    def states_of(texts, k):
        st = np.stack([_fake_embed([t])[0, :8] for t in texts]).astype(np.float32)
        return np.tile(st, k), np.tile(-st, k)

    def fake_states(tab, settings, log=None):
        mean, last = states_of(tab.texts, len(settings.layers))
        return {"layers": list(settings.layers), "mean": mean, "last": last}

    def fake_forward(texts, *, tokenizer, model, labels, prompt, max_len, batch_size, layers):
        mean, last = states_of(texts, len(layers))
        return np.concatenate([mean, last, np.zeros((len(texts), len(labels)))], 1)

    monkeypatch.setattr(xtt, "llm_states", fake_states)
    monkeypatch.setattr(llm_text, "llm_forward", fake_forward)
    monkeypatch.setattr(itext, "_smollm2", lambda: (None, None))
    monkeypatch.chdir(tmp_path)
    sets = [{"name": "proto+last-1", "prototypes": "meanmax", "llm": ["last-1"]}]
    cfg = _cfg(corpora, sets=sets)
    cfg = cfg.model_copy(update={"suite": "xcorpus-text-llm", "model": cfg.model.model_copy(
        update={"params": {**cfg.model.params, "joint_keep": {"corpus": "meld", "min": 0.0},
                           "llm": {"layers": [6, -1]}}})})
    out = get_modality("text").train(cfg, out_dir=tmp_path / "v3")
    card = json.loads((out / "card.json").read_text())
    inputs = card["features"]["inputs"]
    assert inputs["set"] == "proto+last-1" and inputs["llm"]["states"] == ["last-1"]
    assert inputs["prototypes"]["pooling"] == "meanmax"
    assert card["protocol"]["keep"]["corpus"] == "meld"
    n_labels = len(inputs["prototypes"]["labels"])
    assert card["model"]["params"]["in_dim"] == 32 + 2 * n_labels + 8
    pred = TextPredictor.load(out)
    texts = ["i feel so happy today", "this is awful and sad"]
    emb = _fake_embed(texts)
    fs = xtt.FeatureSet(**sets[0])
    mean, last = states_of(texts, 2)
    want = xtt.feature_matrix(emb, fs, labels=inputs["prototypes"]["labels"],
                              llm={"layers": [6, -1], "mean": mean, "last": last})
    got = pred._inputs(texts, emb)
    assert got.shape == want.shape and np.allclose(got, want, atol=1e-2)
    broken = dict(card["features"], inputs={**inputs, "llm": None})
    pred.features = broken
    with pytest.raises(DataError, match="head takes") as err:
        pred._inputs(texts, emb)
    assert str(out) in str(err.value)                  # the model folder is named
