"""Cross-corpus text suite (``xcorpus-text``) and the joint text model on tiny generated
dair-ai, MELD and GoEmotions corpora: cells, shared labels, dropped classes, nested selection
that never touches the held-out corpus, calibration, the model folder without torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emofuse.config import load_config, parse_config
from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result
from emofuse.recipes import get_suite
from emofuse.recipes import xcorpus_text as xt
from emofuse.recipes.xcorpus_text_joint import train_joint

WORDS = {"happy": ["so happy", "wonderful", "delighted", "great fun"],
         "sad": ["so sad", "lonely", "miserable", "in tears"],
         "angry": ["furious", "angry", "outraged", "so mad"],
         "neutral": ["the meeting is at noon", "the bus leaves at six", "it is tuesday",
                     "the report is on the desk"],
         "love": ["adore you", "love you dearly", "my sweetheart", "so affectionate"]}
DAIR = {"happy": "joy", "sad": "sadness", "angry": "anger", "love": "love"}
MELD = {"happy": "joy", "sad": "sadness", "angry": "anger", "neutral": "neutral"}
GOEMO = {"happy": "joy", "sad": "sadness", "angry": "anger", "neutral": "neutral"}


def _phrase(rng: np.random.Generator, label: str) -> str:
    return WORDS[label][rng.integers(len(WORDS[label]))]


def _dair(root: Path, n: int = 6) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, k in (("train", n), ("val", 3), ("test", 3)):
        lines = [f"i feel {_phrase(rng, lab)} about day {i} of {split};{native}"
                 for lab, native in DAIR.items() for i in range(k)]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def _meld(root: Path, n_dia: int = 4) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    head = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,"
            "Episode,StartTime,EndTime")
    for split, k in (("train", n_dia), ("dev", 2), ("test", 2)):
        rows, sr = [head], 1
        for d in range(k):
            for u, (lab, native) in enumerate(MELD.items()):
                rows.append(f'{sr},"oh {_phrase(rng, lab)} {d}",Ross,{native},neutral,{d},{u},'
                            f'1,1,"0:0:1,0","0:0:2,0"')
                sr += 1
        (root / f"{split}_sent_emo.csv").write_text("\n".join(rows) + "\n")
    return root


def _goemotions(root: Path, n: int = 5) -> Path:
    from emofuse.labels import GOEMOTIONS_28

    folder = root / "original"
    folder.mkdir(parents=True)
    (folder / "labels.txt").write_text("\n".join(GOEMOTIONS_28) + "\n")
    idx = {name: i for i, name in enumerate(GOEMOTIONS_28)}
    rng = np.random.default_rng(2)
    for split, k in (("train", n), ("dev", 3), ("test", 3)):
        lines = []
        for i in range(k):
            for lab, native in GOEMO.items():
                lines.append(f"lol {_phrase(rng, lab)} {i}\t{idx[native]}\t{split}{lab}{i}")
            # one multi-label row inside one Ekman group (kept: happy), one across groups
            lines.append(f"{_phrase(rng, 'happy')} and grateful {i}\t{idx['joy']},"
                         f"{idx['gratitude']}\t{split}multi{i}")
            lines.append(f"{_phrase(rng, 'sad')} yet {_phrase(rng, 'angry')} {i}\t"
                         f"{idx['sadness']},{idx['anger']}\t{split}mixed{i}")
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture()
def corpora(tmp_path) -> dict[str, str]:
    return {"dair": str(_dair(tmp_path / "dair")), "meld": str(_meld(tmp_path / "meld")),
            "goemotions": str(_goemotions(tmp_path / "go"))}


def _cfg(roots: dict[str, str], grid=None, **params) -> object:
    return parse_config({
        "suite": "xcorpus-text", "task": {"modality": "text"},
        "data": {"corpus": "dair+meld+goemotions"}, "protocol": {"kind": "logo"},
        "features": {"name": "text_clean", "params": {}},
        "model": {"name": "joint", "params": {
            "corpora": ["dair", "meld", "goemotions"], "roots": roots,
            "grid": grid if grid is not None else [
                {"head": "lr", "class_balance": [0, 1], "C": [1.0, 30.0]},
                {"head": "mlp", "class_balance": 1, "hidden": 16, "dropout": 0.1}],
            "mlp": {"epochs": 30, "patience": 30, "batch_size": 16, "lr": 0.01},
            "targets": {"loco_macro_f1": 0.36, "ece_ts": 0.08, "meld_weighted_f1": 0.56},
            **params}},
        "train": {"seeds": [0], "num_threads": 1}})


def spy_fits(monkeypatch) -> tuple[list, list]:
    """Record the corpora every head is fitted on and the (corpus, split) pairs it scores."""
    fitted, scored = [], []
    fit_on, _scored = xt.fit_on, xt._scored

    def spy_fit(ctx, corpora_, classes, cand):
        fitted.append(tuple(corpora_))
        return fit_on(ctx, corpora_, classes, cand)

    def spy_score(ctx, head, corpus, part, classes):
        scored.append((corpus, part))
        return _scored(ctx, head, corpus, part, classes)

    monkeypatch.setattr(xt, "fit_on", spy_fit)
    monkeypatch.setattr(xt, "_scored", spy_score)
    return fitted, scored


def test_suite_cells_labels_and_result(corpora, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = get_suite("xcorpus-text").run(_cfg(corpora))
    validate_result(res)
    json.dumps(res)
    cells = {c["test"]: c for c in res["cells"]}
    assert list(cells) == ["dair", "meld", "goemotions"]
    # dair: love has no counterpart (dropped on the test side), neutral not in dair
    assert cells["dair"]["classes"] == ["happy", "sad", "angry"]
    assert cells["dair"]["dropped"]["test"] == {"love": 3}
    assert cells["dair"]["dropped"]["train"] == {"neutral": 4 + 5}
    assert cells["meld"]["classes"] == ["neutral", "happy", "sad", "angry"]
    assert cells["meld"]["dropped"]["train"] == {"love": 6}
    assert cells["dair"]["chance_ua"] == pytest.approx(1 / 3)
    for c in cells.values():
        assert 0 <= c["ece"] <= 1 and 0 <= c["ece_ts"] <= 1 and c["temperature"] > 0
        assert len(c["confusion"]) == len(c["classes"]) == len(c["per_class"])
        assert {"macro_f1", "ua", "wa", "weighted_f1"} <= set(c)
        assert [f["left_out"] for f in c["selection"]["folds"]] == c["train"]
        assert len(c["selection"]["dev_macro_f1"]) == len(c["selection"]["candidates"]) == 5
    # GoEmotions: the one-group multi-label row kept, the cross-group row dropped
    go = res["loaded"]["goemotions"]
    assert go["multilabel_rows"]["test"] == {"total": 6, "kept_one_group": 3, "dropped": 3}
    assert go["classes"]["test"]["happy"] == 6
    m = res["metrics"]
    assert len(m["macro_f1"]["per_fold"]) == 3 and m["macro_f1"]["mean"] > 0.5
    assert {"ece_ts_max", "macro_f1_meld", "joint_test_meld_weighted_f1"} <= set(m)
    assert res["status"]["loco_macro_f1"]["target"] == 0.36
    assert (tmp_path / "benchmarks/results" / res["heatmap_png"]).is_file()
    assert "Nested selection" in res["notes"] and "Joint model" in res["notes"]


def test_the_held_out_corpus_never_chooses(corpora, monkeypatch):
    """Selection and calibration fit and score the training corpora only: the held-out
    corpus' labels can be scrambled without changing the choice or the temperature."""
    table, _ = xt.load_table(["dair", "meld", "goemotions"], roots=corpora, log=None)
    cands = xt.candidates({"head": "lr", "class_balance": [0, 1], "C": [0.3, 30.0]})
    fitted, scored = spy_fits(monkeypatch)
    ctx = xt.TextContext(table, cache=False)
    cell = xt.run_cell(ctx, ["dair", "goemotions"], "meld", cands)
    assert all("meld" not in f for f in fitted)
    assert [s for s in scored if s[0] == "meld"] == [("meld", "test")]     # once, at the end
    rng = np.random.default_rng(0)
    m = table.corpus == "meld"
    table.labels[m] = rng.permutation(table.labels[m])
    again = xt.run_cell(xt.TextContext(table, cache=False), ["dair", "goemotions"], "meld", cands)
    assert again["chosen"] == cell["chosen"] and again["temperature"] == cell["temperature"]
    assert again["selection"]["mean"] == cell["selection"]["mean"]


