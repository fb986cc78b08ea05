"""Typed parameters of the text recipes: ``features.params`` of ``text_clean``, the
``model.params`` of the official-split suites (``ter-*``: systems compared on dev) and of the
cross-corpus suite and joint text model (``xcorpus-text``, ``configs/models/text-v2.yaml``).

Defaults are the recipes' own. Numbers keep the type they were written with (``C: 2`` stays an
integer): the run caches and the results' ``chosen`` entries hash and show what the config says.
A value written as a list is a grid (every value is tried; the recipe chooses on dev).
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (Field, PrivateAttr, TypeAdapter, ValidationError, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import core_schema

from ..config import Params
from ..labels import BASIC7, CANONICAL

__all__ = ["TextFeatureParams", "SystemSpec", "TextSuiteParams", "ModelParams",
           "LexiconRuleParams", "LexiconLRParams", "TfidfLRParams", "MLPParams",
           "FinetuneParams", "EnsembleParams", "GridSpec", "MLPSettings", "Targets",
           "JointParams", "MODEL_PARAMS", "SKLEARN", "TORCH", "CORPORA"]

SKLEARN = ("tfidf_lr", "lexicon_lr", "lexicon_rule")
TORCH = ("minilm_mlp", "minilm_finetune")
#: the corpora of the cross-corpus suite, in the order of its cells
CORPORA: tuple[str, ...] = ("dair", "meld", "goemotions")


# -- value types --------------------------------------------------------------------------------


class _AsWritten:
    """Annotation: a value checked by ``check`` and kept (and dumped) as written."""

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        return core_schema.no_info_plain_validator_function(
            self.check, serialization=core_schema.plain_serializer_function_ser_schema(
                lambda v: v))


def _number(what: str, ok: Callable[[float], bool], *, integer: bool = False) -> _AsWritten:
    """A number (an integer where ``integer``) for which ``ok`` holds, kept as written."""
    kinds = (int,) if integer else (int, float)

    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, kinds) or not ok(v):
            raise ValueError(f"expected {'an integer' if integer else 'a number'} {what}, "
                             f"got {v!r}")
        return v

    return _AsWritten(check)


def _grid(item: Any) -> _AsWritten:
    """One value of type ``item``, or a non-empty list of them (a grid)."""
    adapter = TypeAdapter(item)

    def check(v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                raise ValueError("an empty list: give a value or a list of values to try")
            return [adapter.validate_python(x) for x in v]
        return adapter.validate_python(v)

    return _AsWritten(check)


Positive = Annotated[float, _number("> 0", lambda v: v > 0)]
NonNegative = Annotated[float, _number(">= 0", lambda v: v >= 0)]
Unit = Annotated[float, _number("in 0..1", lambda v: 0 <= v <= 1)]
Dropout = Annotated[float, _number("in 0..1 (1 excluded)", lambda v: 0 <= v < 1)]
Count = Annotated[int, _number(">= 1", lambda v: v >= 1, integer=True)]
Width = Annotated[int, _number(">= 0", lambda v: v >= 0, integer=True)]
ClassWeight = Literal["balanced"] | None


# -- features -------------------------------------------------------------------------------------


class TextFeatureParams(Params):
    """``features.params`` of ``text_clean`` (a system's own ``features`` overrides the keys it
    gives). Field order is the order of the model card's ``features``."""

    urls: bool = True                 #: drop web addresses
    mentions: bool = True             #: @name -> @user, hashtags lose their #
    markup: bool = True               #: drop HTML tags and Markdown (links keep their text)
    emoji: Literal["words", "keep", "drop"] = "words"  #: emoji -> their names, kept or dropped
    #: drop training items labelled with an emotion but carrying no emotional cue
    filter_unemotional: bool = False
    #: MELD: previous utterances of the dialogue as context (never later ones)
    context_turns: int = Field(default=0, ge=0)
    context_speakers: bool = True     #: context lines as "Speaker: text"
    #: |VADER compound| counted as an emotional cue by the filter
    vader_threshold: Unit = 0.3

    def clean_options(self) -> dict[str, Any]:
        """The options of :func:`emofuse.features.text.clean_text`."""
        return self.model_dump(include={"urls", "mentions", "markup", "emoji"})

    def merged(self, override: TextFeatureParams | Mapping[str, Any] | None, *,
               where: str = "features") -> TextFeatureParams:
        """These options with the keys ``override`` gives (a system's ``features``)."""
        if override is None:
            return self
        given = TextFeatureParams.of(override, where=where).model_dump(exclude_unset=True)
        return self.model_copy(update=given)


