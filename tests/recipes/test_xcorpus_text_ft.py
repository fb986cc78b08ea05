"""xcorpus-text-ft on the tiny generated corpora of test_xcorpus_text (a hashed bag-of-words
stand-in for the frozen embeddings; the fine-tuned candidate runs the real MiniLM on a few
items, one epoch): the fine-tuned candidate in every selection, its path when chosen, the
held-out corpus never trained on, the fine-tunes cached, the typed parameters, the committed
config, and the committed suite's smoke run on the real corpora."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result
from emofuse.recipes import config_path, get_suite, load_suite_config
from emofuse.recipes import xcorpus_text as xt
from emofuse.recipes import xcorpus_text_ft as xft
from tests.recipes.test_xcorpus_text import _cfg as _base_cfg
from tests.recipes.test_xcorpus_text import _dair, _goemotions, _meld, spy_fits
from tests.recipes.test_xcorpus_text_transfer import _fake_embed

FT = {"max_train": 12, "epochs": 1, "batch_size": 8, "max_len": 16}


@pytest.fixture()
def corpora(tmp_path, monkeypatch):
    import emofuse.features.minilm as minilm
    import emofuse.features.text as text

    monkeypatch.setattr(text, "embed_texts", _fake_embed)
    monkeypatch.setattr(minilm, "embed_texts", _fake_embed)
    return {"dair": str(_dair(tmp_path / "dair")), "meld": str(_meld(tmp_path / "meld")),
            "goemotions": str(_goemotions(tmp_path / "go"))}


def _cfg(roots, **params):
    base = _base_cfg(roots, grid={"head": "lr", "class_balance": 1, "C": 1.0})
    model = base.model.model_copy(update={"name": "finetune", "params": {
        **base.model.params, "finetune": FT, **params}})
    return base.model_copy(update={"suite": "xcorpus-text-ft", "model": model})


def _spy(monkeypatch):
    """Records (corpora, classes) of every fine-tune actually trained."""
    from emofuse.models import text_finetune

    trained = []
    fit = text_finetune.FineTunedMiniLM.fit

    def spy(self, texts, y, labels):
        trained.append((len(texts), tuple(labels)))
        return fit(self, texts, y, labels)

    monkeypatch.setattr(text_finetune.FineTunedMiniLM, "fit", spy)
    return trained


@pytest.mark.slow
def test_suite_has_the_fine_tuned_candidate_and_reuses_its_fits(corpora, tmp_path,
                                                                 monkeypatch):
    monkeypatch.chdir(tmp_path)
    trained = _spy(monkeypatch)
    res = get_suite("xcorpus-text-ft").run(_cfg(corpora), log=None)
    validate_result(res)
    json.dumps(res)
    assert [c["test"] for c in res["cells"]] == ["dair", "meld", "goemotions"]
    for c in res["cells"]:
        sel = c["selection"]
        assert sel["candidates"] == ["lr cb1 corpus-none C1", "ft top2"]
        assert len(sel["dev_macro_f1"]) == len(sel["mean"]) == 2
        best = int(np.argmax(sel["mean"]))
        assert c["chosen_short"] == sel["candidates"][best]
        assert [f["left_out"] for f in sel["folds"]] == c["train"]
    assert res["joint"]["selection"]["candidates"][-1] == "ft top2"
    assert res["finetune"]["top_layers"] == 2 and res["finetune"]["max_train"] == 12
    assert "`ft top2`" in res["notes"] and "Joint model" in res["notes"]
    # one fine-tune per training corpus (inner folds) and per pair (cells, joint LOCO), and
    # one on all three when the joint model chose it
    joint_ft = res["joint"]["candidate_short"] == "ft top2"
    assert len(trained) == 6 + joint_ft
    n = len(trained)
    again = get_suite("xcorpus-text-ft").run(_cfg(corpora), log=None)
    assert len(trained) == n                       # every fine-tune and its scores cached
    assert again["metrics"]["macro_f1"] == res["metrics"]["macro_f1"]
    assert [c["selection"]["mean"] for c in again["cells"]] == \
        [c["selection"]["mean"] for c in res["cells"]]


@pytest.mark.slow
def test_fine_tuned_candidate_chosen_never_trains_on_the_held_out_corpus(corpora,
                                                                        monkeypatch):
    p = xft.FineTuneParams.of(_cfg(corpora).model)
    table, _ = xt.load_table(p.corpora, roots=corpora, log=None)
    ft = xft.FineTuneCandidate(p.finetune)
    fitted, scored = spy_fits(monkeypatch)
    cell = xt.run_cell(xt.TextContext(table), ["dair", "goemotions"], "meld", [ft])
    assert cell["chosen_short"] == "ft top2" and cell["chosen"]["head"] == "ft"
    assert cell["classes"] == ["neutral", "happy", "sad", "angry"]
    assert all("meld" not in f for f in fitted) and ("dair", "goemotions") in fitted
    assert [s for s in scored if s[0] == "meld"] == [("meld", "test")]
    assert cell["fit"]["train_items"] == 12 and cell["fit"]["corpora"] == ["dair", "goemotions"]
    assert 0 < cell["temperature"] and 0 <= cell["ece_ts"] <= 1
    assert sum(cell["confusion"][i][j] for i in range(4) for j in range(4)) == cell["n_test"]


def test_params_and_committed_config():
    with pytest.raises(ConfigError, match="finetune.top_layer"):
        xft.FineTuneParams.of({"finetune": {"top_layer": 2}})
    with pytest.raises(ConfigError, match="finetune.warmup"):
        xft.FineTuneParams.of({"finetune": {"warmup": 2}})
    cfg = load_suite_config(config_path("xcorpus-text-ft"))
    p = xft.FineTuneParams.of(cfg.model)
    # the recipe fixed before any figure (configs/xcorpus-text-ft.yaml)
    ft = xft.FineTuneCandidate(p.finetune)
    assert ft.recipe() == {"top_layers": 2, "epochs": 2, "batch_size": 32, "max_len": 64,
                           "lr_encoder": 5e-5, "lr_head": 1e-3, "weight_decay": 0.01,
                           "warmup": 0.1, "class_balance": 0.75, "max_train": 12000, "seed": 0}
    quick = xft.FineTuneCandidate(p.finetune, quick=True).recipe()
    assert quick["epochs"] == 1 and quick["max_train"] == p.finetune.quick_max_train
    # the frozen grid is xcorpus-text's
    base = load_suite_config(config_path("xcorpus-text"))
    assert xt.candidates(p.grid) == xt.candidates(xt.JointParams.of(base.model).grid)
    assert cfg.train.num_threads == 1


@pytest.mark.slow
def test_committed_suite_quick(shared_data, tmp_path, monkeypatch):
    cfg = load_suite_config(config_path("xcorpus-text-ft"))
    monkeypatch.chdir(tmp_path)
    res = get_suite("xcorpus-text-ft").run(cfg, quick=True, log=None)
    validate_result(res)
    assert [c["test"] for c in res["cells"]] == ["dair", "meld", "goemotions"]
    assert all(c["selection"]["candidates"][-1] == "ft top2" for c in res["cells"])
