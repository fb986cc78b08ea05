"""The pieces of a live stream (:mod:`emofuse.inference.stream`): its options and updates,
audio conversion and chunked resampling, frame-by-frame Silero VAD, one frame through the
face model, and admission (:class:`StreamSlots`)."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError, EmofuseError, MediaError
from .checks import face_problem
from .types import SR, Face, Waveform
from .video import main_face, predict_face

__all__ = ["StreamOptions", "Update", "StreamSlots", "TooManyStreams", "to_float_audio",
           "Resampler", "Vad", "FaceObs", "warm", "decode_frame", "observe_face",
           "STREAM_MODALITIES", "SR", "VAD_FRAME"]

#: The modalities a stream recognises from.
STREAM_MODALITIES: tuple[str, ...] = ("speech", "face")
VAD_FRAME = 512   # Silero VAD frame (32 ms at 16 kHz)
_VAD_CONTEXT = 64

# -- options and results ------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamOptions:
    """How a stream cuts and smooths.

    Parameters
    ----------
    hop
        Stream seconds between two updates.
    window
        Seconds of audio looked at for speech (a sliding window ending at each update).
    face_window
        Seconds of face results averaged into each update.
    min_speech_s, vad_threshold
        Least voiced audio (Silero VAD frames over ``vad_threshold``) in the window for the
        speech model to run; less gates speech off.
    min_segment_s, pad_s
        Shortest piece of audio classified, and padding around the voiced part.
    frame_side
        Frames are scaled down to this longer side before face detection (a webcam face stays
        large enough; detection is ~4x faster than at 640 px).
    frame_rate
        Frames per second taken from a video file by :func:`replay` and :func:`play`.
    max_pending_frames
        Live: frames waiting for the face model; a newer frame pushes the oldest out (dropped).
    detect
        Face detection (``auto``, ``always``, ``never``), as :class:`PredictOptions` has it.
    speech_wait
        Live: how long an update waits for the speech model's answer on its window and for
        the frames up to its time to be classified; after that it shows the latest answer
        (``speech_time`` says which hop) and stays on time,
        while the speech thread catches up (``speech_late``; windows never started because a
        newer one came: ``speech_skipped``).
    """

    hop: float = 0.5
    window: float = 3.0
    face_window: float = 1.0
    min_speech_s: float = 0.25
    vad_threshold: float = 0.5
    min_segment_s: float = 1.0
    pad_s: float = 0.15
    frame_side: int = 320
    frame_rate: float = 10.0
    max_pending_frames: int = 1
    detect: str = "auto"
    speech_wait: float = 0.3

    def __post_init__(self) -> None:
        def bad(name: str, lo: float, hi: float) -> str | None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or not lo <= v <= hi:
                return f"{name} must be a number in [{lo}, {hi}], not {v!r}"
            return None

        problems = [p for p in (
            bad("hop", 0.1, 10.0), bad("window", 0.5, 30.0), bad("face_window", 0.05, 30.0),
            bad("min_speech_s", 0.0, 30.0), bad("vad_threshold", 0.0, 1.0),
            bad("min_segment_s", 0.1, 30.0), bad("pad_s", 0.0, 5.0),
            bad("frame_side", 64, 4096), bad("frame_rate", 0.1, 60.0),
            bad("max_pending_frames", 1, 1000), bad("speech_wait", 0.0, 60.0)) if p]
        if self.detect not in ("auto", "always", "never"):
            problems.append(f"detect must be auto, always or never, not {self.detect!r}")
        if problems:
            raise ConfigError("invalid stream options: " + "; ".join(problems))


class Update(BaseModel):
    """What a stream says every hop."""

    index: int = Field(description="hop number: the update covers (index-1)*hop .. index*hop")
    start: float = Field(description="start of the hop (stream seconds)")
    time: float = Field(description="end of the hop: the stream time the update describes")
    label: str | None = Field(description="fused emotion; null when no modality has an output "
                                          "(no speech and no face)")
    confidence: float
    probabilities: dict[str, float] = Field(default_factory=dict)
    modalities: dict[str, dict[str, float]] = Field(default_factory=dict)
    weights: dict[str, float] = Field(default_factory=dict)
    segments: dict[str, tuple[float, float]] = Field(
        default_factory=dict, description="the stream time each modality's output covers: the "
                                          "voiced audio classified, the first and last face frame")
    speech_active: bool = Field(False, description="voice activity gated speech on")
    voice: float = Field(0.0, description="fraction of the hop that VAD calls speech")
    speech_time: float | None = Field(
        None, description="the hop end the speech output was computed for: below ``time`` "
                          "when a live stream showed its latest speech answer rather than wait")
    face_frames: int = Field(0, description="frames with a face in the face window")
    face: Face | None = Field(None, description="the latest face (box in the frame's pixels)")
    reliable: bool = Field(False, description="some modality had a usable signal (a face output "
                                             "from mostly tiny or blurred faces does not count)")
    notes: list[str] = Field(default_factory=list)
    merged: int = Field(0, description="later hops this update stands for (a live stream "
                                       "that fell behind)")
    lag_ms: float | None = Field(None, description="live: wall time from receiving the audio "
                                                   "chunk that completed the hop to this update "
                                                   "(null when its speech answer is older)")
    compute_ms: float = 0.0
    counters: dict[str, float] = Field(default_factory=dict)


# -- audio helpers ------------------------------------------------------------------------------


def to_float_audio(y: Any) -> np.ndarray:
    """Mono float32 in [-1, 1] from int16/int32/uint8 or float samples, ``(n,)`` or
    ``(n, channels)``/``(channels, n)`` (channels averaged)."""
    a = np.asarray(y)
    if a.ndim == 2:
        if min(a.shape) > 8:
            raise MediaError(None, f"audio of shape {a.shape}: give (samples,) or "
                                   "(samples, channels) with at most 8 channels")
        kind = a.dtype
        a = a.mean(axis=int(np.argmin(a.shape)), dtype=np.float64)
    else:
        kind = a.dtype
        a = a.reshape(-1)
    if kind == np.int16:
        out = a.astype(np.float32) / 32768.0
    elif kind == np.int32:
        out = a.astype(np.float32) / 2147483648.0
    elif kind == np.uint8:
        out = (a.astype(np.float32) - 128.0) / 128.0
    elif kind.kind in "iu" and kind.itemsize <= 4:
        out = a.astype(np.float32) / float(np.iinfo(kind).max)
    elif kind.kind == "f":
        out = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    else:
        raise MediaError(None, f"audio samples of type {kind} (give int16 or float)")
    return np.clip(out, -1.0, 1.0).astype(np.float32, copy=False)


class Resampler:
    """Chunk-by-chunk resampling to 16 kHz that equals resampling the whole signal at once."""

    def __init__(self, rate: int) -> None:
        self.rate = int(rate)
        self._rs = None
        if self.rate != SR:
            import soxr

            self._rs = soxr.ResampleStream(self.rate, SR, 1, dtype="float32", quality="HQ")

    def __call__(self, y: np.ndarray, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return y
        return np.asarray(self._rs.resample_chunk(y, last=last), dtype=np.float32)


class Vad:
    """Silero VAD (the sequence ONNX model of :mod:`emofuse.features.vad`) frame by frame, its
    context and recurrent state carried between calls: the probabilities equal those of
    :func:`~emofuse.features.vad.speech_probabilities` on the whole signal."""

    def __init__(self) -> None:
        from ..features.vad import _session

        self.sess = _session()
        self.h = np.zeros((1, 1, 128), dtype=np.float32)
        self.c = np.zeros_like(self.h)
        self.context = np.zeros(_VAD_CONTEXT, dtype=np.float32)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Probabilities of ``frames`` (n, 512) that follow the ones seen so far."""
        n = len(frames)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        frames = np.clip(frames, -1.0, 1.0)
        context = np.empty((n, _VAD_CONTEXT), dtype=np.float32)
        context[0] = self.context
        context[1:] = frames[:-1, -_VAD_CONTEXT:]
        blocks = np.concatenate([context, frames], axis=1)
        out = []
        for i in range(0, n, 512):
            p, self.h, self.c = self.sess.run(["speech_probs", "hn", "cn"],
                                              {"input": blocks[i: i + 512], "h": self.h,
                                               "c": self.c})
            out.append(np.asarray(p, dtype=np.float32).reshape(-1))
        self.context = frames[-1, -_VAD_CONTEXT:].copy()
        return np.concatenate(out)



