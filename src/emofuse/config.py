"""Run configuration: one YAML file fully describes a run.

>>> from emofuse.config import load_config
>>> cfg = load_config("configs/example-tiny.yaml")      # doctest: +SKIP
>>> cfg.train.max_epochs                                # doctest: +SKIP
3

Every section forbids unknown keys, so a typo such as ``max_epoch`` is an error rather than a
silently ignored setting. :func:`load_config` raises one :class:`~emofuse.errors.ConfigError`
that lists *every* problem, each with its dotted location (``train.max_epochs``), the YAML line
where it sits and a plain explanation; :func:`explain_config_errors` returns the same lines as a
list (empty when the file is valid) for ``emofuse config validate FILE``.

Relative paths (``data.root``, ``output.dir``) are kept as written and resolved against the
working directory by whoever uses them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Self, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

__all__ = ["Params", "RunConfig", "TaskConfig", "DataConfig", "ProtocolConfig", "FeaturesConfig",
           "ModelConfig", "TrainConfig", "OutputConfig", "load_config", "parse_config",
           "explain_config_errors", "dump_config", "MODALITIES", "PROTOCOL_KINDS"]

Modality = Literal["speech", "face", "text", "fusion"]
ProtocolKind = Literal["emobox", "speaker_kfold", "loso", "logo", "official", "cross_corpus",
                       "random"]
Accelerator = Literal["cpu", "gpu", "cuda", "mps", "auto"]
MODALITIES: tuple[str, ...] = Modality.__args__
PROTOCOL_KINDS: tuple[str, ...] = ProtocolKind.__args__


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Params(_Section):
    """Base of a typed ``features.params`` / ``model.params`` schema (a recipe's parameters).

    A suite declares its schemas (``@suite(..., params={"model": M, "features": F})``);
    :func:`load_config` then checks those sections when the file loads, with YAML lines, and
    the recipe reads them typed with :meth:`of` instead of parsing a dict by hand.
    """

    @classmethod
    def of(cls, params: Any, *, where: str = "model.params") -> Self:
        """``params`` (a mapping, a :class:`FeaturesConfig` / :class:`ModelConfig` or an
        instance) validated as this schema; a :class:`ConfigError` lists every problem."""
        if isinstance(params, cls):
            return params
        if isinstance(params, (FeaturesConfig, ModelConfig)):
            params = params.params
        problems = _params_problems(params, cls, tuple(where.split(".")), None)
        if problems:
            raise _config_error(where, problems)
        return cls.model_validate(dict(params or {}))


class TaskConfig(_Section):
    """What is recognised: the input modality (``fusion`` combines several)."""

    modality: Modality


class DataConfig(_Section):
    """Which corpus to load and how.

    ``labels`` restricts the run to these canonical labels (``None``: every label of the
    corpus); ``options`` are passed as keyword options to the corpus loader.
    """

    corpus: str = Field(min_length=1)
    root: Path | None = None
    labels: list[str] | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _labels_distinct(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if len(v) < 2:
            raise ValueError("a classification run needs at least 2 labels")
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            raise ValueError(f"labels listed more than once: {', '.join(dupes)}")
        return v


class ProtocolConfig(_Section):
    """How items are split into train and test folds.

    ``k`` is used by ``emobox``/``speaker_kfold``/``random``; ``test_corpus`` only by
    ``cross_corpus`` (train on ``data.corpus``, test on ``test_corpus``). ``allow_leak`` lets a
    run go on although a speaker/dialogue crosses a split; leave it off for honest figures.
    """

    kind: ProtocolKind = "speaker_kfold"
    k: int = Field(default=5, ge=2, le=100)
    seed: int = Field(default=0, ge=0)
    test_corpus: str | None = None
    allow_leak: bool = False

    @model_validator(mode="after")
    def _test_corpus_matches_kind(self) -> ProtocolConfig:
        if self.kind == "cross_corpus" and not self.test_corpus:
            raise ValueError("kind 'cross_corpus' needs test_corpus (the corpus to test on)")
        if self.kind != "cross_corpus" and self.test_corpus:
            raise ValueError(f"test_corpus is only used by kind 'cross_corpus', not "
                             f"'{self.kind}'")
        return self


class FeaturesConfig(_Section):
    """Feature extractor by registry name and its keyword parameters."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Section):
    """Model by registry name and its keyword parameters."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Section):
    """Optimisation and hardware settings.

    ``val_fraction`` of each training fold is held out for early stopping (never the test fold).
    Every seed in ``seeds`` trains one model per fold; figures are reported over seeds.
    ``num_threads`` caps torch's CPU threads (``None``: torch's default).
    """

    max_epochs: int = Field(default=50, gt=0, le=100_000)
    batch_size: int = Field(default=32, gt=0)
    lr: float = Field(default=1e-3, gt=0, le=10)
    weight_decay: float = Field(default=0.0, ge=0)
    patience: int = Field(default=5, gt=0)
    val_fraction: float = Field(default=0.1, gt=0, lt=1)
    class_weighted: bool = True
    seeds: list[int] = Field(default_factory=lambda: [0])
    num_threads: int | None = Field(default=None, gt=0)
    deterministic: bool = True
    accelerator: Accelerator = "cpu"
    devices: Any = 1
    strategy: str = Field(default="auto", min_length=1)
    num_nodes: int = Field(default=1, ge=1, le=1024)

    def hardware(self) -> dict[str, Any]:
        """Lightning's hardware settings of this run, for :func:`emofuse.train.fit`."""
        return {"accelerator": self.accelerator, "devices": self.devices,
                "strategy": self.strategy, "num_nodes": self.num_nodes}

    @field_validator("seeds", mode="before")
    @classmethod
    def _seed_scalar(cls, v: Any) -> Any:
        return [v] if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("seeds")
    @classmethod
    def _seeds_ok(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        if any(s < 0 for s in v):
            raise ValueError("seeds must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("seeds listed more than once would repeat the same run")
        return v

    @field_validator("devices")
    @classmethod
    def _devices_ok(cls, v: Any) -> int | list[int] | str:
        def is_int(x: Any) -> bool:
            return isinstance(x, int) and not isinstance(x, bool)

        if (is_int(v) and v >= 1) or v == "auto":
            return v
        if isinstance(v, list) and v and all(is_int(d) and d >= 0 for d in v):
            return v
        raise ValueError(f"expected a device count >= 1, a non-empty list of device indices "
                         f"or 'auto', got {_got(v)}")


class CrossCorpusRef(_Section):
    """A committed benchmark result whose figures a model card quotes."""

    #: ``benchmarks/results/<suite>.json`` (relative to the working folder or the checkout)
    results: str = Field(min_length=1)
    #: metric names quoted (mean and per fold)
    metrics: list[str] = Field(min_length=1)
    #: the model the result must have measured: a key of its ``models`` (xcorpus-face: ``face``
    #: for the bundled one, else the folder it was given); None: the figures of a recipe
    #: (e.g. a leave-one-corpus-out suite), not of one model's weights
    model: str | None = None


class CardFacts(_Section):
    """What a model card states that its training run cannot know (``output.card``)."""

    training_corpora: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    #: what (weights, a corpus) -> its licence
    licences: dict[str, str] = Field(default_factory=dict)
    cross_corpus: list[CrossCorpusRef] = Field(default_factory=list)


class OutputConfig(_Section):
    """Where results, checkpoints and model cards go; ``card``: facts the card states."""

    dir: Path = Path("runs")
    card: CardFacts | None = None
    #: folder of ``emofuse bench``'s ``<suite>.json``/``.md`` for this config (None:
    #: ``benchmarks/results``; ``--results`` overrides it). A config that measures something
    #: other than the committed figures of its suite (another model, the validation part) sets
    #: its own, so that it cannot overwrite them.
    results: Path | None = None


class RunConfig(_Section):
    """Everything a run needs; see ``configs/example-tiny.yaml``."""

    suite: str = Field(default="default", min_length=1)
    task: TaskConfig
    data: DataConfig
    protocol: ProtocolConfig = Field(default_factory=ProtocolConfig)
    features: FeaturesConfig
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _cross_corpus_differs(self) -> RunConfig:
        p = self.protocol
        if p.kind == "cross_corpus" and p.test_corpus == self.data.corpus:
            raise ValueError(f"protocol.test_corpus equals data.corpus ({self.data.corpus!r}); "
                             "a cross-corpus run must test on another corpus")
        return self


# --------------------------------------------------------------------------------------------
# Loading and error reporting


#: a suite's parameter schemas: section name (``model``, ``features``) -> :class:`Params`
ParamSchemas = Mapping[str, "type[Params]"]


def load_config(path: str | Path, *, params: ParamSchemas | None = None) -> RunConfig:
    """Read and validate a run configuration (``params``: the suite's schemas of
    ``model.params`` / ``features.params``, checked too).

    Raises
    ------
    ConfigError
        Listing every problem found (missing file, YAML syntax, unknown keys, wrong types,
        values out of range), one per line, each with its location.
    """
    cfg, problems = _load(Path(path), params)
    if problems:
        raise _config_error(path, problems)
    assert cfg is not None
    return cfg


def explain_config_errors(path: str | Path, *, params: ParamSchemas | None = None) -> list[str]:
    """Problems in the configuration file ``path``, one line each; ``[]`` when it is valid."""
    return _load(Path(path), params)[1]


def parse_config(data: Any, *, source: str = "<config>",
                 params: ParamSchemas | None = None) -> RunConfig:
    """Validate an already parsed mapping (e.g. built in code); errors as :func:`load_config`."""
    cfg, problems = _validate(data, None, params)
    if problems:
        raise _config_error(source, problems)
    assert cfg is not None
    return cfg


def dump_config(cfg: RunConfig) -> str:
    """The configuration as YAML text that :func:`load_config` reads back to an equal object."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _config_error(source: str | Path, problems: list[str]) -> ConfigError:
    n = len(problems)
    head = f"{source}: {n} problem{'s' if n > 1 else ''} in the configuration"
    err = ConfigError("\n  - ".join([head, *problems]))
    err.problems = list(problems)  # type: ignore[attr-defined]
    return err


def _load(path: Path, params: ParamSchemas | None = None
          ) -> tuple[RunConfig | None, list[str]]:
    if not path.exists():
        return None, [f"{path}: file not found"]
    if not path.is_file():
        return None, [f"{path}: not a file"]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot be read ({exc})"]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, [_yaml_error(exc)]
    problems = _duplicate_keys(root)
    cfg, more = _validate(data, root, params)
    return (cfg if not problems else None), problems + more


def _yaml_error(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return f"YAML syntax error at {where}: {what}" + (f" ({context})" if context else "")


def _duplicate_keys(node: yaml.Node | None, loc: tuple[str, ...] = ()) -> list[str]:
    """YAML silently keeps the last of two equal keys; report them instead."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            key = str(k.value)
            if key in seen:
                out.append(f"{_dotted((*loc, key))} (line {k.start_mark.line + 1}): key given "
                           "twice; only the last value would be used")
            seen.add(key)
            out += _duplicate_keys(v, (*loc, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += _duplicate_keys(v, (*loc, str(i)))
    return out


def _validate(data: Any, root: yaml.Node | None, params: ParamSchemas | None = None
              ) -> tuple[RunConfig | None, list[str]]:
    if data is None:
        return None, ["the configuration is empty; it needs at least the sections task, data, "
                      "features and model"]
    if not isinstance(data, dict):
        return None, [f"the top level must be a mapping of sections, got "
                      f"{_type_name(data)}"]
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as exc:
        found = [_explain(e, root) for e in exc.errors(include_url=False)]
        return None, [text for _, text in sorted(found, key=lambda lt: lt[0] or 0)]
    problems: list[str] = []
    for section, schema in (params or {}).items():
        problems += _params_problems(getattr(cfg, section).params, schema,
                                     (section, "params"), root)
    return (None if problems else cfg), problems


def _params_problems(params: Any, schema: type[Params], prefix: tuple[str, ...],
                     root: yaml.Node | None) -> list[str]:
    """Problems of one ``params`` mapping against its schema, located like the sections'."""
    if params is not None and not isinstance(params, Mapping):
        return [f"{_dotted(prefix)}: expected a mapping of parameters, got {_got(params)}"]
    try:
        schema.model_validate(dict(params or {}))
    except ValidationError as exc:
        found = [_explain({**e, "loc": (*prefix, *e["loc"])}, root, schema, len(prefix))
                 for e in exc.errors(include_url=False)]
        return [text for _, text in sorted(found, key=lambda lt: lt[0] or 0)]
    return []


def _explain(err: dict[str, Any], root: yaml.Node | None, base: type[BaseModel] | None = None,
             skip: int = 0) -> tuple[int | None, str]:
    """One validation error as ``(yaml_line, "location (line N): explanation")``; ``base``
    is the schema at ``loc[skip:]`` (default: the whole :class:`RunConfig`)."""
    loc = tuple(str(x) for x in err["loc"])
    kind, msg, value = err["type"], err["msg"], err.get("input")
    if kind == "extra_forbidden":
        allowed = sorted(_fields_at(loc[skip:-1], base or RunConfig))
        hint = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
        text = f"unknown key {loc[-1]!r}"
        text += f"; did you mean {hint[0]!r}?" if hint else ""
        text += f" Allowed keys: {', '.join(allowed)}"
    elif kind == "missing":
        text = "required key is missing"
    elif kind == "value_error":
        text = msg.removeprefix("Value error, ")
    elif kind == "literal_error":
        choices = [c.strip(" '") for c in msg.removeprefix("Input should be ")
                   .replace(" or ", ", ").split(",")]
        hint = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        text = f"expected one of {', '.join(choices)}, got {_got(value)}"
        text += f"; did you mean {hint[0]!r}?" if hint else ""
    elif kind == "path_type":
        text = f"expected a file or folder path, got {_got(value)}"
    else:
        text = msg.replace("Input should be", "expected", 1) + f", got {_got(value)}"
    line = _line_of(root, loc)
    where = _dotted(loc) or "<top level>"
    return line, f"{where}{f' (line {line})' if line else ''}: {text}"


def _fields_at(loc: tuple[str, ...], model: type[BaseModel] = RunConfig) -> set[str]:
    """Names of the keys allowed in the section at ``loc`` (``()``: the top level of
    ``model``); walks fields, ``M | None``, ``dict[str, M]`` and ``list[M]``."""
    ann: Any = model
    parts = list(loc)
    while True:
        ann = _unwrap(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if not parts:
                return set(ann.model_fields)
            field = ann.model_fields.get(parts.pop(0))
            if field is None:
                return set()
            ann = field.annotation
        elif get_origin(ann) in (dict, list, tuple, Mapping, Sequence) and parts:
            parts.pop(0)                                # a key or an index
            ann = get_args(ann)[-1] if get_args(ann) else None
        else:
            return set()


def _unwrap(ann: Any) -> Any:
    """``M | None`` / ``Optional[M]`` -> ``M`` (the first model or container of a union)."""
    if get_origin(ann) in (Union, UnionType):
        for arg in get_args(ann):
            if (isinstance(arg, type) and issubclass(arg, BaseModel)) or get_origin(arg):
                return arg
        return None
    return ann


def _line_of(root: yaml.Node | None, loc: tuple[str, ...]) -> int | None:
    """1-based YAML line of the deepest node along ``loc`` that exists in the file."""
    node, line = root, None
    for part in loc:
        nxt = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == part:
                    line, nxt = k.start_mark.line + 1, v
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            nxt = node.value[int(part)]
            line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def _dotted(loc: tuple[str, ...]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":             # pydantic's marker of a bad mapping key
            continue
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "nothing (null)"}.get(
        type(value), type(value).__name__)


def _got(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        return _type_name(value)
    return f"{_type_name(value)} {value!r}"
