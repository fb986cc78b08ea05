"""Typed parameters of the fusion suites (``av-ravdess``, ``av-ravdess-whisper``,
``tri-synthetic``, ``av-clips``) and of the fusion recipe's ``train``.

Each schema is declared on its suite (``class AvRavdess(FusionSuite, params=...)``), so
``emofuse bench``, ``train`` and ``config validate`` check ``features.params`` /
``model.params`` with YAML lines; the recipes read them with ``.of(...)``.
:class:`LateFusionParams` (the bundled late fusion, not a benchmark) is checked by ``train``.
Every default is the one the code used before the schemas, so each committed configuration
behaves as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator, ValidationError, model_validator

from ..config import Params, TrainConfig
from ..media.limits import SPEECH_SR

__all__ = ["NoiseSpec", "AugmentSpec", "AVFeatureParams", "WhisperFeatureParams",
           "AttentionNetParams", "SvmSpec", "LinearSpec", "DecisionAverageSpec", "MlpSpec",
           "AttentionSpec", "IntermediateSpec", "MfaSpec", "EnsembleSpec", "CompareSpec",
           "AVModelParams", "LateFusionParams", "ReliabilityParams", "TriFeatureParams",
           "TriModelParams", "ClipsParams", "Setting", "SPECS"]

#: normalisation settings of the audio-visual suites (see ``_fusion_data.SETTINGS``)
Setting = Literal["inductive", "spknorm"]
PositiveInt = Annotated[int, Field(gt=0)]


def _one_or_more(kind: type | tuple[type, ...], what: str, *,
                 words: tuple[str, ...] = ()) -> PlainValidator:
    """A value that is one positive ``kind`` (or one of ``words``) or a non-empty list of them,
    kept as written (an integer C is reported back as an integer); one plain error otherwise."""

    def one(x: Any) -> bool:
        if isinstance(x, str):
            return x in words
        return isinstance(x, kind) and not isinstance(x, bool) and x > 0

    def check(v: Any) -> Any:
        if (one(v) if not isinstance(v, list) else v and all(one(x) for x in v)):
            return v
        raise ValueError(f"expected {what}, or a non-empty list of them")

    return PlainValidator(check)


#: C of an SVM / logistic regression; a list: chosen by speaker-grouped inner CV
Cs = Annotated[float | list[float], _one_or_more((int, float), "a positive number")]
#: RBF kernel width(s)
Gammas = Annotated[float | str | list[float | str],
                   _one_or_more((int, float), "a positive number, 'scale' or 'auto'",
                                words=("scale", "auto"))]


# --------------------------------------------------------------------------------------------
# features.params


class NoiseSpec(Params):
    """White noise mixed into the audio (a test condition or a training copy)."""

    snr_db: float                   #: signal-to-noise ratio over the whole clip (dB)
    seed: int = Field(default=0, ge=0)   #: with the clip's content hash: the noise drawn

    def settings(self) -> dict[str, Any]:
        """The noise part of a feature-cache key (as written before the schemas)."""
        return {"kind": "white", "snr_db": float(self.snr_db), "seed": int(self.seed)}


class AugmentSpec(Params):
    """Noisy copies of the training clips (multi-condition training)."""

    snr_db: list[float] = Field(default_factory=list)   #: one copy per SNR (dB); [] = none
    seed: int = Field(default=1, ge=0)                   #: noise seed of the copies

    def noises(self) -> list[NoiseSpec]:
        return [NoiseSpec(snr_db=s, seed=self.seed) for s in self.snr_db]


def _default_modalities() -> dict[str, list[str]]:
    return {"audio": ["egemaps"], "face": ["openface_au"]}


class AVFeatureParams(Params):
    """``features.params`` of the audio-visual suites: clip-level feature blocks per modality
    (``openface_au``: the corpus' OpenFace AU table; any other name: a registered speech
    feature of the record's audio)."""

    #: modality -> its feature blocks, e.g. ``{audio: [egemaps], face: [openface_au]}``
    modalities: dict[str, Annotated[list[str], Field(min_length=1)]] = Field(
        default_factory=_default_modalities, min_length=1)
    #: block -> keyword parameters of that feature (checked by the feature itself)
    block_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    sr: PositiveInt = SPEECH_SR                 #: sample rate the audio is read at
    noise: NoiseSpec | None = None          #: the noisy-audio test condition (none: not run)
    augment: AugmentSpec | None = None      #: noisy copies of the training clips
    #: speaker normalisation of noisy copies: ``own`` statistics or the ``clean`` clips'
    spknorm_reference: Literal["own", "clean"] = "own"
    #: settings run (every one by default)
    settings: list[Setting] = Field(default_factory=lambda: ["inductive", "spknorm"],
                                    min_length=1)

    def block_kwargs(self) -> dict[str, dict[str, Any]]:
        """``block_params`` as the feature extractors (and their cache keys) take them."""
        return {b: dict(p) for b, p in self.block_params.items()}


class WhisperOptions(Params):
    """Parameters of the ``whisper`` feature block this suite uses (canonical meanstd vector)."""

    layers: list[int] = Field(default_factory=lambda: [3], min_length=1)  #: encoder blocks
    pooling: Literal["meanstd"] = "meanstd"          #: mean and std over frames
    padding: Literal["clip", "30s"] = "clip"         #: the whisper feature's padding


class WhisperBlocks(Params):
    """``block_params`` of ``av-ravdess-whisper``: only the whisper block takes parameters."""

    whisper: WhisperOptions = Field(default_factory=WhisperOptions)


class WhisperFeatureParams(AVFeatureParams):
    """``features.params`` of ``av-ravdess-whisper`` (``block_params.whisper`` typed)."""

    block_params: WhisperBlocks = Field(default_factory=WhisperBlocks)  # type: ignore[assignment]

    def block_kwargs(self) -> dict[str, dict[str, Any]]:
        return self.block_params.model_dump(exclude_unset=True)   # the cache keys as before


# --------------------------------------------------------------------------------------------
# model.params of av-ravdess: the attention fusion and the compared models


class _Spec(Params):
    """Keys every compared model takes."""

    #: whether the model's result depends on the seed (else it runs with the first seed only)
    stochastic: ClassVar[bool] = False

    #: seeds run for a stochastic model (at most this many of ``train.seeds``; all when unset)
    n_seeds: PositiveInt | None = None

    def uses(self, configured: list[str]) -> list[str]:
        """The modalities this model uses (all configured ones unless it names some)."""
        return list(configured)


class _ModsSpec(_Spec):
    modalities: list[str] | None = Field(default=None, min_length=1)   #: default: all

    def uses(self, configured: list[str]) -> list[str]:
        return list(self.modalities or configured)


class _ModalitySpec(_ModsSpec):
    #: feature blocks used (default: every block of its modalities)
    blocks: list[str] | None = Field(default=None, min_length=1)


class _TrainOverrides(Params):
    """Training settings of a network; unset ones come from the ``train`` section."""

    max_epochs: PositiveInt | None = None
    patience: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    lr: float | None = Field(default=None, gt=0)
    weight_decay: float | None = Field(default=None, ge=0)   #: AdamW's decoupled decay
    l2: float = Field(default=0.0, ge=0)      #: ridge penalty on the weights, in the loss
    early_stopping: bool = True               #: off: fixed epochs, validation only monitored

    def train_kwargs(self, tcfg: TrainConfig) -> dict[str, Any]:
        """Keyword arguments of :func:`emofuse.fusion.train_net` (``tcfg``: the run's
        ``train`` section)."""
        keys = ("max_epochs", "patience", "batch_size", "lr", "weight_decay")
        own = {k: getattr(self, k) for k in keys}
        return {**{k: getattr(tcfg, k) if own[k] is None else own[k] for k in keys},
                "class_weighted": tcfg.class_weighted, "num_threads": tcfg.num_threads or 1,
                "l2": self.l2, "early_stopping": self.early_stopping}


class AttentionNetParams(Params):
    """:class:`~emofuse.fusion.AttentionFusion`'s settings (its defaults)."""

    dim: PositiveInt = 64                  #: common embedding size
    hidden: int = Field(default=256, ge=0)   #: encoder hidden width (0: a linear projection)
    head_hidden: int | None = Field(default=None, ge=0)   #: classifier hidden width
    dropout: float = Field(default=0.3, ge=0, lt=1)
    input_dropout: float = Field(default=0.1, ge=0, lt=1)
    attn_hidden: PositiveInt = 32            #: scorer hidden width
    aux_weight: float = Field(default=0.5, ge=0)   #: weight of the unimodal auxiliary heads
    fuse: Literal["sum", "concat"] = "sum"   #: how the weighted embeddings are combined
    norm: Literal["layer", "batch", "none"] = "layer"   #: embedding normalisation

    def net_kwargs(self) -> dict[str, Any]:
        return self.model_dump(include=set(AttentionNetParams.model_fields))


class _NetSpec(_ModalitySpec, _TrainOverrides):
    stochastic: ClassVar[bool] = True

    augment_p: float = Field(default=0.0, ge=0, le=1)   #: share of items with noisy audio
    modality_dropout: float = Field(default=0.0, ge=0, lt=1)   #: drop a modality in training
    n_ensemble: PositiveInt = 1   #: nets per fold (seeds s, s + 1000, ...), outputs averaged


class _Classical(_ModalitySpec):
    balance_blocks: bool = False   #: scale each block by 1/sqrt(width) (RBF distances)
    block_scale: dict[str, float] | None = None   #: block -> factor (less ridge shrinkage)
    augment: bool = False          #: also fit on one noisy-audio copy of each clip


class SvmSpec(_Classical):
    """RBF-SVM on the concatenated blocks (several C/gamma: speaker-grouped inner CV)."""

    kind: Literal["svm"]
    C: Cs = 1.0
    gamma: Gammas = "scale"
    probability: bool = False      #: Platt scaling (calibrated probabilities)


class LinearSpec(_Classical):
    """Logistic regression on the concatenated blocks."""

    kind: Literal["linear"]
    C: Cs = 0.01


class DecisionAverageSpec(_ModsSpec):
    """One RBF-SVM per modality, probabilities averaged over the present ones."""

    kind: Literal["decision_average"]
    C: Cs = 1.0
    gamma: Gammas = "scale"


class MlpSpec(AttentionNetParams, _NetSpec):
    """The attention network's encoders and head without ``fuse`` (reported as ``mlp``)."""

    kind: Literal["mlp"]
    fuse: Literal["sum"] = "sum"


class _AttentionFields(AttentionNetParams, _NetSpec):
    pass


class AttentionSpec(_AttentionFields):
    """The attention fusion, tested under every condition."""

    kind: Literal["attention"]


class IntermediateSpec(_NetSpec):
    """:class:`~emofuse.fusion.IntermediateFusion` (concatenated encoder outputs)."""

    kind: Literal["intermediate"]
    enc_hidden: PositiveInt = 128
    hidden: Annotated[int | list[int], _one_or_more(int, "a positive width")] = Field(
        default_factory=lambda: [128])   #: widths of the layers after the concatenation
    dropout: float = Field(default=0.3, ge=0, lt=1)
    input_dropout: float = Field(default=0.1, ge=0, lt=1)
    aux_weights: dict[str, float] | None = None   #: modality -> unimodal loss weight

    def net_kwargs(self) -> dict[str, Any]:
        hidden = tuple(self.hidden) if isinstance(self.hidden, list) else (self.hidden,)
        return {"enc_hidden": self.enc_hidden, "hidden": hidden, "dropout": self.dropout,
                "input_dropout": self.input_dropout, "aux_weights": self.aux_weights}


class MfaSpec(_ModsSpec, _TrainOverrides):
    """Marginal Fisher analysis of the modalities, then a classifier."""

    kind: Literal["mfa"]
    stochastic: ClassVar[bool] = True
    size: PositiveInt = 32            #: PCA size of each modality
    n_components: PositiveInt = 32
    k1: PositiveInt = 5
    k2: PositiveInt = 20
    reg: float = Field(default=1e-3, ge=0)
    #: ``svm`` or a registered model (``fercnn``) trained as a network
    classifier: str = Field(default="fercnn", min_length=1)
    classifier_params: dict[str, Any] = Field(default_factory=dict)   #: the model's own
    C: Cs = 1.0                       #: classifier ``svm`` only


def _weights(v: Any) -> Any:
    if v is None or v == "validation" or (isinstance(v, list) and v and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in v)):
        return v
    raise ValueError("expected a list of member weights (numbers >= 0) or 'validation'")