def test_weights_calibration_and_candidates():
    corpus = np.array(["a"] * 6 + ["b"] * 2)
    y = np.array([0, 0, 0, 0, 1, 1, 0, 1])
    w = xt.sample_weights(corpus, y, xt.Candidate(class_balance=1, corpus_balance="equal"))
    assert w.mean() == pytest.approx(1)
    assert w[corpus == "a"].sum() == pytest.approx(w[corpus == "b"].sum())
    assert w[(corpus == "a") & (y == 0)].sum() == pytest.approx(w[(corpus == "a") & (y == 1)].sum())
    w = xt.sample_weights(corpus, y, xt.Candidate(class_balance=1))
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    w = xt.sample_weights(corpus, y, xt.Candidate(class_balance=0))
    assert np.allclose(w, 1)
    # an over-confident classifier: temperature > 1 lowers its ECE
    rng = np.random.default_rng(0)
    yy = rng.integers(0, 3, 2000)
    z = rng.normal(0, 1, (2000, 3))
    z[np.arange(2000), yy] += 1.0
    p = xt.apply_temperature(np.exp(z) / np.exp(z).sum(1, keepdims=True), 0.2)
    t = xt.fit_temperature([p], [yy])
    assert t > 2 and xt.ece(xt.apply_temperature(p, t), yy) < xt.ece(p, yy) / 2
    assert xt.ece(np.eye(3)[[0, 1, 2]], np.array([0, 1, 2])) == 0
    cands = xt.candidates([{"head": "lr", "C": [1, 10], "dropout": [0.1, 0.5]},
                           {"head": "mlp", "dropout": 0.3}])
    assert [c.short() for c in cands][:2] == ["lr cb1 corpus-none C1", "lr cb1 corpus-none C10"]
    assert len(cands) == 3                       # dropout does not matter to lr: no duplicates
    with pytest.raises(ConfigError, match="unknown key"):
        xt.candidates({"head": "lr", "gamma": 1})
    with pytest.raises(ConfigError, match="head"):
        xt.candidates({"head": "svm"})


