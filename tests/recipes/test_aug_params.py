"""Typed parameters of the augmentation suites: the committed configs validate against their
suite's schema, the schema defaults are the hand-parsed defaults they replaced, and mistakes are
reported with their YAML line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emofuse.config import load_config
from emofuse.errors import ConfigError
from emofuse.recipes import config_path, explain_suite_config, get_suite

SUITES = ("aug-text", "aug-face", "aug-speech-aaec", "aug-speech-tts", "aug-speech-diffusion",
          "fer-fer2013-ensemble")


@pytest.mark.parametrize("name", SUITES)
def test_committed_configs_validate_with_the_suite_schema(name):
    schema = get_suite(name).params["model"]
    assert explain_suite_config(config_path(name)) == []
    assert isinstance(schema.of(load_config(config_path(name)).model), schema)


def test_defaults_are_the_former_hand_parsed_ones():
    from emofuse.recipes.aug_diffusion import AugDiffusionParams
    from emofuse.recipes.aug_face import AugFaceParams
    from emofuse.recipes.aug_speech import AugAaecParams
    from emofuse.recipes.aug_tts import AugTtsParams
    from emofuse.recipes.augment import AugTextParams
    from emofuse.recipes.face_ensemble import EnsembleParams

    t = AugTextParams()
    assert (t.classifier.C, t.classifier.max_iter, t.fractions, t.core_per_class) == (
        1.0, 2000, [0.1, 0.25, 1.0], 10)
    assert t.generators["eda"].model_dump(exclude_unset=True) == {
        "name": "eda_text", "params": {}, "budget": 200}
    assert {a: s.generators for a, s in t.arms.items()} == {"real": [], "eda": ["eda"]}
    assert (t.filter.min_confidence, t.filter.model, t.balance.kwargs()) == (
        0.0, "real", {"strategy": "max", "fraction": 1.0})
    assert (t.dedupe_threshold, t.bootstrap, t.primary.arm, t.pool_dir) == (
        0.05, 1000, None, None)
    f = AugFaceParams()
    assert (f.hog.model_dump(), f.pca, f.classifier.model_dump(), f.core_fraction) == (
        {"cell": 6, "bins": 9}, 160, {"C": 1.0, "max_iter": 300}, 0.1)
    assert (f.pool_per_class, f.cap, f.balance.kwargs(), f.generator.name) == (
        1000, 1000, {"strategy": "fraction", "fraction": 0.3}, "cgan_face")
    assert f.quick.model_dump() == {"iterations": 4, "pool_per_class": 6, "cap": 6, "seeds": 2,
                                    "fractions": [0.5, 1.0]}
    a = AugAaecParams()
    assert (a.variants, a.fractions, a.steps, a.trim_db, a.quick) == (
        ["aaec", "aae_c", "aae_plus_c", "aaec_plain", "classifier"], [1.0, 0.1], 32, 35.0,
        {"epochs": 2, "finetune_epochs": 1})
    assert (a.synthetic.per_class, a.primary.variant, a.primary.fraction) == (24, "aaec", 1.0)
    s = AugTtsParams()
    assert (s.lda.model_dump(), s.pool.model_dump(), s.pca, s.bootstrap) == (
        {"shrinkage": 0.5, "balanced": True}, {"per_class": 60, "seed": 0, "generator": {}},
        64, 1000)
    assert (s.arms["tts"].engines, s.arms["tts"].per_class, s.arms["real"].engines) == (
        ["piper", "espeak"], 40, [])
    assert s.quick.model_dump() == {"pool_per_class": 2, "per_class": 2,
                                    "fractions": [0.5, 1.0], "seeds": 2}
    d = AugDiffusionParams()
    assert (d.core, d.pool.model_dump(), d.arms["ddpm"].per_class, d.primary.arm) == (
        0.1, {"per_class": 20, "seed": 0}, 10, "ddpm")
    assert d.quick.generator == {"steps": 3, "griffin_lim_iter": 2, "ddim_steps": 3, "crops": 1}
    e = EnsembleParams()
    assert (e.grid_step, e.combine, e.resnet_tta, e.finetune) == (0.05, ["prob", "log"], None,
                                                                   None)


def test_mistakes_are_reported_with_their_yaml_line(tmp_path: Path):
    data = yaml.safe_load(Path(config_path("aug-speech-aaec")).read_text())
    data["model"]["params"]["aaec"]["k11"] = 1             # a typo of k1
    data["model"]["params"]["aaec"]["steps"] = 16          # set by the suite, not here
    data["model"]["params"]["variants"] = ["aaec", "aaex"]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = "\n".join(explain_suite_config(p))
    assert "model.params.aaec (line" in problems and "k11" in problems and "steps" in problems
    assert "model.params.variants (line" in problems and "unknown ['aaex']" in problems
    data = yaml.safe_load(Path(config_path("aug-speech-diffusion")).read_text())
    data["model"]["params"]["generator"]["stepz"] = 3
    data["model"]["params"]["arms"]["ddpm"]["engines"] = ["gan"]
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    problems = "\n".join(explain_suite_config(p))
    assert "model.params.generator (line" in problems and "stepz" in problems
    with pytest.raises(ConfigError, match="engines"):
        get_suite("aug-speech-diffusion").params["model"].of(data["model"]["params"])