class EnsembleSpec(_Spec):
    """Average of models run before it (nothing fitted on test folds)."""

    kind: Literal["ensemble"]
    stochastic: ClassVar[bool] = True
    members: list[str] = Field(min_length=1)
    #: fixed weights (one a member), or ``validation``: chosen on validation actors
    weights: Annotated[list[float] | str | None, PlainValidator(_weights)] = None
    subset_experts: bool = False   #: a member votes only on its exact modality subset
    average_seeds: bool = False    #: average each member over its seeds first
    val_fraction: float = Field(default=0.2, gt=0, lt=1)   #: ``validation``: held-out actors
    max_steps: PositiveInt = 12    #: ``validation``: greedy selection steps
    experts: dict[str, float] = Field(default_factory=dict)   #: model -> factor (missing only)
    note: str = ""                 #: shown in the notes

    @model_validator(mode="after")
    def _experts_need_subsets(self) -> EnsembleSpec:
        if self.experts and not self.subset_experts:
            raise ValueError("experts needs subset_experts: true")
        return self


#: ``compare`` kind -> its schema
SPECS: dict[str, type[_Spec]] = {
    "svm": SvmSpec, "linear": LinearSpec, "decision_average": DecisionAverageSpec,
    "mlp": MlpSpec, "mfa": MfaSpec, "intermediate": IntermediateSpec,
    "attention": AttentionSpec, "ensemble": EnsembleSpec}