# -- model parameters of the official-split suites ------------------------------------------------


class ModelParams(Params):
    """Parameters of one text model; a list value is a grid (chosen on dev)."""

    def given(self) -> dict[str, Any]:
        """The parameters the config gives (as written: the run caches hash them)."""
        return self.model_dump(exclude_unset=True)

    def points(self, *, first: bool = False) -> list[Self]:
        """Every combination of the grid's values (``first``: only the first value of each
        list: smoke runs), each as parameters of this model."""
        given = self.given()
        keys = [k for k, v in given.items() if isinstance(v, list)]
        combos = [tuple(given[k][0] for k in keys)] if first else \
            list(itertools.product(*(given[k] for k in keys)))
        return [type(self).model_validate({**given, **dict(zip(keys, c))}) for c in combos]


class LexiconRuleParams(ModelParams):
    """``lexicon_rule``: NRC emotion-word counts mapped onto the classes (no parameters)."""


class LexiconLRParams(ModelParams):
    """``lexicon_lr``: logistic regression on NRC rates and VADER scores."""

    C: Annotated[float | list[float], _grid(Positive)] = 1.0   #: inverse L2 penalty
    class_weight: Annotated[ClassWeight | list[ClassWeight], _grid(ClassWeight)] = None


class TfidfLRParams(ModelParams):
    """``tfidf_lr``: word and character n-gram TF-IDF, logistic regression."""

    C: Annotated[float | list[float], _grid(Positive)] = 4.0   #: inverse L2 penalty
    word_ngrams: tuple[int, int] = (1, 2)     #: word n-gram range (one pair, not a grid)
    char_ngrams: tuple[int, int] = (2, 5)     #: character n-gram range (one pair)
    min_df: Annotated[int | list[int], _grid(Count)] = 2        #: documents a term needs
    max_features: Annotated[int | list[int], _grid(Count)] = 300_000
    class_weight: Annotated[ClassWeight | list[ClassWeight], _grid(ClassWeight)] = None


#: training settings of the torch systems (the rest goes to the model's constructor)
_TRAINING = ("epochs", "batch_size", "patience", "max_minutes", "max_len", "monitor")


class _TorchParams(ModelParams):
    """Training settings shared by the torch systems; ``None``: the ``train`` section's."""

    epochs: Annotated[int | None | list[int], _grid(Count | None)] = None  #: train.max_epochs
    batch_size: Annotated[int | None | list[int], _grid(Count | None)] = None  #: train.batch_size
    patience: Annotated[int | None | list[int], _grid(Count | None)] = None  #: train.patience
    #: stop after this many minutes of training (CPU time); None: no budget
    max_minutes: Annotated[float | None | list[float], _grid(Positive | None)] = None
    max_len: Annotated[int | list[int], _grid(Count)] = 128    #: tokens per input
    monitor: Literal["val_loss", "val_acc"] = "val_loss"        #: early stopping on dev
    lr: Annotated[float | None | list[float], _grid(Positive | None)] = None  #: train.lr
    #: AdamW weight decay; None: train.weight_decay
    weight_decay: Annotated[float | None | list[float], _grid(NonNegative | None)] = None

    def model_kwargs(self, *, lr: float, weight_decay: float) -> dict[str, Any]:
        """Constructor parameters: those given, less the training settings, with ``lr`` and
        ``weight_decay`` (the ``train`` section's) where the config gives none."""
        kw = {k: v for k, v in self.given().items() if k not in _TRAINING}
        return {"lr": lr, "weight_decay": weight_decay, **kw}


class MLPParams(_TorchParams):
    """``minilm_mlp``: MLP head on frozen MiniLM embeddings."""

    hidden: Annotated[int | list[int], _grid(Width)] = 256     #: hidden width (0: linear)
    dropout: Annotated[float | list[float], _grid(Dropout)] = 0.2