_WARM_LOCK = threading.Lock()
_WARMED: set[int] = set()


def warm(predictor: Any, modality: str) -> None:
    """Run a predictor once on a throw-away input (its first call compiles and allocates:
    seconds for the speech features), once per predictor and process."""
    with _WARM_LOCK:
        if id(predictor) in _WARMED:
            return
        _WARMED.add(id(predictor))
    try:
        if modality == "speech":
            rng = np.random.default_rng(0)
            t = np.arange(SR) / SR
            y = (0.1 * rng.standard_normal(SR) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)))
            predictor.predict(Waveform(y.astype(np.float32), SR))
        elif modality == "face":
            img = np.full((120, 160, 3), 128, dtype=np.uint8)
            predict_face(predictor, img, detect="always")
    except Exception:  # noqa: BLE001 - a warm-up never fails a stream; the real call reports
        pass



@dataclass
class FaceObs:
    """One frame through the face model: its time, probabilities (``None``: no face) and main
    face."""

    t: float
    p: np.ndarray | None
    face: Face | None
    problem: str | None = None  # why this frame's face is not reliable (tiny, blurred, flat)


def decode_frame(frame: Any) -> np.ndarray:
    """An RGB ``uint8`` frame from an array (gray, RGB or RGBA, float or integer) or the bytes
    of a JPEG/PNG."""
    if isinstance(frame, (bytes, bytearray, memoryview)):
        import cv2

        buf = np.frombuffer(frame, dtype=np.uint8)
        bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
        if bgr is None:
            raise MediaError(None, f"a frame of {buf.size} bytes is not a JPEG or PNG "
                                   "image that can be decoded")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    a = np.asarray(frame)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 1:
        raise MediaError(None, f"a frame must be an RGB image (H, W, 3), not shape "
                               f"{a.shape}")
    if a.dtype != np.uint8:
        scale = 255.0 if a.dtype.kind == "f" and float(np.nanmax(a)) <= 1.0 else 1.0
        a = np.clip(np.nan_to_num(a * scale), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a[:, :, :3])