def _compare_spec(value: Any) -> Any:
    """A ``compare`` entry as the schema of its ``kind`` (errors located inside the entry,
    without the kind in their path)."""
    if isinstance(value, _Spec):
        return value
    if not isinstance(value, Mapping):
        raise ValueError("expected a mapping of the model's parameters (with its kind)")
    kind = value["kind"] if "kind" in value else None
    if kind not in SPECS:
        err = {"type": "missing", "loc": ("kind",), "input": value} if kind is None else {
            "type": "literal_error", "loc": ("kind",), "input": kind,
            "ctx": {"expected": ", ".join(f"'{k}'" for k in SPECS)}}
        raise ValidationError.from_exception_data("compare", [err])   # type: ignore[list-item]
    schema = SPECS[kind]
    try:
        return schema.model_validate(dict(value))
    except ValidationError as exc:   # name the allowed keys of this kind (config can't see them)
        errors = [_unknown_key(e, schema) if e["type"] == "extra_forbidden" and len(e["loc"]) == 1
                  else e for e in exc.errors(include_url=False)]
        raise ValidationError.from_exception_data("compare", errors) from None  # type: ignore


def _unknown_key(err: Any, schema: type[Params]) -> Any:
    import difflib

    key, allowed = str(err["loc"][0]), sorted(schema.model_fields)
    hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    text = f"unknown key {key!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
    return {"type": "value_error", "loc": err["loc"], "input": err["input"],
            "ctx": {"error": ValueError(f"{text} Allowed keys: {', '.join(allowed)}")}}