class FinetuneParams(_TorchParams):
    """``minilm_finetune``: MiniLM fine-tuned end to end (optional context segment)."""

    head_lr: Annotated[float | list[float], _grid(Positive)] = 1e-3    #: the head's rate
    warmup: Annotated[float | list[float], _grid(Unit)] = 0.06  #: linear warm-up fraction
    dropout: Annotated[float | list[float], _grid(Dropout)] = 0.1
    freeze_embeddings: bool = True    #: keep the token embeddings fixed
    #: train only the top N transformer layers (None: all)
    train_layers: Annotated[int | None | list[int], _grid(Width | None)] = None
    bf16: bool = False                #: bfloat16 autocast of the encoder
    encoder_path: str | None = None   #: another MiniLM folder (default: the shipped one)


class EnsembleParams(ModelParams):
    """``ensemble``: weighted mean of other systems' probabilities, weights chosen on dev."""

    members: list[str] = Field(min_length=2)   #: names of the member systems


#: model name -> its parameter schema
MODEL_PARAMS: dict[str, type[ModelParams]] = {
    "tfidf_lr": TfidfLRParams, "lexicon_lr": LexiconLRParams, "lexicon_rule": LexiconRuleParams,
    "minilm_mlp": MLPParams, "minilm_finetune": FinetuneParams, "ensemble": EnsembleParams}

ModelName = Literal["tfidf_lr", "lexicon_lr", "lexicon_rule", "minilm_mlp", "minilm_finetune",
                    "ensemble"]


class SystemSpec(Params):
    """One system of a text suite: ``{model, params, features, seeds}``."""

    model: ModelName                          #: which model (its parameters follow)
    #: the model's parameters (its schema: :data:`MODEL_PARAMS`)
    params: ModelParams = Field(default=None, validate_default=True)  # type: ignore[assignment]
    #: pre-processing keys overriding ``features.params`` for this system
    features: TextFeatureParams | None = None
    seeds: list[int] | None = None            #: torch systems: seeds (default: train.seeds)

    @field_validator("params", mode="before")
    @classmethod
    def _typed(cls, v: Any, info: ValidationInfo) -> Any:
        if "model" not in info.data:        # an unknown model: reported on its own
            return ModelParams()
        schema = MODEL_PARAMS[info.data["model"]]
        if isinstance(v, schema):
            return v
        try:
            return schema.model_validate(v or {})
        except ValidationError as exc:     # name the model's keys for an unknown one
            raise ValidationError.from_exception_data(exc.title, [
                _known_keys(e, schema, info.data["model"]) for e in exc.errors()]) from None


def _known_keys(err: Any, schema: type[Params], model: str) -> Any:
    """An unknown-key error of ``model``'s parameters, naming its keys (others as they are)."""
    if err["type"] != "extra_forbidden":
        return err
    key, known = str(err["loc"][-1]), list(schema.model_fields)
    hint = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    text = (f"unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else ";")
            + f" {model} takes: {', '.join(known) or 'no parameters'}")
    return {"type": "value_error", "loc": err["loc"], "input": err["input"],
            "ctx": {"error": text}}


SelectMetric = Literal["accuracy", "ua", "wa", "macro_f1", "weighted_f1", "micro_f1",
                       "exact_match"]


class TextSuiteParams(Params):
    """``model.params`` of a text suite on an official split (``ter-*``); ``model.name`` is a
    system name or ``best_dev`` (the system with the best dev score)."""

    #: what best_dev and every grid maximise on dev (default: macro_f1 multi-label, else
    #: accuracy)
    select_metric: SelectMetric | None = None
    #: the system `emofuse train` saves (default: model.name)
    export: str | None = None
    systems: dict[str, SystemSpec] = Field(default_factory=dict)   #: name -> system

    @model_validator(mode="after")
    def _ensembles(self) -> Self:
        """An ensemble's members are systems fitted before it (non-ensembles, or ensembles
        listed earlier)."""
        known = {n for n, s in self.systems.items() if s.model != "ensemble"}
        for name, spec in self.systems.items():
            if isinstance(spec.params, EnsembleParams):
                if missing := [m for m in spec.params.members if m not in known]:
                    raise ValueError(f"system {name!r}: an ensemble needs >= 2 members among "
                                     f"the other systems (unknown: {', '.join(missing)})")
                known.add(name)
        return self


# -- cross-corpus suite and joint model -----------------------------------------------------------