def test_joint_model_folder_predicts_calibrated_without_torch(corpora, tmp_path):
    import subprocess
    import sys

    from emofuse.inference.text import TextPredictor

    cfg = _cfg(corpora, grid={"head": "mlp", "class_balance": 1, "hidden": 16,
                              "dropout": 0.1})
    out = train_joint(cfg, out_dir=tmp_path / "v2", log=None)
    card = json.loads((out / "card.json").read_text())
    assert card["labels"] == ["neutral", "happy", "sad", "angry"]
    assert card["model"]["name"] == "minilm_mlp" and card["model"]["params"]["hidden"] == 16
    assert card["calibration"]["folded_into_weights"] and card["calibration"]["temperature"] > 0
    assert set(card["data"]["corpora"]) == {"dair", "meld", "goemotions"}
    assert card["languages"] == ["en"] and card["licences"]["goemotions"] == "CC BY 4.0"
    assert {"test_meld_weighted_f1", "dev_dair_macro_f1"} <= set(card["metrics"])
    pred = TextPredictor.load(out)
    assert pred.analyse(["i feel so happy and delighted today"])[0].label == "happy"
    # the one-off ONNX export of the text encoder uses torch (in this process the encoder may
    # be remembered from another cache, so it is made here, whatever ran before)
    from emofuse.features.text import prepare_fast_encoder

    prepare_fast_encoder()
    code = ("import sys\nfrom emofuse import Recognizer\n"
            f"r = Recognizer.load({str(out)!r})\n"
            "p = r.predict('i am furious and so mad')\n"
            "print(p.label, 'torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "angry False"


def test_emofuse_train_dispatches_to_the_joint_recipe(corpora, tmp_path):
    from emofuse.recipes import get_modality

    cfg = _cfg(corpora, grid={"head": "lr", "C": 30.0})
    out = get_modality("text").train(cfg, out_dir=tmp_path / "m")
    assert json.loads((out / "card.json").read_text())["model"]["params"]["hidden"] == 0


def test_config_problems(corpora):
    with pytest.raises(ConfigError, match="unknown key"):
        xt.run_suite(_cfg(corpora, foo=1), log=None)
    with pytest.raises(ConfigError, match="at least 3"):
        xt.run_suite(_cfg(corpora, corpora=["dair", "meld"]), log=None)
    with pytest.raises(ConfigError, match="goemotions_multilabel: expected one of same_group"):
        xt.run_suite(_cfg(corpora, goemotions_multilabel="any"), log=None)
    with pytest.raises(ConfigError, match=r"grid\[0\]\.class_balance: expected a number in 0..1"):
        xt.run_suite(_cfg(corpora, grid={"head": "lr", "class_balance": [0, 2]}), log=None)
    with pytest.raises(ConfigError, match=r"mlp\.epochs: expected an integer >= 1"):
        xt.run_suite(_cfg(corpora, mlp={"epochs": 0}), log=None)


def test_committed_configs_are_valid():
    from emofuse.paths import repo_root
    from emofuse.recipes import config_path, explain_suite_config

    for path in (config_path("xcorpus-text"), repo_root() / "configs/models/text-v2.yaml"):
        assert explain_suite_config(path) == [], path
        p, cands = xt.setup(load_config(path))
        assert p.corpora == ["dair", "meld", "goemotions"] and len(cands) == 32
        assert p.mlp.model_dump() == {"epochs": 40, "patience": 5, "batch_size": 256,
                                      "lr": 0.002}
        # grid order: the keys as written (ties go to the first candidate)
        assert [c.short() for c in cands[:2]] == ["lr cb0 corpus-none C0.0001",
                                                  "lr cb0 corpus-none C0.0003"]


def test_committed_suite_quick(shared_data, tmp_path, monkeypatch):
    from emofuse.recipes import config_path

    cfg = load_config(config_path("xcorpus-text"))
    monkeypatch.chdir(tmp_path)
    res = get_suite("xcorpus-text").run(cfg, quick=True)
    validate_result(res)
    assert [c["test"] for c in res["cells"]] == ["dair", "meld", "goemotions"]


def test_training_row_options(corpora):
    """dair love -> happy and GoEmotions namesake-only rows change the training side only."""
    table, _ = xt.load_table(["dair", "meld", "goemotions"], roots=corpora, log=None)
    ctx = xt.TextContext(table, cache=False)
    classes = ["neutral", "happy", "sad", "angry"]
    base, y0 = xt._training_rows(ctx, ["dair", "goemotions"], "train", classes, xt.Candidate())
    love, y1 = xt._training_rows(ctx, ["dair", "goemotions"], "train", classes,
                                 xt.Candidate(love="happy"))
    assert len(love) == len(base) + 6 and (y1 == 1).sum() == (y0 == 1).sum() + 6
    name, _ = xt._training_rows(ctx, ["goemotions"], "train", classes,
                                xt.Candidate(goemotions="namesake"))
    assert len(name) == len(xt._training_rows(ctx, ["goemotions"], "train", classes,
                                              xt.Candidate())[0]) - 5   # joy+gratitude rows
    assert "go-namesake" in xt.Candidate(goemotions="namesake").short()
