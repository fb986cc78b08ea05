"""Fusion recipe: noisy-audio features (the noise itself: tests/augment/test_online.py),
modality tables, the av-ravdess --quick smoke run, ``train`` / ``evaluate`` of the attention
fusion and the suites' typed parameters."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse.config import load_config
from emofuse.corpora import Record
from emofuse.errors import ConfigError
from emofuse.evaluate.results import validate_result
from emofuse.features.cache import FeatureCache
from emofuse.paths import repo_root
from emofuse.recipes import get_suite
from emofuse.recipes.fusion import modality_data

CONFIG = repo_root() / "configs" / "av-ravdess.yaml"


def _records(root: Path) -> list[Record]:
    """Three clips: two with audio and AUs, one with AUs but a broken audio file."""
    t = np.arange(8000) / 16000
    au = root / "au.csv"
    with au.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip_id", "AU01_r", "AU12_r", "AU45_c"])
        for i in range(3):
            w.writerow([f"c{i}", 0.1 * i, 1.0, 0.5])
    recs = []
    for i in range(3):
        path = root / f"c{i}.wav"
        if i < 2:
            sf.write(path, (0.3 * np.sin(2 * np.pi * (150 + 50 * i) * t)).astype(np.float32),
                     16000)
        else:
            path.write_text("not audio")
        recs.append(Record(id=f"c{i}", corpus="ravdess", label_native="happy", label="happy",
                           speaker=f"s{i % 2}", audio=str(path), au=str(au),
                           extra={"au_id": f"c{i}"}))
    recs.append(Record(id="c3", corpus="ravdess", label_native="sad", label="sad", speaker="s1",
                       audio=str(root / "c0.wav")))       # no AU table: face absent
    return recs


def test_modality_data_blocks_masks_and_noise(tmp_path):
    recs = _records(tmp_path)
    cache = FeatureCache(tmp_path / "cache")
    mods = {"audio": ["lld_stats"], "face": ["openface_au"]}
    d = modality_data(recs, mods, block_params={"lld_stats": {"n_mfcc": 5}}, cache=cache)
    assert d.X["audio"].shape == (4, 24 * 5 + 17) and d.X["face"].shape == (4, 3)
    assert d.present["audio"].tolist() == [True, True, False, True]
    assert d.present["face"].tolist() == [True, True, True, False]
    assert d.slices["openface_au"] == ("face", slice(0, 3))
    assert np.allclose(d.X["face"][2], [0.2, 1.0, 0.5])
    assert np.all(d.X["audio"][2] == 0)
    assert [p["id"] for p in d.problems] == ["c2"] and "c2.wav" in d.problems[0]["path"]
    assert d.mask().shape == (4, 2)
    noisy = modality_data(recs, mods, block_params={"lld_stats": {"n_mfcc": 5}},
                          noise={"snr_db": 0, "seed": 0}, cache=cache)
    assert not np.allclose(noisy.X["audio"][0], d.X["audio"][0])
    assert np.array_equal(noisy.X["face"], d.X["face"])          # noise touches audio only
    hits = cache.hits
    again = modality_data(recs, mods, block_params={"lld_stats": {"n_mfcc": 5}},
                          noise={"snr_db": 0, "seed": 0}, cache=cache)
    assert cache.hits > hits and np.array_equal(again.X["audio"], noisy.X["audio"])
    with pytest.raises(ConfigError):
        modality_data(recs, {})


#: the feature cache of the quick runs on RAVDESS (conftest ``shared_cache``), shared with
#: tests/recipes/test_fusion_whisper.py: the quick subset's features are extracted once
AV_QUICK = "av-ravdess-quick"


@pytest.mark.slow
def test_quick_suite_runs(shared_data: Path, shared_cache, tmp_path: Path,
                          monkeypatch) -> None:
    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache(AV_QUICK)))
    monkeypatch.chdir(tmp_path)
    cfg = load_config(CONFIG)
    for name in ("mfa_fercnn", "intermediate"):   # a smoke run: a few epochs, not 100
        cfg.model.params["compare"][name].update(max_epochs=3, patience=1)
    result = get_suite("av-ravdess").run(cfg, quick=True)
    validate_result(result)
    m = result["metrics"]
    for suffix in ("", "_spknorm"):
        assert 0.0 <= m[f"ua{suffix}"]["mean"] <= 1.0
        for cond in ("audio_masked", "face_masked", "audio_noise"):
            assert f"ua_{cond}{suffix}" in m
        assert f"svm_ref_early.ua{suffix}" in m
    assert set(result["models"]) >= {"attention", "svm_ref_face", "mfa_fercnn", "intermediate"}
    w = result["conditions"]["inductive"]["clean"]["weights"]
    assert abs(sum(w["mean"].values()) - 1) < 1e-5 and set(w["by_class"]) <= set(result["classes"])
    masked = result["conditions"]["inductive"]["audio_masked"]["weights"]["mean"]
    assert masked["audio"] == 0 and masked["face"] == pytest.approx(1)
    assert all(Path(p).is_file() for p in result["plots"])
    assert Path(result["confusion_png"]).is_file()
    assert result["targets"] and "inductive" in result["notes"]
    sel = result["models"]["fusion_ensemble"]["selection"]
    assert set(sel) == {"inductive", "spknorm"}
    for choice in sel.values():
        assert set(choice["weights"]) - {"linear_audio", "linear_face"} <= set(choice["candidates"])
        assert choice["experts"] and 0 <= choice["val_ua"] <= 1
    assert "chosen per setting on validation actors" in result["notes"]


def test_train_then_evaluate(shared_data: Path, shared_cache, tmp_path: Path,
                             monkeypatch) -> None:
    from emofuse.corpora import load_corpus
    from emofuse.recipes._fusion_data import quick_records
    from emofuse.recipes.fusion import evaluate, predict_records, train

    monkeypatch.setenv("EMOFUSE_CACHE", str(shared_cache(AV_QUICK)))
    cfg = load_config(CONFIG)
    model = train(cfg, out_dir=tmp_path / "model", quick=True)
    card = json.loads((model / "card.json").read_text())
    assert card["task"] == "fusion" and len(card["labels"]) == 8
    recs = quick_records(load_corpus("ravdess", check_media=False).records)[:12]
    recs[0].au = None                                  # one clip without its face
    res = evaluate(model, recs, corpus="ravdess")
    assert res["items"] == 12 and 0 <= res["metrics"]["ua"]["mean"] <= 1
    assert abs(sum(res["attention_weights"]["mean"].values()) - 1) < 1e-5
    pred = predict_records(model, recs[:2])
    assert pred["weights"][0].tolist() == [1.0, 0.0]   # face absent: all weight on audio


def test_ensemble_averages_members_fold_by_fold():
    from emofuse.recipes._common import FoldOutput
    from emofuse.recipes._fusion_ensemble import ensemble_outputs

    ids, y = ["a", "b"], np.array([0, 1])
    nn = [FoldOutput(1, s, ids, y, np.array([[0.8, 0.2], [0.6, 0.4]]) + 0.1 * s * np.array(
        [[-1, 1], [-1, 1]])) for s in (0, 1)]
    svm = [FoldOutput(1, 0, ids, y, np.array([[0.2, 0.8], [0.0, 1.0]]))]      # one seed only
    out = ensemble_outputs([nn, svm])
    assert [o.seed for o in out] == [0, 1]
    assert np.allclose(out[0].proba, [[0.5, 0.5], [0.3, 0.7]])
    assert np.allclose(out[1].proba, [[0.45, 0.55], [0.25, 0.75]])
    assert np.allclose(ensemble_outputs([nn, svm], weights=[3, 1])[0].proba[0], [0.65, 0.35])
    with pytest.raises(ValueError, match="disagree"):
        ensemble_outputs([nn, [FoldOutput(1, 0, ["b", "a"], y, np.eye(2))]])


def test_fixed_late_fusion_model_from_config(tmp_path: Path) -> None:
    from emofuse.config import load_config
    from emofuse.inference import Recognizer
    from emofuse.recipes import fusion as recipe

    cfg = load_config(Path(__file__).parents[2] / "configs" / "models" / "fusion.yaml")
    out = recipe.train(cfg, out_dir=tmp_path / "fusion")
    rec = Recognizer.load(out)
    fuser = rec.predictor("fusion")
    fused, w = fuser.fuse({"speech": {"happy": 0.8, "calm": 0.2}, "face": {"happy": 0.4, "sad": 0.6}})
    assert w == {"speech": 0.5, "face": 0.5}
    assert abs(fused["happy"] - 0.6) < 1e-9 and abs(sum(fused.values()) - 1) < 1e-9


def test_ensemble_conditions_drop_members_that_need_a_removed_modality():
    from emofuse.recipes._common import FoldOutput
    from emofuse.recipes._fusion_ensemble import ensemble_outputs

    ids, y = ["a", "b"], np.array([0, 1])
    c = lambda *rows: {"proba": np.array(rows, float)}  # noqa: E731
    att = [FoldOutput(1, 0, ids, y, np.array([[.6, .4], [.4, .6]]), {"conditions": {
        "clean": c([.6, .4], [.4, .6]), "audio_masked": c([.7, .3], [.7, .3]),
        "face_masked": c([.5, .5], [.5, .5]), "audio_noise": c([.9, .1], [.1, .9])}})]
    early = [FoldOutput(1, 0, ids, y, np.array([[1., 0], [0, 1.]]), {"conditions": {
        "clean": c([1, 0], [0, 1]), "audio_noise": c([0, 1], [1, 0])}})]
    audio = [FoldOutput(1, 0, ids, y, np.array([[.2, .8], [.2, .8]]))]
    kw = {"member_modalities": [["audio", "face"], ["audio", "face"], ["audio"]],
          "modalities": ["audio", "face"]}
    pooled = ensemble_outputs([att, early, audio], **kw)[0]
    cond = pooled.info["conditions"]
    assert cond["clean"]["members"] == 3 and np.allclose(pooled.proba, cond["clean"]["proba"])
    assert cond["audio_masked"]["members"] == 1                    # only the attention fusion
    assert np.allclose(cond["face_masked"]["proba"][0], [0.35, 0.65])
    assert cond["audio_noise"]["members"] == 2                     # audio-only lacks noisy output
    assert np.allclose(cond["audio_noise"]["proba"][0], [0.45, 0.55])
    experts = ensemble_outputs([att, early, audio], subset_experts=True, **kw)[0]
    assert experts.info["conditions"]["clean"]["members"] == 2     # audio-only sits out
    assert experts.info["conditions"]["face_masked"]["members"] == 2
    with pytest.raises(ValueError, match="weights"):
        ensemble_outputs([att, early], weights=[1, 2, 3])
    # average_seeds: a two-seed member is averaged first, one output per fold
    att2 = att + [FoldOutput(1, 1, ids, y, np.array([[.2, .8], [.2, .8]]), {"conditions": {
        k: c([.1, .9], [.1, .9]) for k in ("clean", "audio_masked", "face_masked",
                                            "audio_noise")}})]
    avg = ensemble_outputs([att2, early], average_seeds=True, weights=[1, 0],
                           member_modalities=kw["member_modalities"][:2],
                           modalities=kw["modalities"])
    assert len(avg) == 1 and np.allclose(avg[0].proba, [[0.35, 0.65], [0.25, 0.75]])
    assert np.allclose(avg[0].info["conditions"]["audio_masked"]["proba"][0], [0.4, 0.6])


def test_classical_member_with_multi_condition_training_and_noisy_condition(tmp_path):
    from emofuse.config import load_config as _load
    from emofuse.recipes._fusion_data import load_av_data
    from emofuse.recipes._fusion_models import make_runner

    recs = _records(tmp_path)
    fparams = {"modalities": {"audio": ["lld_stats"], "face": ["openface_au"]},
               "block_params": {"lld_stats": {"n_mfcc": 5}}, "noise": {"snr_db": 0, "seed": 0},
               "augment": {"snr_db": [5], "seed": 1}}
    data = load_av_data(recs, ["happy", "sad"], fparams, cache=FeatureCache(tmp_path / "c"),
                        log=None)
    tcfg = _load(CONFIG).train
    spec = {"kind": "linear", "modalities": ["audio", "face"], "C": 1.0, "augment": True}
    fp = make_runner("linear", data, "inductive", spec, tcfg)
    proba, info = fp(recs, [], recs, 0)
    assert proba.shape == (4, 2) and np.allclose(proba.sum(1), 1)
    cond = info["conditions"]
    assert set(cond) == {"clean", "audio_noise"}
    assert not np.allclose(cond["audio_noise"]["proba"], proba)


def test_select_ensemble_greedy_on_validation_outputs():
    from emofuse.recipes._common import FoldOutput
    from emofuse.recipes._fusion_ensemble import select_ensemble

    y = np.array([0, 0, 1, 1])
    good = np.array([[0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.45, 0.55]])
    half = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])   # UA 0.75
    bad = good[:, ::-1]
    outs = {n: [FoldOutput(f, 0, list("abcd"), y, p) for f in (1, 2)]
            for n, p in (("bad", bad), ("half", half), ("good", good))}
    sel = select_ensemble(outs, 2, max_steps=4)
    assert sel["weights"] == {"good": 1} and sel["val_ua"] == 1.0
    assert [h["added"] for h in sel["history"]][0] == "good" and len(sel["history"]) == 4


def test_validation_splits_hold_out_training_actors_only():
    from emofuse.corpora import Record
    from emofuse.protocols import Split
    from emofuse.recipes._fusion_ensemble import validation_splits

    recs = [Record(id=f"{s}-{i}", corpus="x", label="happy" if i % 2 else "sad",
                   label_native="h" if i % 2 else "s", speaker=s, audio=None)
            for s in "abcdefghij" for i in range(4)]
    test = [r.id for r in recs if r.speaker in "ij"]
    split = Split("x/1", train=[r.id for r in recs if r.speaker not in "ij"], test=test)
    (v,) = validation_splits([split], recs, fraction=0.25)
    spk = {r.id: r.speaker for r in recs}
    assert not set(v.test) & set(test) and not set(v.train) & set(test)
    assert {spk[i] for i in v.test}.isdisjoint({spk[i] for i in v.train})
    assert set(v.train) | set(v.test) == set(split.train) and v.test


# --- typed parameters (issue 22) --------------------------------------------------------------

def test_committed_fusion_configs_validate_against_their_suite_schemas():
    from emofuse.recipes import explain_suite_config

    for name in ("av-ravdess", "av-ravdess-whisper", "tri-synthetic", "av-clips",
                 "models/fusion"):
        assert explain_suite_config(repo_root() / "configs" / f"{name}.yaml") == [], name


def test_late_fusion_bundle_config_is_not_a_benchmark_and_has_its_own_schema():
    from emofuse.recipes._fusion_params import LateFusionParams

    cfg = load_config(repo_root() / "configs" / "models" / "fusion.yaml")
    assert cfg.suite == "late-fusion" and cfg.model.name == "late_fusion"
    with pytest.raises(ConfigError, match="unknown benchmark suite"):
        get_suite(cfg.suite)
    assert LateFusionParams.of(cfg.model).weights == {"speech": 1.0, "face": 1.0, "text": 1.0}
    with pytest.raises(ConfigError, match="weights"):
        LateFusionParams.of({"note": "no weights"})


def test_bad_fusion_parameters_are_reported_with_their_yaml_lines(tmp_path: Path):
    import yaml

    from emofuse.recipes import explain_suite_config

    cfg = yaml.safe_load(CONFIG.read_text())
    compare = cfg["model"]["params"]["compare"]
    compare["svm_face"]["Cx"] = 1
    compare["linear_face"]["kind"] = "lineer"
    compare["intermediate"]["dropout"] = 2
    cfg["model"]["params"]["dropot"] = 0.1
    cfg["features"]["params"]["settings"] = ["inductive", "spk"]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    problems = explain_suite_config(p)
    joined = "\n".join(problems)
    assert len(problems) == 5, problems
    assert all("(line " in x for x in problems)
    assert "model.params.dropot" in joined and "did you mean 'dropout'" in joined
    assert "compare.svm_face.Cx (line" in joined and "did you mean 'C'?" in joined
    assert "compare.linear_face.kind (line" in joined and "did you mean 'linear'?" in joined
    assert "compare.intermediate.dropout (line" in joined
    assert "features.params.settings[1] (line" in joined


def test_fusion_schema_defaults_are_the_code_defaults():
    import inspect

    from emofuse.fusion import AttentionFusion, IntermediateFusion, MFAProjector
    from emofuse.fusion._torch import train_net
    from emofuse.recipes._fusion_params import (
        AttentionNetParams,
        AVModelParams,
        IntermediateSpec,
        MfaSpec,
    )

    def defaults(fn) -> dict:
        return {k: v.default for k, v in inspect.signature(fn).parameters.items()}

    att = defaults(AttentionFusion)
    assert all(att[k] == v for k, v in AttentionNetParams().net_kwargs().items())
    inter = defaults(IntermediateFusion)
    assert all(inter[k] == v for k, v in IntermediateSpec(kind="intermediate").net_kwargs()
               .items())
    mfa, spec = defaults(MFAProjector), MfaSpec(kind="mfa")
    assert all(mfa[k] == getattr(spec, k) for k in ("size", "n_components", "k1", "k2", "reg"))
    tcfg = load_config(CONFIG).train
    kw = AVModelParams().train_kwargs(tcfg)
    net = defaults(train_net)
    assert (kw["l2"], kw["early_stopping"]) == (net["l2"], net["early_stopping"])
    assert (kw["max_epochs"], kw["lr"], kw["num_threads"]) == (tcfg.max_epochs, tcfg.lr, 1)
    main = AVModelParams.of(load_config(CONFIG).model)
    assert main.attention().kind == "attention" and main.attention().n_ensemble == 3
    assert main.train_kwargs(tcfg)["early_stopping"] is False


def test_late_fusion_keys_are_refused_by_the_attention_suite():
    from emofuse.recipes.fusion import run_av_suite

    cfg = load_config(CONFIG)
    cfg.model.params = {**cfg.model.params, "weights": {"speech": 1.0}}
    with pytest.raises(ConfigError, match="late_fusion"):
        run_av_suite(cfg, quick=True, log=None)