class GridSpec(Params):
    """One block of the selection grid (``xcorpus-text``): a key's list is every value; the
    candidates are the combinations, in the order the keys are written."""

    head: Annotated[Any, _grid(Literal["lr", "mlp"])] = "lr"    #: logistic regression or MLP
    #: class weights count ** -p (0: none, 1: balanced)
    class_balance: Annotated[Any, _grid(Unit)] = 1.0
    #: equal: each corpus the same total weight (classes counted within each corpus)
    corpus_balance: Annotated[Any, _grid(Literal["none", "equal"])] = "none"
    C: Annotated[Any, _grid(Positive)] = 10.0           #: lr: inverse L2 penalty
    hidden: Annotated[Any, _grid(Width)] = 256          #: mlp: hidden width
    dropout: Annotated[Any, _grid(Dropout)] = 0.3       #: mlp: dropout
    weight_decay: Annotated[Any, _grid(NonNegative)] = 0.01   #: mlp: AdamW weight decay
    love: Annotated[Any, _grid(Literal["drop", "happy"])] = "drop"  #: dair love in training
    #: GoEmotions training rows: every label through its Ekman group, or namesakes only
    goemotions: Annotated[Any, _grid(Literal["ekman", "namesake"])] = "ekman"
    _order: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler: Any) -> Any:
        out = handler(data)
        if isinstance(data, Mapping):
            out._order = tuple(data)
        return out

    def combinations(self) -> list[dict[str, Any]]:
        """Every combination of the given keys' values, in the order they were written."""
        given = self.model_dump(exclude_unset=True)
        keys = [k for k in self._order if k in given] or list(given)
        values = [given[k] if isinstance(given[k], list) else [given[k]] for k in keys]
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


class MLPSettings(Params):
    """Training of the MLP head (``xcorpus-text``)."""

    epochs: Count = 40                # at most
    patience: Count = 5               # epochs without a better dev loss
    batch_size: Count = 256
    lr: Positive = 0.002              # AdamW learning rate


class Targets(Params):
    """Targets the result reports as met or not (absent: not reported)."""

    loco_macro_f1: Unit | None = None        #: LOCO mean macro-F1 at least
    loco_macro_f1_aim: Unit | None = None    #: the aim beyond the target
    ece_ts: Unit | None = None               #: worst ECE after temperature scaling at most
    meld_weighted_f1: Unit | None = None     #: joint model, MELD test weighted F1 at least

    def given(self) -> dict[str, float]:
        return self.model_dump(exclude_none=True)


class JointParams(Params):
    """``model.params`` of ``xcorpus-text`` and the joint text model (``model.name: joint``)."""

    #: corpora, each held out in turn (at least 3 distinct: nested LOCO)
    corpora: list[str] = Field(default_factory=lambda: list(CORPORA))
    #: corpus -> its root folder (default: the shared data)
    roots: dict[str, str | None] = Field(default_factory=dict)
    #: GoEmotions multi-label rows: kept when all labels share one Ekman group, or only
    #: one-label rows
    goemotions_multilabel: Literal["same_group", "single"] = "same_group"
    #: the selection grid: one block or a list of blocks (none: one default candidate)
    grid: list[GridSpec] = Field(default_factory=lambda: [GridSpec()])
    mlp: MLPSettings = Field(default_factory=MLPSettings)   #: training of the MLP head
    ece_bins: Count = 15                                     #: equal-width ECE bins
    targets: Targets = Field(default_factory=Targets)
    #: canonical labels the models predict (those present in training)
    labels: list[str] = Field(default_factory=lambda: list(BASIC7))
    #: an xcorpus-text result JSON whose LOCO figures the joint model's card copies
    xcorpus_results: str | None = None
    joint: bool = True                #: the suite also trains and scores the joint model

    @field_validator("grid", mode="before")
    @classmethod
    def _blocks(cls, v: Any) -> Any:
        return [v] if isinstance(v, Mapping) else ([{}] if v is None else v)

    @field_validator("corpora")
    @classmethod
    def _three(cls, v: list[str]) -> list[str]:
        if len(v) < 3 or len(set(v)) != len(v):
            raise ValueError("at least 3 distinct corpora (nested LOCO)")
        return v

    @field_validator("labels")
    @classmethod
    def _canonical(cls, v: list[str]) -> list[str]:
        if bad := [c for c in v if c not in CANONICAL]:
            raise ValueError(f"not canonical: {', '.join(bad)}")
        return v
