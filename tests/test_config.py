"""Run configuration: loading, defaults, every problem reported with its location."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
import yaml

from pydantic import Field

from emofuse.config import (Params, RunConfig, dump_config, explain_config_errors, load_config,
                            parse_config)
from emofuse.errors import ConfigError
from emofuse.paths import repo_root

EXAMPLE = repo_root() / "configs" / "example-tiny.yaml"
MINIMAL = {"task": {"modality": "speech"}, "data": {"corpus": "ravdess"},
           "features": {"name": "mfcc_stats"}, "model": {"name": "mlp"}}


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_example_config_is_valid_and_complete() -> None:
    cfg = load_config(EXAMPLE)
    assert explain_config_errors(EXAMPLE) == []
    assert cfg.task.modality == "speech"
    assert cfg.data.corpus == "ravdess" and cfg.data.labels == ["neutral", "happy", "sad", "angry"]
    assert cfg.protocol.kind == "speaker_kfold" and cfg.protocol.k == 3
    assert cfg.train.seeds == [0] and cfg.train.max_epochs == 3
    # "complete": every key of every section is written out in the example
    raw = yaml.safe_load(EXAMPLE.read_text())
    for section, value in cfg.model_dump().items():
        if isinstance(value, dict):
            assert set(raw[section]) == set(value), section


def test_defaults_fill_optional_sections() -> None:
    cfg = parse_config(MINIMAL)
    assert cfg.suite == "default"
    assert cfg.protocol.kind == "speaker_kfold" and cfg.protocol.allow_leak is False
    assert cfg.train.seeds == [0] and 0 < cfg.train.val_fraction < 1
    assert cfg.train.accelerator == "cpu" and cfg.train.devices == 1
    assert cfg.output.dir == Path("runs")
    assert cfg.data.root is None and cfg.data.options == {}


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLE)
    again = load_config(write(tmp_path, dump_config(cfg)))
    assert again == cfg
    data = dict(MINIMAL, data={"corpus": "x", "root": str(tmp_path)}, train={"seeds": 7})
    cfg2 = parse_config(data)
    assert cfg2.train.seeds == [7] and cfg2.data.root == tmp_path
    assert load_config(write(tmp_path, dump_config(cfg2), "b.yaml")) == cfg2


def test_every_problem_is_listed_with_location(tmp_path: Path) -> None:
    path = write(tmp_path, """\
task:
  modality: speach
data:
  corpus: ravdess
features:
  name: mfcc
  parms: {}
model: {}
train:
  max_epoch: 3
  batch_size: ten
  val_fraction: 1.5
  devices: 0
outptu:
  dir: x