#: one ``model.params.compare`` entry, typed by its ``kind``
CompareSpec = Annotated[
    SvmSpec | LinearSpec | DecisionAverageSpec | MlpSpec | MfaSpec | IntermediateSpec
    | AttentionSpec | EnsembleSpec, PlainValidator(_compare_spec)]


class AVModelParams(_AttentionFields):
    """``model.params`` of ``av-ravdess`` (and the fusion recipe's ``train``): the attention
    fusion, and the models compared with it."""

    compare: dict[str, CompareSpec] = Field(default_factory=dict)   #: name -> model

    @model_validator(mode="before")
    @classmethod
    def _no_late_fusion_keys(cls, v: Any) -> Any:
        if isinstance(v, Mapping) and {"weights", "note"} & set(v):
            raise ValueError("weights / note belong to a late_fusion model (model.name "
                             "late_fusion: LateFusionParams), not to attention_fusion")
        return v

    def attention(self) -> AttentionSpec:
        """The main model as a compared one (kind ``attention``)."""
        fields = set(_AttentionFields.model_fields)
        return AttentionSpec.model_validate({"kind": "attention",
                                             **self.model_dump(include=fields)})


class LateFusionParams(Params):
    """``model.params`` of a ``late_fusion`` model (``emofuse train``,
    ``configs/models/fusion.yaml``): fixed weights, nothing is fitted."""

    weights: dict[str, float] = Field(min_length=1)   #: modality -> its fixed weight
    note: str = ""                                    #: written into the card's ``data``


# --------------------------------------------------------------------------------------------
# model.params of av-ravdess-whisper


