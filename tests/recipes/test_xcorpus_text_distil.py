"""xcorpus-text-distil on the tiny generated corpora of test_xcorpus_text (hashed bag-of-words
for MiniLM, word-seeded random vectors for SmolLM2's states): soft labels fitted exactly as
weighted rows, the teacher refitted wherever the student is and never on the held-out corpus,
the model folder that runs without the language model, the committed configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result
from emofuse.recipes import config_path, get_modality, get_suite, load_suite_config
from emofuse.recipes import xcorpus_text as xt
from emofuse.recipes import xcorpus_text_distil as xtd
from tests.recipes.test_xcorpus_text_transfer import _cfg as _transfer_cfg
from tests.recipes.test_xcorpus_text_transfer import _fake_embed, corpora  # noqa: F401

TEACHER = {"features": {"name": "minilm+last-1", "llm": ["last-1"]},
           "head": {"head": "lr", "class_balance": 0.75, "C": 1.0}}


def _fake_states(tab, settings, log=None, parts=None):
    st = np.stack([_fake_embed([t])[0, :8] for t in tab.texts]).astype(np.float32)
    if parts is not None:
        st[~np.isin(tab.part, list(parts))] = np.nan
    k = len(settings.layers)
    return {"layers": list(settings.layers), "mean": np.tile(st, k), "last": np.tile(-st, k)}


def _cfg(roots, **params):
    base = _transfer_cfg(roots, sets=[{"name": "minilm"},
                                      {"name": "minilm+proto", "prototypes": "meanmax"}])
    p = {**base.model.params, "teacher": TEACHER, "alpha": [0, 1], "joint": True,
         "llm": {"layers": [6, -1]}, **params}
    return base.model_copy(update={"suite": "xcorpus-text-distil",
                                   "model": base.model.model_copy(
                                       update={"name": "distil", "params": p})})


def test_soft_rows_are_the_soft_cross_entropy():
    rng = np.random.default_rng(0)
    n, k = 6, 4
    y = rng.integers(0, k, n)
    w = rng.uniform(0.5, 2.0, n)
    q = rng.dirichlet(np.ones(k), n)
    z = rng.normal(size=(n, k))
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    for alpha in (0.0, 0.3, 1.0):
        t = alpha * q + (1 - alpha) * np.eye(k)[y]
        want = -(w[:, None] * t * logp).sum()
        r, c, wr = xtd.soft_rows(y, w, q, alpha, min_target=0.0)
        assert np.isclose(-(wr * logp[r, c]).sum(), want)
    r, c, wr = xtd.soft_rows(y, w, None, 0.5)          # no teacher: the rows as they are
    assert r.tolist() == list(range(n)) and c.tolist() == y.tolist()
    r, _, _ = xtd.soft_rows(y, w, np.eye(k)[(y + 1) % k], 1.0)   # zero targets dropped
    assert len(r) == n


def test_params_and_committed_configs():
    with pytest.raises(ConfigError, match="read the language model"):
        xtd.DistilParams.of({"teacher": TEACHER,
                             "feature_sets": [{"name": "s", "llm": ["last-1"]}]})
    with pytest.raises(ConfigError, match="one candidate"):
        xtd.DistilParams.of({"teacher": {**TEACHER, "head": {"head": "lr", "C": [1, 2]}}})
    with pytest.raises(ConfigError, match="not among llm.layers"):
        xtd.DistilParams.of({"teacher": {"features": {"name": "t", "llm": ["last7"]}}})
    with pytest.raises(ConfigError):
        xtd.DistilParams.of({"teacher": TEACHER, "alpha": [1.5]})
    for cfg in (load_suite_config(config_path("xcorpus-text-distil")),
                load_suite_config("configs/models/text.yaml")):
        p = xtd.DistilParams.of(cfg.model)
        assert p.teacher.features.llm == ["last-1"] and 0 in p.alpha
        assert not any(fs.llm for fs in p.feature_sets)
        assert p.joint_keep is not None and p.joint_keep.corpus == "meld"


def test_teacher_is_refitted_and_never_sees_the_held_out_corpus(corpora, tmp_path,  # noqa: F811
                                                              monkeypatch):
    monkeypatch.setattr(xtd, "llm_states", _fake_states)
    monkeypatch.chdir(tmp_path)
    suite = get_suite("xcorpus-text-distil")(_cfg(corpora), log=None)
    table, _, ctxs, cands = suite.tables()
    assert set(cands) == {"minilm", "minilm+proto"}
    assert [c.alpha for c in cands["minilm"]] == [0.0, 0.0, 1.0, 1.0]
    teacher_x = cands["minilm"][-1].teacher_ctx.table.x
    assert np.isnan(teacher_x[table.part != "train"]).any()     # states of train rows only
    assert np.isfinite(teacher_x[table.part == "train"]).all()
    fitted = []
    fit_on = xtd.fit_on

    def spy(ctx, corpora_, classes, cand, **kw):
        fitted.append(tuple(corpora_))
        return fit_on(ctx, corpora_, classes, cand, **kw)

    monkeypatch.setattr(xtd, "fit_on", spy)
    cell = xt.run_cell(ctxs["minilm"], ["dair", "goemotions"], "meld", cands["minilm"])
    assert fitted and all("meld" not in f for f in fitted)      # teacher fits of the cell
    assert cell["fit"]["train_items"] == len(table.rows(["dair", "goemotions"], "train",
                                                        cell["classes"]))
    student = cands["minilm"][-1]
    head = student.fit_on(ctxs["minilm"], ["dair", "meld"], ["happy", "sad", "angry"])
    info = head["info"]
    assert info["alpha"] == 1.0 and info["expanded_rows"] >= info["train_items"]
    assert 0 <= info["teacher"]["train_agreement"] <= 1
    assert student.head == "lr" and student.to_dict()["teacher"]["features"] == "minilm+last-1"
    broken = xtd.DistilCandidate(student.base, 1.0, student.teacher,
                                 dataclasses_replace_x(student.teacher_ctx, np.nan), "t")
    with pytest.raises(ConfigError, match="not computed"):
        broken.fit_on(ctxs["minilm"], ["dair", "meld"], ["happy", "sad", "angry"])


def dataclasses_replace_x(ctx, value):
    import dataclasses

    return dataclasses.replace(ctx, table=dataclasses.replace(
        ctx.table, x=np.full_like(ctx.table.x, value)))


def test_suite_and_model_folder_without_the_language_model(corpora, tmp_path,  # noqa: F811
                                                          monkeypatch):
    import emofuse.inference.text as itext
    from emofuse.inference.text import TextPredictor

    monkeypatch.setattr(xtd, "llm_states", _fake_states)
    monkeypatch.chdir(tmp_path)
    res = get_suite("xcorpus-text-distil").run(
        _cfg(corpora, joint_keep={"corpus": "meld", "min": 0.0}))
    validate_result(res)
    json.dumps(res)
    joint = res["joint"]
    assert len(joint["selection"]["candidates"]) == 2 * 2 * 2     # sets x alpha x heads
    assert all(" a0" in c or " a1" in c for c in joint["selection"]["candidates"])
    assert "Distillation" in res["notes"] and res["teacher"]["features"]["llm"] == ["last-1"]
    assert {"test_dair", "test_meld", "test_goemotions"} <= set(joint["figures"])

    def no_llm():
        raise AssertionError("the student must not load the language model")

    monkeypatch.setattr(itext, "_smollm2", no_llm)
    cfg = _cfg(corpora, joint_keep={"corpus": "meld", "min": 0.0})
    out = get_modality("text").train(cfg, out_dir=tmp_path / "v4")
    card = json.loads((out / "card.json").read_text())
    assert card["features"]["inputs"]["llm"] is None
    assert card["distillation"]["teacher"]["features"] == "minilm+last-1"
    assert card["distillation"]["alpha"] in (0.0, 1.0)
    pred = TextPredictor.load(out)
    texts = ["i feel so happy today", "this is awful and sad"]
    got = pred._inputs(texts, _fake_embed(texts)) if card["features"]["inputs"] else None
    assert got is None or got.shape[1] == card["model"]["params"]["in_dim"]


def test_onnx_export_takes_the_embedding_and_adds_the_prototypes(corpora, tmp_path,  # noqa: F811
                                                               monkeypatch):
    """A head over MiniLM + prototype similarities exports with the similarities computed
    inside: the ONNX file takes the embedding, as the MiniLM-only head's did, and gives the
    product predictor's logits."""
    import onnxruntime as ort

    import emofuse.features.text as ftext
    from emofuse.export import export_models
    from emofuse.inference.text import TextPredictor

    monkeypatch.setattr(xtd, "llm_states", _fake_states)
    monkeypatch.setattr(ftext, "minilm", lambda texts, max_len=128: _fake_embed(texts))
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(corpora, joint_keep={"corpus": "meld", "min": 0.0}, alpha=[1],
               feature_sets=[{"name": "minilm+proto", "prototypes": "meanmax"}])
    out = get_modality("text").train(cfg, out_dir=tmp_path / "v4")
    report = {r.modality: r for r in export_models(out, tmp_path / "onnx")}["text"]
    assert report.ok and report.details["input_shape"] == [2, 32]     # the embedding's width
    texts = ["i feel so happy today", "this is awful and sad", "what a surprise"]
    emb = _fake_embed(texts)
    z = ort.InferenceSession(str(report.path)).run(None, {"input": emb})[0]
    pred = TextPredictor.load(out)
    assert np.allclose(z, pred.head.logits(pred._inputs(texts, emb)), atol=1e-4)
