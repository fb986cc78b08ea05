"""What predictors take and return: inputs (:class:`Waveform`), one modality's output
(:class:`ModalityOutput`), the typed results of :class:`~emofuse.inference.Recognizer`
(:class:`Prediction`, :class:`Face`, :class:`Segment`), the errors and the constants."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, Field

from ..errors import EmofuseError, MediaError
from ..media.limits import SPEECH_SR

__all__ = ["Kind", "Face", "Segment", "Prediction", "PredictionFailure", "Waveform",
           "ModalityOutput", "UnsupportedMediaError", "NoFaceError", "ModelUnavailableError",
           "MODALITIES", "BUNDLED_NAMES", "KIND_MODALITIES", "MEDIA_EXTENSIONS", "SR",
           "probs_dict"]

Kind = Literal["audio", "video", "image", "text"]
#: Sample rate that audio is read at for the speech models (a card's ``sr`` may differ: the
#: speech predictor resamples to it).
SR = SPEECH_SR
#: Modalities that a single model recognises from.
MODALITIES: tuple[str, ...] = ("speech", "face", "text")
#: Names of the models shipped in the package (``default`` loads every one present).
BUNDLED_NAMES: tuple[str, ...] = ("speech", "face", "text", "fusion")
#: The modalities each kind of input feeds.
KIND_MODALITIES: dict[str, tuple[str, ...]] = {
    "audio": ("speech",), "video": ("face", "speech"), "image": ("face",), "text": ("text",)}
#: File name endings taken as each kind (used to walk folders and to notice lying names).
MEDIA_EXTENSIONS: dict[str, frozenset[str]] = {
    "audio": frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac",
                        ".aif", ".aiff", ".wma"}),
    "video": frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".mpg",
                        ".mpeg", ".wmv", ".3gp"}),
    "image": frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                        ".pgm", ".ppm"}),
    "text": frozenset({".txt", ".text"}),
}


# -- errors -------------------------------------------------------------------------------------


class UnsupportedMediaError(MediaError):
    """A file is none of audio, video, image or text, or its content contradicts its name."""


class NoFaceError(MediaError):
    """An image (or a silent video) in which no face was found."""


class ModelUnavailableError(EmofuseError):
    """No model is loaded (or installed) for the modality an input needs."""


# -- results ------------------------------------------------------------------------------------


class Face(BaseModel):
    """One detected face: its box in the input's pixels and its expression probabilities."""

    box: tuple[int, int, int, int] = Field(description="x, y, width, height in pixels")
    score: float | None = Field(None, description="detector confidence")
    time: float | None = Field(None, description="seconds into a video")
    label: str
    probabilities: dict[str, float]


class Segment(BaseModel):
    """One step of a timeline: a speech segment or a sampled video frame."""

    start: float
    end: float
    modality: str
    label: str
    confidence: float
    probabilities: dict[str, float]


class Prediction(BaseModel):
    """What :meth:`Recognizer.predict` returns.

    ``probabilities`` are the fused ones (sorted, most likely first); ``modalities`` holds each
    modality's own probabilities and ``weights`` the share each had in the fusion.
    """

    source: str
    kind: Kind
    label: str
    confidence: float
    probabilities: dict[str, float]
    modalities: dict[str, dict[str, float]] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    models: dict[str, str] = Field(default_factory=dict, description="modality -> model name")
    faces: list[Face] = Field(default_factory=list)
    timeline: list[Segment] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    reliable: bool = Field(True, description="false when the input carries no usable signal "
                                             "(no speech, no letters, a tiny or blurred face)")
    duration_s: float | None = Field(None, description="length of audio or video")
    seconds: float = Field(0.0, description="processing time")

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most likely labels with their probabilities."""
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]


class PredictionFailure(BaseModel):
    """An input of a batch that could not be predicted, and why."""

    source: str
    error: str
    error_type: str


# -- predictor input and output -----------------------------------------------------------------


class Waveform(NamedTuple):
    """Mono float32 audio and its sample rate (the input of a speech predictor)."""

    y: np.ndarray
    sr: int


@dataclass
class ModalityOutput:
    """What a modality predictor returns for one input.

    ``probabilities`` is ``None`` when there was nothing to recognise (no face in the image);
    ``faces`` lists the faces found (face modality).
    """

    probabilities: np.ndarray | None
    faces: list[Face] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def probs_dict(labels: list[str], p: np.ndarray, *, digits: int = 6) -> dict[str, float]:
    """``{label: probability}`` rounded to ``digits``."""
    return {str(k): round(float(v), digits) for k, v in zip(labels, p)}


def face_of(labels: list[str], p: np.ndarray, box: tuple[int, int, int, int], *,
            score: float | None = None) -> Face:
    """A :class:`Face` at ``box`` with probabilities ``p`` over ``labels``."""
    return Face(box=box, score=score, label=labels[int(np.argmax(p))],
                probabilities=probs_dict(labels, p))