class WhisperAudioMember(Params):
    """The audio member: logistic regression on one Whisper block set."""

    #: candidate block sets, chosen on inner folds
    layers: list[Annotated[list[int], Field(min_length=1)]] = Field(
        default_factory=lambda: [[3], [3, 4], [2, 3, 4]], min_length=1)
    C: float = Field(default=0.03, gt=0)
    multicondition: bool = True    #: each training clip once more with noisy audio
    max_iter: PositiveInt = 2000


class WhisperFaceMember(Params):
    """The face member: logistic regression on the AU means (C chosen on inner folds)."""

    C: Cs = Field(default_factory=lambda: [0.01, 0.1, 1.0])
    max_iter: PositiveInt = 2000

    def candidates(self) -> list[float]:
        return [float(c) for c in (self.C if isinstance(self.C, list) else [self.C])]


class GateParams(Params):
    """The reliability gate (:class:`~emofuse.fusion.reliability.ReliabilityGate`)."""

    signals: list[Literal["entropy", "max_prob", "snr", "present"]] = Field(
        default_factory=lambda: ["entropy", "max_prob", "snr", "present"])
    l2: float = Field(default=0.01, ge=0)
    #: out-of-fold conditions the gate is fitted on
    train_conditions: list[Literal["clean", "augment", "audio_missing", "face_missing"]] = \
        Field(default_factory=lambda: ["clean", "augment", "audio_missing", "face_missing"],
              min_length=1)


class WhisperTargets(Params):
    """The suite's targets (UA shares)."""

    fused_ua: float = Field(default=0.80, ge=0, le=1)
    fused_ua_spknorm: float = Field(default=0.90, ge=0, le=1)
    missing_tolerance: float = Field(default=0.01, ge=0, le=1)


class ReliabilityParams(Params):
    """``model.params`` of ``av-ravdess-whisper``."""

    audio: WhisperAudioMember = Field(default_factory=WhisperAudioMember)
    face: WhisperFaceMember = Field(default_factory=WhisperFaceMember)
    inner_folds: int = Field(default=5, ge=2)   #: actor groups of the out-of-fold outputs
    gate: GateParams = Field(default_factory=GateParams)
    targets: WhisperTargets = Field(default_factory=WhisperTargets)


# --------------------------------------------------------------------------------------------
# tri-synthetic and av-clips


class _Pool(Params):
    corpus: str = Field(min_length=1)
    root: str | None = None                    #: corpus folder (default: the shared data)
    train_per_class: int | None = Field(default=None, ge=0)   #: cap (none or 0: all)
    val_per_class: int | None = Field(default=None, ge=0)
    test_per_class: int | None = Field(default=None, ge=0)
    seed: int = Field(default=0, ge=0)          #: of the capped draws

    def caps(self) -> dict[str, int | None]:
        return {"train": self.train_per_class, "val": self.val_per_class,
                "test": self.test_per_class}


class FacePool(_Pool):
    """FER2013 images (official usages)."""

    corpus: str = Field(default="fer2013", min_length=1)
    train_per_class: int | None = Field(default=700, ge=0)
    val_per_class: int | None = Field(default=150, ge=0)


class TextPool(_Pool):
    """MELD utterances (official splits)."""

    corpus: str = Field(default="meld", min_length=1)


class Pairing(Params):
    """Synthetic triples drawn per class, and the validation actors' share."""

    train_per_class: PositiveInt = 1000
    val_per_class: PositiveInt = 200
    test_per_class: PositiveInt = 400
    val_fraction: float = Field(default=0.15, gt=0, lt=1)


class TriFeatureParams(Params):
    """``features.params`` of ``tri-synthetic``."""

    audio: list[str] = Field(default_factory=lambda: ["egemaps", "lld_stats"], min_length=1)
    sr: PositiveInt = SPEECH_SR
    face: FacePool = Field(default_factory=FacePool)
    text: TextPool = Field(default_factory=TextPool)
    pairing: Pairing = Field(default_factory=Pairing)


class TriModelParams(AttentionNetParams, _TrainOverrides):
    """``model.params`` of ``tri-synthetic``: the three-way attention fusion."""

    modality_dropout: float = Field(default=0.3, ge=0, lt=1)
    #: C candidates of the unimodal and early-concatenation logistic regressions
    unimodal_C: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0], min_length=1)


class ClipsParams(Params):
    """``model.params`` of ``av-clips``."""

    models: list[str] = Field(default_factory=lambda: ["default"], min_length=1)  #: Recognizer
