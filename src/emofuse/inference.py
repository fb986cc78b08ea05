"""Predicting emotions with trained models: :class:`Recognizer` and its typed results.

>>> from emofuse import Recognizer
>>> rec = Recognizer.load("default")                      # bundled speech, face, text, fusion
>>> p = rec.predict("examples/video.mp4")                 # doctest: +SKIP
>>> p.label, p.probabilities, p.modalities, p.weights, p.faces, p.warnings   # doctest: +SKIP
>>> rec.predict("What a lovely surprise!")                # text            # doctest: +SKIP
>>> rec.predict(waveform, sr=16000)                       # audio array     # doctest: +SKIP
>>> rec.predict_batch(["a.wav", "b.jpg", "broken.mp4"])   # per-item errors # doctest: +SKIP

What a file holds is decided from its content, not its name (:func:`detect_kind`): audio
goes to the speech model, an image to the face model, a video to both (faces on sampled
frames, speech on the sound track) and text to the text model; several modalities are joined
by the fusion model, or by a weighted average of their probabilities when there is none.

Models are folders written by :func:`emofuse.train.save_model` (``model.safetensors`` +
``card.json``). The card's ``task`` names the modality; an adapter registered under the card's
``predictor`` (else under the task's name) loads it and turns it into a
:class:`ModalityPredictor` (speech, face, text) or a :class:`FusionPredictor`. The adapters of
the modality recognisers (:class:`~emofuse.speech.SpeechPredictor`,
:class:`~emofuse.text.TextPredictor`, the face recipe's network behind
:mod:`emofuse.media.faces`) and two generic ones (``torch-feature``: a registered feature
extractor + a registered torch model; ``late-fusion``: learned modality weights) live in
:mod:`emofuse.adapters`. For ONNX export a predictor exposes ``module`` (a
``torch.nn.Module`` from model input to logits) and ``example_input()`` (a batch of input).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field

from ._plugins import Registry
from .errors import DataError, EmofuseError, MediaError

__all__ = [
    "Recognizer", "Prediction", "PredictionFailure", "Face", "Segment", "ModelInfo",
    "PredictOptions", "ModalityOutput", "ModalityPredictor", "FusionPredictor", "Waveform",
    "register_adapter", "list_adapters", "load_predictor",
    "detect_kind", "late_fusion", "bundled_dir", "resolve_models", "model_path",
    "UnsupportedMediaError", "NoFaceError", "ModelUnavailableError",
    "MODALITIES", "BUNDLED_NAMES", "KIND_MODALITIES", "MEDIA_EXTENSIONS",
]

Kind = Literal["audio", "video", "image", "text"]
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
_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "PPM", "MPO")


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


# -- adapter interface --------------------------------------------------------------------------


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


@runtime_checkable
class ModalityPredictor(Protocol):
    """A loaded model of one modality.

    ``predict`` takes a :class:`Waveform` (speech), an RGB ``uint8`` array (face) or a string
    (text).
    """

    modality: str
    labels: list[str]
    card: dict[str, Any]

    def predict(self, x: Any) -> ModalityOutput: ...


@runtime_checkable
class FusionPredictor(Protocol):
    """A loaded fusion model: joins per-modality probabilities into one distribution."""

    labels: list[str]
    card: dict[str, Any]

    def fuse(self, probabilities: Mapping[str, Mapping[str, float]]
             ) -> tuple[dict[str, float], dict[str, float]]: ...


Loader = Callable[[Path, dict[str, Any]], Any]
#: adapter name (a card's ``predictor``, else its task) -> loader
_ADAPTERS: Registry[Loader] = Registry("predictor")


def register_adapter(name: str) -> Callable[[Loader], Loader]:
    """Register ``loader(model_dir, card) -> predictor`` under ``name`` (a card's ``predictor``).

    A class with a ``load(model_dir, card)`` classmethod may be registered directly.
    """

    def deco(obj: Any) -> Any:
        _ADAPTERS.register(name, obj.load if isinstance(obj, type) else obj)
        return obj

    return deco


def list_adapters() -> list[str]:
    """Names of the registered adapters."""
    _builtin_adapters()
    return _ADAPTERS.names()


def _builtin_adapters() -> None:
    from . import adapters  # noqa: F401  (registers the built-in adapters)


def load_predictor(info: ModelInfo) -> Any:
    """Load the model of ``info`` with its adapter (the card's ``predictor``, else its task)."""
    _builtin_adapters()
    name = info.card.get("predictor") or info.modality
    loader = _ADAPTERS.get(name, None)
    if loader is None:
        raise DataError(info.path / "card.json", f"unknown predictor {name!r}; known: "
                        f"{', '.join(_ADAPTERS.names())}")
    return loader(info.path, info.card)


def late_fusion(probabilities: Mapping[str, Mapping[str, float]], *,
                weights: Mapping[str, float] | None = None
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Weighted average of per-modality distributions over the union of their labels.

    ``weights`` default to equal; they are renormalised over the modalities present.
    Returns ``(fused probabilities, weights used)``.
    """
    from .labels import CANONICAL

    mods = list(probabilities)
    if not mods:
        raise EmofuseError("nothing to fuse: no modality gave probabilities")
    raw = {m: max(float((weights or {}).get(m, 1.0 if weights is None else 0.0)), 0.0)
           for m in mods}
    total = sum(raw.values())
    w = {m: (raw[m] / total if total > 0 else 1.0 / len(mods)) for m in mods}
    union = {k for m in mods for k in probabilities[m]}
    labels = [c for c in CANONICAL if c in union] + sorted(union - set(CANONICAL))
    fused = {k: sum(w[m] * float(probabilities[m].get(k, 0.0)) for m in mods) for k in labels}
    s = sum(fused.values()) or 1.0
    return {k: v / s for k, v in fused.items()}, w


# -- models on disk -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """A model folder and what its card says."""

    name: str
    modality: str
    path: Path
    card: dict[str, Any] = field(compare=False, repr=False)

    def describe(self) -> dict[str, Any]:
        """Public facts of the model (for ``GET /models`` and ``--json``)."""
        c = self.card
        keys = ("labels", "data", "protocol", "metrics", "features", "licence", "license",
                "figures", "description", "created", "emofuse_version", "num_parameters")
        return {"name": self.name, "modality": self.modality,
                **{k: c[k] for k in keys if k in c}}


def bundled_dir() -> Path:
    """Folder of the bundled models: ``$EMOFUSE_MODELS`` or ``emofuse/bundled`` in the package."""
    env = os.environ.get("EMOFUSE_MODELS")
    return Path(env).expanduser() if env else Path(__file__).resolve().parent / "bundled"


def _is_model_dir(p: Path) -> bool:
    return (p / "card.json").is_file()


def _info(name: str, folder: Path) -> ModelInfo:
    from .train.checkpoint import read_card

    card = read_card(folder)
    modality = card.get("task") or card.get("modality")
    if modality not in (*MODALITIES, "fusion"):
        raise DataError(folder / "card.json", f"task must be one of speech, face, text, fusion "
                        f"(got {modality!r})")
    return ModelInfo(name, str(modality), folder, card)


def model_path(name_or_path: str | os.PathLike) -> Path:
    """The folder of one model: a bundled name (``speech``, ``face``, ``text``, ``fusion``) or
    a path. Raises :class:`ModelUnavailableError` for a bundled name not shipped."""
    s = str(name_or_path)
    if s in BUNDLED_NAMES and not Path(s).exists():
        folder = bundled_dir() / s
        if not _is_model_dir(folder):
            raise ModelUnavailableError(
                f"no {s} model available: the bundled folder {folder} holds no model (run "
                "`make models`, or pass a model folder)")
        return folder
    p = Path(s).expanduser()
    if not p.exists():
        raise DataError(p, "model not found: give a bundled name (speech, face, text, fusion, "
                        "default) or a model folder")
    return p


def resolve_models(name_or_path: str | os.PathLike = "default") -> list[ModelInfo]:
    """Models behind a name or path.

    ``default`` gives every bundled model present; ``speech``/``face``/``text``/``fusion`` one
    bundled model; a folder with ``card.json`` that model; a folder of model folders each
    of them (a bundle of your own).
    """
    s = str(name_or_path)
    if s == "default" and not Path(s).exists():
        base = bundled_dir()
        found = [_info(n, base / n) for n in BUNDLED_NAMES if _is_model_dir(base / n)]
        if not found:
            raise ModelUnavailableError(
                f"no bundled models in {base}: run `make models` (or pass --model FOLDER)")
        return found
    folder = model_path(s)
    if _is_model_dir(folder):
        name = s if s in BUNDLED_NAMES else folder.name
        return [_info(name, folder)]
    if folder.is_dir():
        subs = [d for d in sorted(folder.iterdir()) if d.is_dir() and _is_model_dir(d)]
        if subs:
            return [_info(d.name, d) for d in subs]
    raise DataError(folder, "not a model folder: card.json and model.safetensors missing")


# -- content sniffing ---------------------------------------------------------------------------


def _kind_from_extension(path: Path) -> str | None:
    ext = path.suffix.lower()
    return next((k for k, exts in MEDIA_EXTENSIONS.items() if ext in exts), None)


def _looks_like_text(head: bytes) -> bool:
    """Whether the first bytes of a file are text in a common encoding (see
    :func:`~emofuse.media.text.decode_text`), with almost no control characters."""
    from .media.text import decode_text

    if not head:
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = decode_text(head, "<head>")
    except MediaError:
        return False
    bad = sum(ord(ch) < 32 and ch not in "\t\n\x0c\r" for ch in text)
    return bad <= len(text) // 100


#: FFmpeg demuxers and codecs that "decode" any bytes (text art, raw pictures): never media here.
_AV_DENY_FORMATS = frozenset({"bin", "tty", "ansi", "adf", "xbin", "idf", "image2",
                              "image2pipe", "lavfi", "data"})
_AV_DENY_CODECS = frozenset({"bintext", "xbin", "idf", "ansi"})


def _av_kind(path: Path) -> str | None:
    import av

    try:
        with av.open(str(path)) as c:
            if c.format.name in _AV_DENY_FORMATS or c.format.name.endswith("_pipe") or any(
                    s.codec_context is not None and s.codec_context.name in _AV_DENY_CODECS
                    for s in c.streams):
                return None
            video = [s for s in c.streams if s.type == "video"
                     and not (int(getattr(s, "disposition", 0) or 0) & 0x400)]  # attached_pic
            audio = [s for s in c.streams if s.type == "audio"]
            if video:
                return "video"
            if audio:
                return "audio"
    except Exception:  # not a container PyAV knows
        return None
    return None


def detect_kind(path: str | os.PathLike) -> tuple[Kind, list[str]]:
    """What a file holds, decided from its content: ``(kind, warnings)``.

    A name whose extension promises another kind of media gives a warning; text content
    behind a media extension (an error page saved as ``.mp4``) is refused.

    Raises
    ------
    MediaError
        Missing, folder or empty file; a media name on content nothing can decode.
    UnsupportedMediaError
        Content that is none of audio, video, image or text.
    """
    from PIL import Image

    path = Path(path)
    if not path.exists():
        raise MediaError(path, "file does not exist")
    if path.is_dir():
        raise MediaError(path, "is a folder, not a file")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    claimed = _kind_from_extension(path)
    kind: str | None = None
    try:
        with Image.open(path, formats=_IMAGE_FORMATS):
            kind = "image"  # an animated GIF is read as its first frame
    except Image.DecompressionBombError:
        kind = "image"  # an image, too large: load_image refuses it with the limit
    except Exception:  # not an image Pillow knows
        pass
    if kind is None:
        with path.open("rb") as f:
            head = f.read(4096)
        if _looks_like_text(head):
            if claimed in ("audio", "video", "image"):
                raise UnsupportedMediaError(path, f"the name says {claimed} "
                                            f"({path.suffix}) but the file holds text")
            kind = "text"
        else:
            kind = _av_kind(path)
    if kind is None:
        if claimed in ("audio", "video", "image"):
            raise MediaError(path, f"cannot decode this {claimed} file ({path.suffix}): "
                             "corrupt, truncated or in a format emofuse does not read")
        raise UnsupportedMediaError(path, "unsupported file type: not audio, video, image or "
                                    "text that emofuse can decode")
    notes = []
    if claimed and claimed != kind:
        notes.append(f"{path.name}: the extension {path.suffix} suggests {claimed}, but the "
                     f"content is {kind}; read as {kind}")
    return kind, notes  # type: ignore[return-value]


# -- the recognizer -----------------------------------------------------------------------------


@dataclass
class PredictOptions:
    """How inputs are cut and sampled.

    Parameters
    ----------
    timeline
        Return per-segment (speech) and per-frame (faces) predictions.
    segmentation
        ``vad`` (Silero voice-activity segments) or ``windows`` (fixed windows) for speech;
        ``stream``: the timeline is the one a live stream gives (:func:`emofuse.stream.replay`,
        the code of ``emofuse live``: an update every ``hop`` or 0.5 s with speech, face and
        fused segments).
    window, hop
        Window length and step (seconds) for fixed windows and for splitting long segments.
    max_segment_s
        Longest speech segment classified in one piece.
    long_audio_s
        Audio longer than this is classified in segments even without ``timeline``.
    frame_rate, max_frames
        Video frames sampled per second for faces, and at most how many.
    detect
        Face detection: ``auto`` takes images of at most 96 px as ready-made face crops (as
        the FER2013 benchmark does) and detects faces in larger ones; ``always``; ``never``
        (the whole image is the face).
    """

    timeline: bool = False
    segmentation: Literal["vad", "windows", "stream"] = "vad"
    window: float = 3.0
    hop: float | None = None
    max_segment_s: float = 8.0
    long_audio_s: float = 20.0
    frame_rate: float = 2.0
    max_frames: int = 64
    detect: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        import math

        def bad(name: str, lo: float, hi: float) -> str | None:
            v = getattr(self, name)
            if v is None and name == "hop":
                return None
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                return f"{name} must be a number in [{lo}, {hi}], not {v!r}"
            return None

        problems = [p for p in (bad("window", 0.5, 60.0), bad("hop", 0.1, 60.0),
                                bad("max_segment_s", 0.5, 60.0), bad("long_audio_s", 1.0, 3600.0),
                                bad("frame_rate", 0.01, 30.0), bad("max_frames", 1, 10_000))
                    if p]
        if self.segmentation not in ("vad", "windows", "stream"):
            problems.append(f"segmentation must be vad, windows or stream, not "
                            f"{self.segmentation!r}")
        if self.detect not in ("auto", "always", "never"):
            problems.append(f"detect must be auto, always or never, not {self.detect!r}")
        if problems:
            from .errors import ConfigError

            raise ConfigError("invalid prediction options: " + "; ".join(problems))


def _pdict(labels: Sequence[str], p: np.ndarray, *, sort: bool = False) -> dict[str, float]:
    items = [(str(k), round(float(v), 6)) for k, v in zip(labels, p)]
    if sort:
        items.sort(key=lambda kv: -kv[1])
    return dict(items)


def _segment(start: float, end: float, modality: str, labels: Sequence[str],
             p: np.ndarray) -> Segment:
    i = int(np.argmax(p))
    return Segment(start=round(float(start), 3), end=round(float(end), 3), modality=modality,
                   label=labels[i], confidence=round(float(p[i]), 6),
                   probabilities=_pdict(labels, p))


class Recognizer:
    """Speech, face and text models (and a fusion model) behind one ``predict``.

    Build it with :meth:`load`; models are read from disk on first use (``warmup`` loads them
    all now). Thread-safe for prediction.
    """

    def __init__(self, models: Sequence[ModelInfo], *,
                 options: PredictOptions | None = None) -> None:
        if not models:
            raise ModelUnavailableError("a Recognizer needs at least one model")
        self._models: dict[str, ModelInfo] = {}
        for m in models:
            if m.modality in self._models:
                raise EmofuseError(f"two {m.modality} models given: {self._models[m.modality].path}"
                                   f" and {m.path}")
            self._models[m.modality] = m
        self._loaded: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.options = options or PredictOptions()

    @classmethod
    def load(cls, *names_or_paths: str | os.PathLike,
             options: PredictOptions | None = None) -> Recognizer:
        """Models by bundled name (``default``, ``speech``, ``face``, ``text``, ``fusion``) or
        folder; several may be given (``Recognizer.load("speech", "my/face-model")``)."""
        infos: list[ModelInfo] = []
        for n in names_or_paths or ("default",):
            infos += resolve_models(n)
        return cls(infos, options=options)

    # -- models

    @property
    def models(self) -> dict[str, ModelInfo]:
        """Modality -> model."""
        return dict(self._models)

    @property
    def modalities(self) -> list[str]:
        """Modalities that have a model (``fusion`` included when there is one)."""
        return list(self._models)

    def predictor(self, modality: str) -> Any:
        """The loaded predictor of ``modality`` (loaded on first call)."""
        if modality not in self._models:
            have = ", ".join(self._models) or "none"
            raise ModelUnavailableError(f"no {modality} model available (loaded: {have}); load "
                                        f"'{modality}' or 'default', or pass a model folder")
        with self._lock:
            if modality not in self._loaded:
                self._loaded[modality] = load_predictor(self._models[modality])
            return self._loaded[modality]

    def adapt_speech(self, audio: Iterable[str | os.PathLike] | Any, *,
                     mode: Literal["enrol", "folder"] = "enrol") -> int:
        """Standardise speech with unlabelled recordings from now on: ``enrol``, several
        recordings of the speaker to be predicted; ``folder``, the recordings predicted
        together (one source). ``audio`` may also be ready :class:`emofuse.speech.SpeakerStats`.
        Returns how many recordings went into the statistics (0: the speech model does not
        adapt, nothing changes). Unreadable files are skipped.

        Raises
        ------
        DataError
            When none of ``audio`` can be read.
        """
        pred = self.predictor("speech")
        sp = getattr(pred, "sp", None)
        if sp is None or not getattr(sp, "adapts", False):
            return 0
        from .speech import SpeakerStats

        stats = audio if isinstance(audio, SpeakerStats) else \
            sp.speaker_stats([Path(a) for a in audio], mode=mode)
        pred.speaker = stats
        return stats.utterances

    def warmup(self) -> Recognizer:
        """Load every model now (a server does this before its first request)."""
        for m in self._models:
            self.predictor(m)
        return self

    # -- prediction

    def predict(self, x: str | os.PathLike | np.ndarray, *, sr: int | None = None,
                kind: Kind | None = None, timeline: bool | None = None,
                source: str | None = None) -> Prediction:
        """Predict the emotion of one input.

        Parameters
        ----------
        x
            A file path (audio, image, video or text file: told apart by content), a string of
            text (a string that is not an existing file is taken as text), a mono waveform
            (1-D float array, give ``sr``) or an image array (H, W[, 3]) of ``uint8``.
        sr
            Sample rate of a waveform array (16000 when not given, with a warning).
        kind
            Skip detection: ``audio``, ``video``, ``image`` or ``text``.
        timeline
            Per-segment / per-frame results too (default: :attr:`options`).
        source
            Name reported in the result (default: the path, ``<text>`` or ``<array>``).

        Raises
        ------
        MediaError
            Unreadable input (:class:`UnsupportedMediaError` for an unknown type,
            :class:`NoFaceError` for an image without a face).
        ModelUnavailableError
            No model for the modality the input needs.
        """
        t0 = time.perf_counter()
        opts = self.options if timeline is None else _replace(self.options, timeline=timeline)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pred = self._predict(x, sr=sr, kind=kind, opts=opts, source=source)
            except DataError as exc:
                if isinstance(x, os.PathLike) or (
                        isinstance(x, str) and kind != "text" and _is_path(x)):
                    if exc.path is None:  # a problem found deep inside: name the file
                        raise type(exc)(source or str(x), exc.problem) from None
                    if source and exc.path == str(x):
                        # name the upload, not the temporary file it was saved to
                        raise type(exc)(source, exc.problem) from None
                raise
        for w in caught:
            msg = str(w.message)
            if msg not in pred.warnings and issubclass(w.category, UserWarning):
                pred.warnings.append(msg)
        if source and (isinstance(x, os.PathLike) or (
                isinstance(x, str) and kind != "text" and _is_path(x))):
            p = Path(x)
            pred.warnings = [w.replace(str(p), source).replace(p.name, Path(source).name)
                             for w in pred.warnings]
        pred.seconds = round(time.perf_counter() - t0, 4)
        return pred

    def predict_text(self, text: str, *, source: str | None = None) -> Prediction:
        """Predict the emotion of a string."""
        return self.predict(text, kind="text", source=source)

    def iter_predict(self, items: Iterable[Any], *, timeline: bool | None = None,
                     **kwargs: Any) -> Iterator[Prediction | PredictionFailure]:
        """Predict each item in turn; a failing item yields a :class:`PredictionFailure`."""
        for item in items:
            src = str(item) if isinstance(item, (str, os.PathLike)) else "<array>"
            try:
                yield self.predict(item, timeline=timeline, **kwargs)
            except (EmofuseError, OSError) as exc:
                yield PredictionFailure(source=src, error=str(exc),
                                        error_type=type(exc).__name__)

    def predict_batch(self, items: Iterable[Any], *, timeline: bool | None = None,
                      **kwargs: Any) -> list[Prediction | PredictionFailure]:
        """:meth:`iter_predict` as a list (one result per item, in order)."""
        return list(self.iter_predict(items, timeline=timeline, **kwargs))

    # -- internals

    def _predict(self, x: Any, *, sr: int | None, kind: Kind | None, opts: PredictOptions,
                 source: str | None) -> Prediction:
        notes: list[str] = []
        if isinstance(x, np.ndarray):
            return self._predict_array(x, sr=sr, opts=opts, source=source or "<array>")
        if isinstance(x, str) and (kind == "text" or (kind is None and not _is_path(x))):
            from .media import normalise_text

            text = normalise_text(x)
            if not text:
                raise MediaError(None, "empty text: nothing to predict")
            return self._finish(source or "<text>", "text", {"text": self._run("text", text)},
                                notes, [], [], None)
        path = Path(x)
        if kind is None:
            kind, notes = detect_kind(path)
        src = source or str(path)
        if kind in ("audio", "video") and opts.segmentation == "stream":
            return self._predict_streamed(path, kind=kind, src=src, opts=opts, notes=notes)
        if kind == "text":
            from .media import normalise_text, read_text

            text = normalise_text(read_text(path, max_bytes=1_000_000))
            if not text:
                raise MediaError(path, "the text file holds no text")
            return self._finish(src, "text", {"text": self._run("text", text)}, notes, [], [],
                                None)
        if kind == "image":
            from .media import load_image

            return self._predict_image(load_image(path), src=src, notes=notes, where=path,
                                       detect=opts.detect)
        if kind == "audio":
            from .media import load_audio

            y, rate = load_audio(path, sr=16000)
            return self._predict_audio(Waveform(y, rate), src=src, opts=opts, notes=notes)
        if kind == "video":
            return self._predict_video(path, src=src, opts=opts, notes=notes)
        raise UnsupportedMediaError(path, f"unknown kind {kind!r}")

    def _predict_streamed(self, path: Path, *, kind: str, src: str, opts: PredictOptions,
                          notes: list[str]) -> Prediction:
        """The whole file's answer, with (``timeline``) the updates of a live stream replayed
        offline as its timeline: the same code as ``emofuse live``."""
        base = _replace(opts, timeline=False, segmentation="vad")
        if kind == "audio":
            from .media import load_audio

            y, rate = load_audio(path, sr=16000)
            pred = self._predict_audio(Waveform(y, rate), src=src, opts=base, notes=notes)
        else:
            pred = self._predict_video(path, src=src, opts=base, notes=notes)
        if opts.timeline:
            from .stream import StreamOptions, replay, stream_timeline

            sopts = StreamOptions(window=opts.window, hop=opts.hop or 0.5, detect=opts.detect)
            mods = [m for m in KIND_MODALITIES[kind] if m in self._models]
            segs = stream_timeline(replay(self, path, options=sopts, modalities=mods))
            pred.timeline = sorted(segs, key=lambda s: (s.modality, s.start))
        return pred

    def _predict_array(self, x: np.ndarray, *, sr: int | None, opts: PredictOptions,
                       source: str) -> Prediction:
        if x.ndim == 1 or (x.ndim == 2 and x.dtype.kind == "f" and min(x.shape) <= 2):
            y = np.asarray(x if x.ndim == 1 else x.mean(axis=int(np.argmin(x.shape))),
                           dtype=np.float32)
            notes = [] if sr else ["no sample rate given for the waveform; assumed 16000 Hz"]
            if y.size == 0:
                raise MediaError(None, "empty waveform: nothing to predict")
            return self._predict_audio(Waveform(y, int(sr or 16000)), src=source, opts=opts,
                                       notes=notes)
        if x.ndim in (2, 3):
            img = x
            if img.dtype != np.uint8:
                scale = 255.0 if img.dtype.kind == "f" and float(np.nanmax(img)) <= 1.0 else 1.0
                img = np.clip(np.nan_to_num(img * scale), 0, 255).astype(np.uint8)
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, axis=2)
            elif img.shape[2] == 4:
                img = img[..., :3]
            elif img.shape[2] == 1:
                img = np.repeat(img, 3, axis=2)
            return self._predict_image(np.ascontiguousarray(img), src=source, notes=[],
                                       where=None, detect=opts.detect)
        raise MediaError(None, f"cannot tell what an array of shape {x.shape} holds: give a "
                               "1-D waveform or an (H, W[, 3]) image")

    def _run(self, modality: str, x: Any, *, detect: str | None = None
             ) -> tuple[list[str], ModalityOutput]:
        pred = self.predictor(modality)
        if detect is not None and getattr(pred, "supports_detect", False):
            return list(pred.labels), pred.predict(x, detect=detect)
        return list(pred.labels), pred.predict(x)

    def _predict_image(self, rgb: np.ndarray, *, src: str, notes: list[str],
                       where: Path | None, detect: str = "auto") -> Prediction:
        labels, out = self._run("face", rgb, detect=detect)
        if out.probabilities is None:
            raise NoFaceError(where if where is not None else src,
                              "no face found in the image (if it is already a face crop, "
                              "predict with --detect never)")
        if out.faces:
            main = max(out.faces, key=lambda f: f.box[2] * f.box[3])
            side = min(main.box[2], main.box[3])
            if side < MIN_FACE_PX and min(rgb.shape[:2]) > 2 * MIN_FACE_PX:
                notes.append(f"the face is only {main.box[2]}x{main.box[3]} pixels: the "
                             "prediction is unreliable")
            elif (sharp := face_sharpness(rgb, main.box)) < MIN_FACE_SHARPNESS:
                notes.append(f"the face is blurred (sharpness {sharp:.1f}, below "
                             f"{MIN_FACE_SHARPNESS:g}): the prediction is unreliable")
        return self._finish(src, "image", {"face": (labels, out)}, notes, out.faces, [], None)

    def _speech(self, w: Waveform, opts: PredictOptions, *, offset: float = 0.0
                ) -> tuple[tuple[list[str], ModalityOutput], list[Segment], list[str]]:
        """Whole-clip speech output (segment-averaged for long audio) and its timeline."""
        pred = self.predictor("speech")
        labels = list(pred.labels)
        duration = len(w.y) / w.sr
        if not opts.timeline and duration <= opts.long_audio_s:
            return (labels, pred.predict(w)), [], []
        from .timeline import speech_segments

        method = "vad" if opts.segmentation == "stream" else opts.segmentation  # arrays
        segs, notes = speech_segments(w.y, w.sr, method=method, window=opts.window,
                                      hop=opts.hop, max_segment_s=opts.max_segment_s)
        timeline, probs, lengths, warns = [], [], [], []
        for s, e in segs:
            piece = w.y[int(s * w.sr): int(e * w.sr)]
            if len(piece) < int(0.1 * w.sr):
                continue
            o = pred.predict(Waveform(piece, w.sr))
            warns += o.warnings
            timeline.append(_segment(s + offset, e + offset, "speech", labels, o.probabilities))
            probs.append(o.probabilities)
            lengths.append(e - s)
        if not probs:
            notes.append("no segment long enough to classify; used the whole clip")
            return (labels, pred.predict(w)), [], notes
        if duration <= opts.long_audio_s:  # a timeline beside the clip's own answer, unchanged
            return (labels, pred.predict(w)), timeline, notes
        avg = np.average(np.stack(probs), axis=0, weights=np.asarray(lengths))
        if duration > opts.long_audio_s and not opts.timeline:
            notes.append(f"audio of {duration:.0f} s classified in {len(probs)} segments and "
                         "averaged")
        return ((labels, ModalityOutput(avg / avg.sum(), warnings=warns)),
                timeline if opts.timeline else [], notes)

    def _predict_audio(self, w: Waveform, *, src: str, opts: PredictOptions,
                       notes: list[str]) -> Prediction:
        duration = len(w.y) / w.sr
        if duration < 0.25:
            notes.append(f"very short audio ({duration:.2f} s): the prediction is unreliable")
        elif silent := _no_speech(w):
            notes.append(silent)
        out, timeline, more = self._speech(w, opts)
        return self._finish(src, "audio", {"speech": out}, notes + more, [], timeline, duration)

    def _predict_video(self, path: Path, *, src: str, opts: PredictOptions,
                       notes: list[str]) -> Prediction:
        from .media import iter_frames, probe_video, read_audio_track

        info = probe_video(path)
        outputs: dict[str, tuple[list[str], ModalityOutput]] = {}
        timeline: list[Segment] = []
        faces: list[Face] = []
        if "face" in self._models:
            pred = self.predictor("face")
            labels = list(pred.labels)
            fps = opts.frame_rate
            if info.duration and info.duration * fps < 4:  # short clip: at least 4 frames
                fps = 4.0 / info.duration
            probs = []
            for t, frame in iter_frames(path, fps=fps, max_frames=opts.max_frames):
                o = self._run("face", frame, detect=opts.detect)[1]
                if o.probabilities is None:
                    continue
                probs.append(o.probabilities)
                main = max(o.faces, key=lambda f: f.box[2] * f.box[3]) if o.faces else None
                if main is not None:
                    faces.append(main.model_copy(update={"time": round(float(t), 3)}))
                if opts.timeline:
                    timeline.append(_segment(t, t + 1.0 / fps, "face", labels, o.probabilities))
            if probs:
                p = np.mean(np.stack(probs), axis=0)
                outputs["face"] = (labels, ModalityOutput(p / p.sum()))
            else:
                notes.append("no face found in the sampled video frames")
        else:
            notes.append("no face model loaded: the video's frames were not used")
        if not info.has_audio:
            notes.append("the video has no audio track: predicted from faces only")
        elif "speech" in self._models:
            y = read_audio_track(path, sr=16000)
            silent = _no_speech(Waveform(y, 16000))
            if silent and outputs:
                notes.append("the audio track holds no speech (voice activity detection): "
                             "predicted from faces only")
            else:
                if silent:
                    notes.append(silent)
                out, seg, more = self._speech(Waveform(y, 16000), opts)
                outputs["speech"] = out
                timeline += seg
                notes += more
        else:
            notes.append("no speech model loaded: the video's sound was not used")
        if not outputs:
            if "face" not in self._models and "speech" not in self._models:
                raise ModelUnavailableError("no face or speech model available for a video")
            raise NoFaceError(path, "no face found in the video"
                              + ("" if info.has_audio else " and it has no audio track"))
        return self._finish(src, "video", outputs, notes, faces, timeline, info.duration)

    def _finish(self, src: str, kind: Kind, outputs: Mapping[str, tuple[list[str], Any]],
                notes: list[str], faces: list[Face], timeline: list[Segment],
                duration: float | None) -> Prediction:
        per = {m: _pdict(labels, o.probabilities) for m, (labels, o) in outputs.items()}
        for _, o in outputs.values():
            notes += [w for w in o.warnings if w not in notes]
        if len(per) == 1:
            fused, weights = next(iter(per.values())), {next(iter(per)): 1.0}
        elif "fusion" in self._models:
            fused, weights = self.predictor("fusion").fuse(per)
        else:
            fused, weights = late_fusion(per)
        label, conf = max(fused.items(), key=lambda kv: kv[1])
        models = {m: self._models[m].name for m in per}
        if len(per) > 1 and "fusion" in self._models:
            models["fusion"] = self._models["fusion"].name
        return Prediction(
            source=src, kind=kind, label=label, confidence=round(float(conf), 6),
            probabilities={k: round(float(v), 6) for k, v in
                           sorted(fused.items(), key=lambda kv: -kv[1])},
            modalities={m: dict(sorted(p.items(), key=lambda kv: -kv[1])) for m, p in per.items()},
            weights={m: round(float(w), 6) for m, w in weights.items()}, models=models,
            faces=faces, timeline=sorted(timeline, key=lambda s: (s.modality, s.start)),
            warnings=list(dict.fromkeys(notes)),
            reliable=not any("unreliable" in n for n in notes),
            duration_s=None if duration is None else round(float(duration), 3))


#: Smallest face side (pixels) in a larger picture for a face prediction to count as reliable.
MIN_FACE_PX = 20

#: Least sharpness of a face (variance of the Laplacian of its 64x64 grayscale crop) for a
#: face prediction to count as reliable. Chosen on FER2013 PublicTest: 0.1 % of its faces fall
#: below 20, 99.7 % of the same faces blurred with a Gaussian of sigma 2 px do.
MIN_FACE_SHARPNESS = 20.0


def face_sharpness(rgb: np.ndarray, box: Sequence[int]) -> float:
    """Variance of the Laplacian of the face ``box`` (x, y, w, h) of ``rgb``, resized to 64x64
    grayscale: low for blurred or flat faces."""
    import cv2

    x, y, w, h = (int(v) for v in box)
    crop = rgb[max(0, y): y + max(1, h), max(0, x): x + max(1, w)]
    if crop.size == 0:
        return 0.0
    g = crop if crop.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(crop[..., :3]),
                                                  cv2.COLOR_RGB2GRAY)
    g = cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA if g.shape[0] > 64
                   else cv2.INTER_LINEAR)
    return float(cv2.Laplacian(g.astype(np.float32), cv2.CV_32F).var())


#: Least speech (seconds, Silero VAD) for an audio prediction to count as reliable.
MIN_SPEECH_S = 0.25


def _no_speech(w: Waveform) -> str | None:
    """A warning when Silero VAD finds (almost) no speech in the waveform, else ``None``."""
    from .features.vad import speech_seconds, vad_available

    if not vad_available() or len(w.y) == 0:
        return None
    sec = speech_seconds(w.y, sr=w.sr)
    if sec >= MIN_SPEECH_S:
        return None
    return (f"no speech detected (voice activity {sec:.2f} s of {len(w.y) / w.sr:.1f} s): "
            "noise, a tone or silence carries no emotion; the prediction is unreliable")


def _replace(opts: PredictOptions, **changes: Any) -> PredictOptions:
    from dataclasses import replace

    return replace(opts, **changes)


def _is_path(s: str) -> bool:
    """Whether a string names a file: it exists, or it is one word ending in a media
    extension (so that a mistyped path fails as a missing file, not as text to classify)."""
    if "\n" in s or len(s) > 4096 or not s.strip():
        return False
    try:
        if Path(s).expanduser().exists():
            return True
    except OSError:
        return False
    return " " not in s.strip() and _kind_from_extension(Path(s)) is not None