""")
    problems = explain_config_errors(path)
    text = "\n".join(problems)
    assert len(problems) == 8, text
    assert "task.modality (line 2)" in text and "did you mean 'speech'" in text
    assert "features.parms (line 7): unknown key 'parms'; did you mean 'params'?" in text
    assert "Allowed keys: name, params" in text
    assert "model.name (line 8): required key is missing" in text
    assert "train.max_epoch (line 10)" in text and "did you mean 'max_epochs'" in text
    assert "train.batch_size (line 11): expected a valid integer" in text and "'ten'" in text
    assert "train.val_fraction (line 12): expected less than 1" in text
    assert "train.devices (line 13)" in text
    assert "outptu (line 14): unknown key 'outptu'; did you mean 'output'?" in text
    # problems come in file order
    lines = [int(p.split("(line ")[1].split(")")[0]) for p in problems]
    assert lines == sorted(lines)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "8 problems" in str(info.value)
    assert info.value.problems == problems


@pytest.mark.parametrize(("text", "expected"), [
    ("task:\n  modality: [speech\n", "YAML syntax error at line 3, column 1"),
    ("- a\n- b\n", "the top level must be a mapping"),
    ("", "the configuration is empty"),
    ("task: {modality: speech}\ntask: {modality: face}\n", "task (line 2): key given twice"),
])
def test_file_level_problems(tmp_path: Path, text: str, expected: str) -> None:
    problems = explain_config_errors(write(tmp_path, text))
    assert any(expected in p for p in problems), problems


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert explain_config_errors(missing) == [f"{missing}: file not found"]
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_config(missing)


@pytest.mark.parametrize(("patch", "expected"), [
    ({"protocol": {"kind": "cross_corpus"}}, "needs test_corpus"),
    ({"protocol": {"kind": "loso", "test_corpus": "cremad"}}, "only used by kind 'cross_corpus'"),
    ({"protocol": {"kind": "cross_corpus", "test_corpus": "ravdess"}}, "must test on another"),
    ({"protocol": {"k": 1}}, "protocol.k: expected greater than or equal to 2"),
    ({"train": {"seeds": []}}, "at least one seed"),
    ({"train": {"seeds": [1, 1]}}, "more than once"),
    ({"train": {"max_epochs": 0}}, "train.max_epochs: expected greater than 0"),
    ({"train": {"val_fraction": 0}}, "train.val_fraction: expected greater than 0"),
    ({"train": {"accelerator": "gpux"}}, "did you mean 'gpu'"),
    ({"train": {"devices": "two"}}, "train.devices: expected a device count"),
    ({"data": {"corpus": "x", "labels": ["happy", "happy"]}}, "more than once: happy"),
    ({"data": {"corpus": "x", "root": 5}}, "data.root: expected a file or folder path"),
    ({"task": {}}, "task.modality: required key is missing"),
])
def test_range_and_consistency_checks(patch: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({**MINIMAL, **patch})
    assert expected in str(info.value)


def test_valid_variants_pass() -> None:
    cfg = parse_config({**MINIMAL, "protocol": {"kind": "cross_corpus", "test_corpus": "cremad"},
                        "train": {"devices": [0, 1], "strategy": "ddp", "accelerator": "auto"}})
    assert cfg.protocol.test_corpus == "cremad" and cfg.train.devices == [0, 1]
    assert isinstance(parse_config({**MINIMAL, "train": {"devices": "auto"}}), RunConfig)
    with pytest.raises(ValueError):  # assignments are validated too
        cfg.train.lr = -1.0


# --- typed parameter schemas (a suite's model.params / features.params) -------------------

class _NetParams(Params):
    hidden: int = Field(default=64, gt=0)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    kind: Literal["mlp", "linear"] = "mlp"


def test_params_checked_at_load_with_yaml_lines(tmp_path: Path) -> None:
    cfg = yaml.safe_load(EXAMPLE.read_text())
    cfg["model"]["params"] = {"hiden": 3, "dropout": 2, "kind": "mpl"}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg, sort_keys=False))
    problems = explain_config_errors(p, params={"model": _NetParams})
    assert len(problems) == 3, problems
    joined = "\n".join(problems)
    assert "model.params.hiden (line" in joined and "did you mean 'hidden'" in joined
    assert "model.params.dropout (line" in joined
    assert "model.params.kind (line" in joined and "did you mean 'mlp'" in joined
    assert explain_config_errors(p) == []          # without the schema: an open dict
    with pytest.raises(ConfigError, match="3 problems"):
        load_config(p, params={"model": _NetParams})


def test_params_of_types_a_section_and_reports_without_file() -> None:
    cfg = load_config(EXAMPLE)
    typed = _NetParams.of({"hidden": 8})
    assert (typed.hidden, typed.dropout, typed.kind) == (8, 0.1, "mlp")
    assert _NetParams.of(typed) is typed
    with pytest.raises(ConfigError, match=r"model\.params\.hidden: .*greater than 0"):
        _NetParams.of({"hidden": 0})
    with pytest.raises(ConfigError, match="features.params: expected a mapping"):
        _NetParams.of([1], where="features.params")
    assert isinstance(_NetParams.of(cfg.model.model_copy(update={"params": {}})), _NetParams)


def test_cli_config_validate_uses_the_suite_schema(tmp_path: Path) -> None:
    from emofuse.recipes import _SUITES, explain_suite_config, suite

    saved = dict(_SUITES)
    try:
        suite("tiny-typed", modality="speech", params={"model": _NetParams})(lambda cfg: {})
        cfg = yaml.safe_load(EXAMPLE.read_text())
        cfg["suite"] = "tiny-typed"
        cfg["model"]["params"] = {"hidden": -1}
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(cfg, sort_keys=False))
        (problem,) = explain_suite_config(p)
        assert problem.startswith("model.params.hidden (line ")
    finally:
        _SUITES.clear()
        _SUITES.update(saved)


class _Head(Params):
    hidden: int = 8


class _Systems(Params):
    systems: dict[str, _Head] = Field(default_factory=dict)
    grid: list[_Head] = Field(default_factory=list)
    maybe: _Head | None = None


@pytest.mark.parametrize("params, where", [
    ({"systems": {"a": {"hiden": 1}}}, "model.params.systems.a.hiden"),
    ({"grid": [{"hidden": 1}, {"hiden": 1}]}, "model.params.grid[1].hiden"),
    ({"maybe": {"hiden": 1}}, "model.params.maybe.hiden"),
])
def test_unknown_key_hint_inside_dicts_lists_and_optionals(params: dict, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        _Systems.of(params)
    assert f"{where}: unknown key 'hiden'; did you mean 'hidden'? Allowed keys: hidden" \
        in str(info.value)