def observe_face(predictor: Any, t: float, frame: Any, *, side: int, detect: str) -> FaceObs:
    """One frame (scaled down to ``side`` pixels, its longer side) through the face model: its
    probabilities, the main face (its box in the frame's own pixels) and why that face is not
    reliable (tiny or blurred in the scaled frame), if it is not."""
    import cv2

    rgb = decode_frame(frame)
    h, w = rgb.shape[:2]
    factor = 1.0
    if max(h, w) > side:
        s = side / max(h, w)
        rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                         interpolation=cv2.INTER_AREA)
        factor = 1.0 / s
    out = predict_face(predictor, rgb, detect=detect)
    if out.probabilities is None:
        return FaceObs(t, None, None)
    p = np.asarray(out.probabilities, dtype=np.float64)
    face, problem = None, None
    if out.faces:
        main = main_face(out.faces)
        problem = face_problem(rgb, main)  # on the frame as classified
        box = tuple(int(round(v * factor)) for v in main.box)
        face = main.model_copy(update={"box": box, "time": round(t, 3)})
    return FaceObs(t, p / max(p.sum(), 1e-12), face, problem)


# -- admission ----------------------------------------------------------------------------------


class TooManyStreams(EmofuseError):
    """Every stream slot is taken."""


class StreamSlots:
    """At most ``limit`` live streams at once (a server refuses the next one)."""

    def __init__(self, limit: int = 4) -> None:
        if limit < 1:
            raise ConfigError(f"the stream limit must be at least 1, not {limit}")
        self.limit = int(limit)
        self._n = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._n

    def acquire(self) -> None:
        """Take a slot, or raise :class:`TooManyStreams`."""
        with self._lock:
            if self._n >= self.limit:
                raise TooManyStreams(f"{self._n} live streams are running, the most this "
                                     "service allows; try again when one ends")
            self._n += 1

    def release(self) -> None:
        with self._lock:
            self._n = max(0, self._n - 1)
