"""Typed parameters of the speech-side suites: every committed config validates against its
suite's schemas, the schemas' defaults are the recipes' former defaults, and a mistake is
reported with its YAML line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from emofuse.config import load_config
from emofuse.errors import ConfigError
from emofuse.paths import repo_root
from emofuse.recipes import explain_suite_config, get_suite
from emofuse.recipes._speech_attn_head import AttnParams, FramesParams, HeadSpec, parse_head
from emofuse.recipes._speech_params import FitParams, MemberParams, SpeechParams
from emofuse.recipes._xcorpus_params import XcorpusParams
from emofuse.recipes.live import LiveParams
from emofuse.recipes.product import ProductParams
from emofuse.recipes.speech import parse_run

CONFIGS = repo_root() / "configs"
TYPED = {"ser-": SpeechParams, "ser-ravdess-whisper-attn": AttnParams,
         "live-latency": LiveParams, "product-latency": ProductParams,
         "xcorpus-speech-emobox": XcorpusParams}
MINE = sorted([*CONFIGS.glob("ser-*.yaml"), CONFIGS / "live-latency.yaml",
               CONFIGS / "product-latency.yaml", CONFIGS / "xcorpus-speech-emobox.yaml"])


@pytest.mark.parametrize("path", MINE, ids=lambda p: p.stem)
def test_committed_configs_validate_against_their_suite(path: Path) -> None:
    assert explain_suite_config(path) == []
    name = load_config(path).suite
    schemas = get_suite(name).params
    expected = next(v for k, v in sorted(TYPED.items(), key=lambda kv: -len(kv[0]))
                    if name.startswith(k))
    assert schemas["model"] is expected


def test_defaults_are_the_former_code_defaults() -> None:
    p = SpeechParams.of({})
    assert p.settings == ["inductive", "spknorm"] and p.weights == "val" and p.members is None
    f = FitParams()
    assert (f.crop_s, f.window_s, f.mixup, f.n_models, f.refit, f.epochs, f.spknorm,
            f.speeds, f.settings, f.augment, f.spec_augment) == \
        (3.0, 6.0, 0.0, 1, False, None, "input", [], None, None, None)
    assert LiveParams().model_dump() == {
        "single_s": 60.0, "long_s": 600.0, "long_speed": 1.0, "concurrent": 4,
        "concurrent_s": 30.0, "hop": 0.5, "window": 3.0, "frame_rate": 10.0,
        "speech_waits_extra": []}
    assert ProductParams().model_dump() == {"repeats": 30, "cold_runs": 3, "jobs": [1, 2],
                                            "copies": 10}
    assert FramesParams().model_dump() == {"layers": [1, 2, 3, 4, 5, 6], "padding": "clip",
                                           "stride": 2}
    a = AttnParams()
    assert HeadSpec(**a.model_dump(include={"layers", "hidden", "attn_hidden", "dropout",
                                            "meanstd"})) == HeadSpec()
    x = XcorpusParams()
    assert (x.settings, x.enrol_prior, x.ece_bins, x.jobs, x.pairs) == \
        (["inductive", "folder", "enrol"], 5.0, 15, 1, True)


def test_single_model_keeps_its_constructor_params_apart() -> None:
    cfg = load_config(CONFIGS / "ser-ravdess-cnn2d.yaml")
    (m,) = parse_run(cfg).members
    assert m.params == {"channels": [16, 32, 64, 128], "stem_stride": 4, "n_mels": 64,
                        "norm": "utterance_scalar", "dropout": 0.3}
    assert m.augment is not None and m.augment.copies == 1 and m.augment.wave_params() == {}
    assert m.spec_augment is not None and m.spec_augment.time_width == 20
    # an empty spec_augment stays off, as before the schemas
    fit = MemberParams.of({"name": "cnn2d", "fit": {"spec_augment": {}}}).fit
    assert fit.spec_augment is not None
    run = parse_run(cfg.model_copy(update={"model": cfg.model.model_copy(
        update={"params": {"fit": {"spec_augment": {}}}})}))
    assert run.members[0].spec_augment is None


def test_ensemble_refuses_single_model_keys() -> None:
    cfg = load_config(CONFIGS / "ser-savee.yaml")
    params = {**cfg.model.params, "fit": {"crop_s": 2.0}}
    bad = cfg.model_copy(update={"model": cfg.model.model_copy(update={"params": params})})
    with pytest.raises(ConfigError, match="unknown keys for an ensemble"):
        parse_run(bad)


def test_mistakes_are_reported_with_their_yaml_line(tmp_path: Path) -> None:
    d = yaml.safe_load((CONFIGS / "ser-ravdess-lda.yaml").read_text())
    d["model"]["params"]["members"][0]["fit"] = {"sped": [0.9]}
    d["model"]["params"]["settings"] = ["inductive", "transductive"]
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    problems = explain_suite_config(p)
    assert len(problems) == 2, problems
    assert any(x.startswith("model.params.settings[1] (line ") for x in problems)
    assert any("model.params.members[0].fit.sped (line " in x and "did you mean 'speeds'" in x
               for x in problems)


def test_attn_pool_entries_are_typed() -> None:
    cfg = load_config(CONFIGS / "ser-ravdess-whisper-attn.yaml")
    head, settings, pool = parse_head(cfg)
    assert settings == ["inductive"] and head.layers == [2, 3, 4, 5]
    assert head.replace(pool[1]).hidden == 256 and head.replace(pool[1]).dropout == 0.5
    assert head.replace(pool[0]).layers == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ConfigError, match="pool.*colour"):
        head.replace({"colour": 1})
