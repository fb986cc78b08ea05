"""Typed ``model.params`` of the speech recipe (``configs/ser-*.yaml``, ``emofuse train`` of a
speech config): the run's settings, an ensemble's members and weights, and each member's
training options (``fit``), grid and own feature.

A single model's config mixes the recipe keys below with the model's own constructor
parameters (``channels``, ``gamma``, ...); those stay an open mapping
(:attr:`SpeechParams.model_params`), checked by :func:`emofuse.models.build_model` when the
model is built. Every default equals the recipe's behaviour before the schemas existed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ..config import Params

__all__ = [
    "SETTINGS",
    "AugmentParams",
    "FeatureRef",
    "FitParams",
    "MemberParams",
    "ModelKeys",
    "Setting",
    "SpecAugmentParams",
    "SpeechParams",
    "settings_list",
]

#: A speech run's setting: nothing from the test speakers, or per-speaker standardisation.
Setting = Literal["inductive", "spknorm"]
#: Settings and the metric suffix each is reported under.
SETTINGS: dict[str, str] = {"inductive": "", "spknorm": "_spknorm"}


def settings_list(v: Any) -> Any:
    """One setting given as a string means a list of one (as the recipe always accepted)."""
    return [v] if isinstance(v, str) else v


class AugmentParams(Params):
    """Waveform augmentation of a network's training data: ``copies`` augmented copies of each
    training utterance, made once, with :class:`~emofuse.train.augment_audio.WaveAugment`'s
    transforms (same defaults; ``null`` turns a transform off)."""

    #: augmented copies of each training utterance (0: off)
    copies: int = Field(default=0, ge=0)
    #: range of the SNR (dB) of added white noise
    noise_snr_db: tuple[float, float] | None = (10.0, 30.0)
    #: range of the gain (dB)
    gain_db: tuple[float, float] | None = (-6.0, 6.0)
    #: range of the time-stretch rate
    stretch: tuple[float, float] | None = (0.9, 1.1)
    #: range of the pitch shift (semitones)
    pitch_semitones: tuple[float, float] | None = (-2.0, 2.0)
    #: probability of each transform
    p: float = Field(default=0.5, ge=0, le=1)

    def wave_params(self) -> dict[str, Any]:
        """The transforms' parameters as given (``copies`` left out), for ``WaveAugment``."""
        return self.model_dump(exclude_unset=True, exclude={"copies"})


class SpecAugmentParams(Params):
    """SpecAugment masks (:class:`~emofuse.train.augment_audio.SpecAugment`, same defaults)."""

    freq_masks: int = Field(default=2, ge=0)
    freq_width: int = Field(default=8, ge=0)
    time_masks: int = Field(default=2, ge=0)
    time_width: int = Field(default=20, ge=0)
    #: value of the masked entries (0: the mean of normalised features)
    value: float = 0.0


class FitParams(Params):
    """How one member is trained (``fit`` of a member, or of a single-model config)."""

    #: training crop length in seconds (waveform members)
    crop_s: float = Field(default=3.0, gt=0)
    #: longest stretch scored at once at test time; longer audio is scored in windows
    window_s: float = Field(default=6.0, gt=0)
    #: waveform augmentation (``null``: off)
    augment: AugmentParams | None = None
    #: SpecAugment on the mel bands (``null``: off)
    spec_augment: SpecAugmentParams | None = None
    #: mixup's Beta parameter (0: off)
    mixup: float = Field(default=0.0, ge=0)
    #: networks trained with different seeds and averaged
    n_models: int = Field(default=1, ge=1)
    #: after early stopping, train again on training + validation data for the best epochs
    refit: bool = False
    #: override of ``train.max_epochs`` for this member
    epochs: int | None = Field(default=None, ge=1)
    #: networks: trained on speaker-normalised input, or the inductive network's output
    #: log-probabilities standardised per speaker
    spknorm: Literal["input", "output"] = "input"
    #: classical members: speed-perturbation factors added as training copies
    speeds: list[float] = Field(default_factory=list)
    #: the settings this member takes part in (default: all of the run's)
    settings: list[Setting] | None = Field(default=None, min_length=1)

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_list(cls, v: Any) -> Any:
        return settings_list(v)

    @field_validator("speeds")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(s <= 0 for s in v):
            raise ValueError("speeds: positive speed factors")
        return v


class FeatureRef(Params):
    """A member's own vector feature; each part left out is the config's ``features``."""

    name: str | None = Field(default=None, min_length=1)
    #: the extractor's parameters (checked by the feature when it runs)
    params: dict[str, Any] | None = None


class MemberParams(Params):
    """One member of an ensemble."""

    #: registered speech model (``svm``, ``lda``, ``cnn2d``, ...)
    name: str = Field(min_length=1)
    #: the model's constructor parameters
    params: dict[str, Any] = Field(default_factory=dict)
    features: FeatureRef | None = None
    fit: FitParams = Field(default_factory=FitParams)
    #: classical members: hyper-parameter grid searched by speaker-grouped CV
    grid: dict[str, list[Any]] | None = None


class SpeechParams(Params):
    """``model.params`` of a speech config: an ensemble (``members``, ``weights``) or one
    model (its constructor parameters beside ``fit``, ``grid`` and ``features``)."""

    model_config = ConfigDict(extra="allow")

    #: settings to run and report
    settings: list[Setting] = Field(default_factory=lambda: ["inductive", "spknorm"],
                                    min_length=1)
    #: ensemble: its members
    members: list[MemberParams] | None = Field(default=None, min_length=1)
    #: ensemble: ``val`` (chosen on each training fold's validation part) or one per member
    weights: Literal["val"] | list[float] = "val"
    #: single model: training options
    fit: FitParams | None = None
    #: single model: hyper-parameter grid (classical models)
    grid: dict[str, list[Any]] | None = None
    #: single model: its own vector feature
    features: FeatureRef | None = None

    @field_validator("settings", mode="before")
    @classmethod
    def _settings_list(cls, v: Any) -> Any:
        return settings_list(v)

    @model_validator(mode="after")
    def _one_weight_per_member(self) -> SpeechParams:
        if isinstance(self.weights, list) and self.members is not None \
                and len(self.weights) != len(self.members):
            raise ValueError(f"weights: one weight per member ({len(self.members)} members, "
                             f"{len(self.weights)} weights)")
        return self

    @property
    def model_params(self) -> dict[str, Any]:
        """A single model's constructor parameters (the keys that are not the recipe's)."""
        return dict(self.model_extra or {})


class ModelKeys(Params):
    """The few model constructor parameters the recipe itself looks at; the others pass
    through to the model unread."""

    model_config = ConfigDict(extra="allow")

    #: waveform models' input normalisation (``speaker`` is the spknorm setting's)
    norm: Any = None
    #: classical models: the feature columns they read
    columns: list[Any] | None = None
