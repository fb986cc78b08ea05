"""Live emotion from a stream of audio chunks and video frames: :class:`Stream`.

>>> from emofuse import Recognizer
>>> from emofuse.stream import Stream, replay
>>> rec = Recognizer.load("default")                                  # doctest: +SKIP
>>> s = Stream(rec)                                                   # doctest: +SKIP
>>> s.push_audio(chunk, sr=48000)        # int16 or float, any rate   # doctest: +SKIP
>>> s.push_frame(rgb, t=1.25)            # RGB uint8, seconds         # doctest: +SKIP
>>> for u in s.step(): print(u.time, u.label, u.modalities)           # doctest: +SKIP
>>> replay(rec, "examples/video.mp4")    # a file -> its updates (the offline timeline)  # doctest: +SKIP

How an update is made, every ``hop`` seconds of *stream time* (default 0.5 s):

* audio is resampled to 16 kHz as it arrives (a streaming soxr resampler: chunk boundaries
  change nothing) and Silero VAD (:mod:`emofuse.features.vad`, onnxruntime) runs on every
  32 ms frame once, its recurrent state carried from chunk to chunk;
* speech: when VAD finds at least ``min_speech_s`` of speech in the last ``window`` seconds
  (default 3 s), the voiced part of that window (padded, at least ``min_segment_s`` long) is
  classified by the speech model; without speech the modality is gated off. When the voiced
  part has not changed since the last hop (speech ended), the last answer is reused;
* faces: each frame is scaled down to ``frame_side`` pixels (its longer side) and classified
  by the face model; the face output of a hop is the mean over the frames of the last
  ``face_window`` seconds in which a face was found (a window mean: the order in which frames
  were processed does not matter);
* fusion: as :class:`~emofuse.inference.Recognizer` fuses (the fusion model of the bundle, or
  equal weights; one modality alone is its own answer).

The same code makes the offline timeline: :func:`replay` feeds a file to a stream as fast as
it can, every frame processed, and returns the list of updates. Run live (:meth:`Stream.start`),
a stream runs the face model and the speech model in threads of their own. Frames that wait
while the face model is busy are dropped (``frames_dropped``). An update waits at most
``speech_wait`` (0.3 s) for the speech answer on its window and for the frames up to its
time, then shows the latest answer (``speech_time`` < ``time``, ``speech_late``), so that
updates keep coming on time while speech catches up; hops that pass while an update is made
are merged into the next one (``hops_merged``). Counters in every update say so.
:func:`play` feeds a file at real-time speed (``speed`` > 1 for tests), as a microphone and a
webcam would.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from .errors import ConfigError, EmofuseError, MediaError
from .inference import Face, ModelUnavailableError, Recognizer, Segment, late_fusion

__all__ = ["Stream", "StreamOptions", "Update", "StreamSlots", "TooManyStreams", "replay",
           "play", "media_events", "stream_timeline", "agreement", "to_float_audio",
           "STREAM_MODALITIES", "SR"]

#: Sample rate of the stream's audio (every chunk is resampled to it).
SR = 16000
#: The modalities a stream recognises from.
STREAM_MODALITIES: tuple[str, ...] = ("speech", "face")
_VAD_FRAME = 512   # Silero VAD frame (32 ms at 16 kHz)
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
        the frames up to its time to be classified; after that it shows the latest answer (``speech_time`` says which hop) and stays on time,
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
    reliable: bool = Field(False, description="some modality had a usable signal")
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


class _Resampler:
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


class _Vad:
    """Silero VAD (the sequence ONNX model of :mod:`emofuse.features.vad`) frame by frame, its
    context and recurrent state carried between calls: the probabilities equal those of
    :func:`~emofuse.features.vad.speech_probabilities` on the whole signal."""

    def __init__(self) -> None:
        from .features.vad import _session

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


# -- the stream ---------------------------------------------------------------------------------


_WARM_LOCK = threading.Lock()
_WARMED: set[int] = set()


def _warm(predictor: Any, modality: str) -> None:
    """Run a predictor once on a throw-away input (its first call compiles and allocates:
    seconds for the speech features), once per predictor and process."""
    with _WARM_LOCK:
        if id(predictor) in _WARMED:
            return
        _WARMED.add(id(predictor))
    try:
        if modality == "speech":
            from .inference import Waveform

            rng = np.random.default_rng(0)
            t = np.arange(SR) / SR
            y = (0.1 * rng.standard_normal(SR) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)))
            predictor.predict(Waveform(y.astype(np.float32), SR))
        elif modality == "face":
            img = np.full((120, 160, 3), 128, dtype=np.uint8)
            if getattr(predictor, "supports_detect", False):
                predictor.predict(img, detect="always")
            else:
                predictor.predict(img)
    except Exception:  # noqa: BLE001 - a warm-up never fails a stream; the real call reports
        pass



@dataclass
class _FaceObs:
    t: float
    p: np.ndarray | None
    face: Face | None


class Stream:
    """Live emotion from audio chunks and video frames (see the module's docstring).

    Parameters
    ----------
    recognizer
        Its speech, face and fusion predictors are used (loaded once, shared by streams).
    options
        :class:`StreamOptions`.
    modalities
        ``speech`` and/or ``face`` (default: those the recognizer has a model for).
    """

    def __init__(self, recognizer: Recognizer, options: StreamOptions | None = None, *,
                 modalities: Sequence[str] | None = None) -> None:
        self.rec = recognizer
        self.options = options or StreamOptions()
        have = set(recognizer.models)
        want = set(modalities or STREAM_MODALITIES)
        unknown = want - set(STREAM_MODALITIES)
        if unknown:
            raise ConfigError(f"a stream recognises speech and faces, not {sorted(unknown)}")
        self.modalities = [m for m in STREAM_MODALITIES if m in want and m in have]
        if not self.modalities:
            raise ModelUnavailableError(
                "a stream needs a speech or a face model (loaded: "
                f"{', '.join(recognizer.models) or 'none'})")
        for m in self.modalities:
            _warm(recognizer.predictor(m), m)  # load and run once now, not in the first hops
        self._fusion = recognizer.predictor("fusion") if "fusion" in have else None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        # audio at 16 kHz: _audio[0] is sample _a0 of the stream; _n samples received
        self._resampler: _Resampler | None = None
        self._audio = np.zeros(0, dtype=np.float32)
        self._a0 = 0
        self._n = 0
        self._audio_seen = False
        self._chunks: deque[tuple[int, float]] = deque()  # (end sample, wall time received)
        # voice activity: probability of VAD frame _v0 + i at _vad_p[i]
        self._vad = None
        self._vad_failed = False
        self._vad_p = np.zeros(0, dtype=np.float32)
        self._v0 = 0
        self._vad_done = 0  # frames run so far
        # frames
        self._pending: deque[tuple[float, Any]] = deque()
        self._faces: deque[_FaceObs] = deque()
        self._frame_t = -math.inf   # latest frame time pushed
        self._frames_done_t = -math.inf  # latest frame time processed or dropped
        self._busy_t: float | None = None  # live: time of the frame the face model is on
        # hops
        self._last_t = 0.0  # time of the last update
        self._index = 0
        # the latest speech answer: (segment, probabilities, hop end it was computed for)
        self._speech_cache: tuple[tuple[float, float], np.ndarray, float] | None = None
        self._speech_job: tuple[float, tuple[float, float], np.ndarray] | None = None
        self._closed = False
        self.counters: dict[str, float] = {
            "audio_s": 0.0, "chunks": 0, "frames_received": 0, "frames_processed": 0,
            "frames_dropped": 0, "frames_without_face": 0, "frames_bad": 0, "hops_merged": 0,
            "speech_runs": 0, "speech_reused": 0, "speech_late": 0, "speech_skipped": 0,
            "updates": 0}
        self.errors: deque[str] = deque(maxlen=100)
        # live mode
        self._threads: list[threading.Thread] = []
        self._running = False
        self._on_update: Callable[[Update], None] | None = None
        self._on_error: Callable[[str], None] | None = None

    # -- input

    @property
    def time(self) -> float:
        """The stream's clock: seconds of audio received, or (no audio) the latest frame
        time processed."""
        with self._lock:
            return self._clock()

    def _clock(self) -> float:
        if self._audio_seen:
            return self._n / SR
        return max(self._frames_done_t, 0.0)

    def push_audio(self, samples: Any, sr: int) -> None:
        """Append an audio chunk: int16 or float samples at any rate (resampled to 16 kHz),
        mono or interleaved channels as ``(n, channels)``."""
        if "speech" not in self.modalities and "face" not in self.modalities:
            return
        if not isinstance(sr, (int, np.integer)) or not 2000 <= int(sr) <= 768_000:
            raise MediaError(None, f"audio rate must be 2000 to 768000 Hz, not {sr!r}")
        y = to_float_audio(samples)
        wall = time.perf_counter()
        with self._cond:
            if self._closed:
                return
            if self._resampler is None or self._resampler.rate != int(sr):
                if self._resampler is not None:  # the rate changed: flush the old resampler
                    self._append(self._resampler(np.zeros(0, np.float32), last=True), wall)
                self._resampler = _Resampler(int(sr))
            self._append(self._resampler(y), wall)
            self.counters["chunks"] += 1
            self._cond.notify_all()

    def _append(self, y: np.ndarray, wall: float) -> None:
        self._audio_seen = True
        if y.size:
            self._audio = np.concatenate([self._audio, y]) if self._audio.size else y.copy()
            self._n += int(y.size)
            self._chunks.append((self._n, wall))
            self.counters["audio_s"] = round(self._n / SR, 3)

    def push_frame(self, frame: Any, t: float) -> bool:
        """Queue a video frame (RGB ``uint8 (H, W, 3)``, or the bytes of a JPEG/PNG) taken at
        stream time ``t``. Returns ``False`` when a waiting frame was dropped to make room
        (live streams keep at most ``max_pending_frames`` waiting)."""
        if "face" not in self.modalities:
            return True
        t = float(t)
        if not math.isfinite(t):
            raise MediaError(None, f"frame time must be a finite number, not {t!r}")
        with self._cond:
            if self._closed:
                return False
            self.counters["frames_received"] += 1
            self._frame_t = max(self._frame_t, t)
            self._pending.append((t, frame))
            dropped = False
            if self._running:
                while len(self._pending) > self.options.max_pending_frames:
                    old_t, _ = self._pending.popleft()
                    self._frames_done_t = max(self._frames_done_t, old_t)
                    self.counters["frames_dropped"] += 1
                    dropped = True
            self._cond.notify_all()
            return not dropped

    # -- faces

    def _decode(self, frame: Any) -> np.ndarray:
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

    def _face(self, t: float, frame: Any) -> _FaceObs:
        """Run the face model on one frame (no lock held)."""
        import cv2

        rgb = self._decode(frame)
        h, w = rgb.shape[:2]
        side = self.options.frame_side
        factor = 1.0
        if max(h, w) > side:
            s = side / max(h, w)
            rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                             interpolation=cv2.INTER_AREA)
            factor = 1.0 / s
        pred = self.rec.predictor("face")
        if getattr(pred, "supports_detect", False):
            out = pred.predict(rgb, detect=self.options.detect)
        else:
            out = pred.predict(rgb)
        if out.probabilities is None:
            return _FaceObs(t, None, None)
        p = np.asarray(out.probabilities, dtype=np.float64)
        face = None
        if out.faces:
            main = max(out.faces, key=lambda f: f.box[2] * f.box[3])
            box = tuple(int(round(v * factor)) for v in main.box)
            face = main.model_copy(update={"box": box, "time": round(t, 3)})
        return _FaceObs(t, p / max(p.sum(), 1e-12), face)

    def _process_frame(self, t: float, frame: Any) -> None:
        try:
            obs = self._face(t, frame)
        except MediaError as exc:
            with self._cond:
                self.counters["frames_bad"] += 1
                self._frames_done_t = max(self._frames_done_t, t)
                self._cond.notify_all()
            self._error(str(exc))
            return
        with self._cond:
            self.counters["frames_processed"] += 1
            if obs.p is None:
                self.counters["frames_without_face"] += 1
            self._faces.append(obs)
            self._frames_done_t = max(self._frames_done_t, t)
            self._cond.notify_all()

    def _error(self, message: str) -> None:
        self.errors.append(message)
        if self._on_error is not None:
            try:
                self._on_error(message)
            except Exception:  # noqa: BLE001 - a callback never stops the stream
                pass

    # -- updates

    def _due(self) -> list[float]:
        """Hop boundaries the clock has passed and no update has covered yet."""
        hop = self.options.hop
        clock = self._clock()
        out = []
        k = self._index + 1
        while k * hop <= clock + 1e-9:
            out.append(round(k * hop, 6))
            k += 1
        return out

    def _run_vad(self, upto: int) -> None:
        """VAD on every complete frame up to sample ``upto`` (called by the update path only)."""
        if self._vad_failed or "speech" not in self.modalities:
            return
        n_frames = upto // _VAD_FRAME
        if n_frames <= self._vad_done:
            return
        if self._vad is None:
            from .features.vad import vad_available

            if not vad_available():
                self._vad_failed = True
                return
            self._vad = _Vad()
        with self._lock:
            a = self._vad_done * _VAD_FRAME - self._a0
            b = n_frames * _VAD_FRAME - self._a0
            if a < 0:  # trimmed away before VAD saw it (cannot happen: trimming waits for VAD)
                a = 0
            frames = self._audio[a:b].reshape(-1, _VAD_FRAME).copy()
        p = self._vad(frames)
        with self._lock:
            self._vad_p = np.concatenate([self._vad_p, p]) if self._vad_p.size else p
            self._vad_done = n_frames

    def _speech(self, t: float, notes: list[str], *, wait: float | None = None
                ) -> tuple[np.ndarray | None, tuple[float, float] | None, bool, float,
                           float | None]:
        """(speech probabilities or None, segment, active, voiced fraction of the hop, the hop
        end the probabilities were computed for). ``wait``: live, see :meth:`_speech_loop`."""
        o = self.options
        end = int(round(t * SR))
        ws = max(0, end - int(round(o.window * SR)))
        self._run_vad(end)
        with self._lock:
            if self._vad_failed:
                f0, f1, probs = 0, 0, None
            else:
                f0 = -(-ws // _VAD_FRAME)          # first frame inside the window
                f1 = end // _VAD_FRAME             # frames f0 .. f1-1 inside
                probs = self._vad_p[max(0, f0 - self._v0): max(0, f1 - self._v0)].copy()
            audio = self._audio[max(0, ws - self._a0): max(0, end - self._a0)].copy()
        if probs is None:  # no VAD installed: every window is speech
            notes.append("silero-vad is not installed: speech is not gated by voice activity")
            voiced_idx = np.arange(0)
            seg = (ws / SR, end / SR)
            hop_voice = 1.0
        else:
            voiced = probs > o.vad_threshold
            hop_frames = max(1, int(round(o.hop * SR / _VAD_FRAME)))
            hop_voice = float(voiced[-hop_frames:].mean()) if voiced.size else 0.0
            if voiced.sum() * (_VAD_FRAME / SR) < o.min_speech_s:
                return None, None, False, hop_voice, None
            voiced_idx = np.flatnonzero(voiced)
            first = (f0 + voiced_idx[0]) * _VAD_FRAME / SR - o.pad_s
            last = (f0 + voiced_idx[-1] + 1) * _VAD_FRAME / SR + o.pad_s
            lo, hi = ws / SR, end / SR
            first, last = max(lo, first), min(hi, last)
            if last - first < o.min_segment_s:
                first = max(lo, last - o.min_segment_s)
                last = min(hi, first + o.min_segment_s)
            seg = (round(first, 3), round(last, 3))
        cache = self._speech_cache
        if cache is not None and cache[0] == seg:  # the same audio: the same answer
            self.counters["speech_reused"] += 1
            return cache[1], seg, True, hop_voice, t
        a = int(round(seg[0] * SR)) - ws
        b = int(round(seg[1] * SR)) - ws
        piece = audio[max(0, a): max(0, b)]
        if piece.size < int(0.1 * SR):
            return None, None, False, hop_voice, None
        if wait is None:  # synchronous: this hop's answer, always
            p = self._run_speech(piece)
            if p is None:
                return None, None, False, hop_voice, None
            self._speech_cache = (seg, p, t)
            return p, seg, True, hop_voice, t
        # live: the speech thread runs it; wait for it at most `wait` seconds, else show the
        # latest answer (the update stays on time; the speech catches up)
        deadline = time.perf_counter() + wait
        with self._cond:
            if self._speech_job is not None:
                self.counters["speech_skipped"] += 1  # never started: a newer window replaces it
            self._speech_job = (t, seg, piece)
            self._cond.notify_all()
            while self._running and not (self._speech_cache is not None
                                         and self._speech_cache[2] >= t - 1e-9):
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._cond.wait(left)
            cache = self._speech_cache
        if cache is not None and cache[2] >= t - 1e-9:
            return cache[1], cache[0], True, hop_voice, cache[2]
        self.counters["speech_late"] += 1
        if cache is not None and cache[0][1] > t - self.options.window:
            return cache[1], cache[0], True, hop_voice, cache[2]
        return None, None, True, hop_voice, None

    def _run_speech(self, piece: np.ndarray) -> np.ndarray | None:
        from .inference import Waveform

        out = self.rec.predictor("speech").predict(Waveform(piece, SR))
        with self._lock:
            self.counters["speech_runs"] += 1
        if out.probabilities is None:
            return None
        p = np.asarray(out.probabilities, dtype=np.float64)
        return p / max(p.sum(), 1e-12)

    def _speech_loop(self) -> None:
        """Live: run the speech model on the newest window handed over by the update thread."""
        while True:
            with self._cond:
                while self._running and self._speech_job is None:
                    self._cond.wait(0.1)
                if not self._running:
                    return
                t, seg, piece = self._speech_job
                self._speech_job = None
            try:
                p = self._run_speech(piece)
            except Exception as exc:  # noqa: BLE001 - report, keep the stream going
                self._error(f"speech model failed ({type(exc).__name__}: {exc})")
                p = None
            with self._cond:
                if p is not None and (self._speech_cache is None
                                      or self._speech_cache[2] < t):
                    self._speech_cache = (seg, p, t)
                self._cond.notify_all()

    def _make_update(self, t: float, *, merged: int = 0, final: bool = False) -> Update:
        t0 = time.perf_counter()
        o = self.options
        notes: list[str] = []
        per: dict[str, dict[str, float]] = {}
        segments: dict[str, tuple[float, float]] = {}
        active, voice, speech_t = False, 0.0, None
        if "speech" in self.modalities and self._audio_seen:
            wait = max(0.0, t0 + o.speech_wait - time.perf_counter()) \
                if self._running and not final else None
            p, seg, active, voice, speech_t = self._speech(t, notes, wait=wait)
            if p is not None and seg is not None:
                labels = self.rec.predictor("speech").labels
                per["speech"] = {str(k): round(float(v), 6) for k, v in zip(labels, p)}
                segments["speech"] = seg
        face_frames, latest = 0, None
        if "face" in self.modalities:
            with self._cond:
                if self._running and not final:  # live: let the frames up to t be classified
                    deadline = t0 + o.speech_wait
                    while self._running and (
                            (self._busy_t is not None and self._busy_t <= t + 1e-9)
                            or any(ft <= t + 1e-9 for ft, _ in self._pending)):
                        left = deadline - time.perf_counter()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                obs = [f for f in self._faces if t - o.face_window < f.t <= t + 1e-9]
            found = [f for f in obs if f.p is not None]
            face_frames = len(found)
            if found:
                m = np.mean(np.stack([f.p for f in found]), axis=0)
                labels = self.rec.predictor("face").labels
                per["face"] = {str(k): round(float(v), 6) for k, v in zip(labels, m / m.sum())}
                segments["face"] = (round(min(f.t for f in found), 3),
                                    round(max(f.t for f in found), 3))
                latest = max(found, key=lambda f: f.t).face
            elif obs:
                notes.append("no face in the frames of the last "
                             f"{o.face_window:g} s")
        if per:
            fused, weights = self._fuse(per)
            label, conf = max(fused.items(), key=lambda kv: kv[1])
            probs = {k: round(float(v), 6) for k, v in sorted(fused.items(),
                                                                key=lambda kv: -kv[1])}
        else:
            label, conf, probs, weights = None, 0.0, {}, {}
        lag = None
        end = int(round(t * SR))
        idx = int(math.ceil(t / o.hop - 1e-9))
        with self._lock:
            while len(self._chunks) > 1 and self._chunks[1][0] <= end:
                self._chunks.popleft()
            fresh = not active or (speech_t is not None and speech_t >= t - 1e-9)
            if self._running and self._chunks and not final and fresh:
                first = next((w for e, w in self._chunks if e >= end), None)
                if first is not None:
                    lag = round(1000 * (time.perf_counter() - first), 1)
            self._index = max(self._index, idx)
            self._last_t = t
            self.counters["updates"] += 1
            if merged:
                self.counters["hops_merged"] += merged
            self._trim(t)
            counters = dict(self.counters)
        return Update(
            index=idx, start=round(max(0.0, (idx - 1 - merged) * o.hop), 6), time=round(t, 6),
            label=label, confidence=round(float(conf), 6), probabilities=probs,
            modalities={m: dict(sorted(p.items(), key=lambda kv: -kv[1]))
                        for m, p in per.items()},
            weights={m: round(float(w), 6) for m, w in weights.items()}, segments=segments,
            speech_active=active, voice=round(voice, 3),
            speech_time=None if speech_t is None else round(speech_t, 6),
            face_frames=face_frames, face=latest,
            reliable=bool(per), notes=notes, merged=merged, lag_ms=lag,
            compute_ms=round(1000 * (time.perf_counter() - t0), 2), counters=counters)

    def _fuse(self, per: dict[str, dict[str, float]]
              ) -> tuple[dict[str, float], dict[str, float]]:
        """As :meth:`Recognizer._finish` fuses: one modality is its own answer."""
        if len(per) == 1:
            return next(iter(per.values())), {next(iter(per)): 1.0}
        if self._fusion is not None:
            return self._fusion.fuse(per)
        return late_fusion(per)

    def _trim(self, t: float) -> None:
        """Forget audio, VAD and faces that no later update can look at (lock held)."""
        o = self.options
        keep_from = t + o.hop - max(o.window, o.face_window) - 1.0
        a = max(0, int(keep_from * SR))
        if "speech" in self.modalities and not self._vad_failed:
            a = min(a, self._vad_done * _VAD_FRAME)  # VAD has not seen it yet: keep
        if a > self._a0:
            self._audio = self._audio[a - self._a0:]
            self._a0 = a
        v = a // _VAD_FRAME
        if v > self._v0:
            self._vad_p = self._vad_p[v - self._v0:]
            self._v0 = v
        while self._faces and self._faces[0].t < keep_from:
            self._faces.popleft()

    # -- driving a stream

    def step(self) -> list[Update]:
        """Process the queued frames (all of them), then make every update that is due.

        The synchronous way to drive a stream (offline, tests); a live stream runs this in
        its own threads after :meth:`start`."""
        if self._running:
            raise EmofuseError("this stream runs live (start() was called): its updates "
                               "arrive through on_update")
        while True:
            with self._lock:
                if not self._pending or self._running:
                    break
                t, frame = self._pending.popleft()
            self._process_frame(t, frame)
        return [self._make_update(t) for t in self._due_locked()]

    def _due_locked(self) -> list[float]:
        with self._lock:
            return self._due()

    def flush(self, *, merge: bool = False) -> list[Update]:
        """End of input: the audio still inside the resampler, the frames waiting, the updates
        due (with ``merge``, one update for all of them) and a last one for a partial hop."""
        with self._cond:
            if self._resampler is not None:
                self._append(self._resampler(np.zeros(0, np.float32), last=True),
                             time.perf_counter())
                self._resampler = None
        if merge:
            while True:
                with self._lock:
                    if not self._pending:
                        break
                    t, frame = self._pending.popleft()
                self._process_frame(t, frame)
            due = self._due_locked()
            updates = [self._make_update(due[-1], merged=len(due) - 1, final=True)] if due \
                else []
        else:
            updates = self.step()
        with self._lock:
            clock = self._clock()
            extra = clock > self._last_t + 0.05 and (self._audio_seen or bool(self._faces))
        if extra:
            updates.append(self._make_update(round(clock, 6), final=True))
        with self._lock:
            self._closed = True
        return updates

    def start(self, on_update: Callable[[Update], None] | None = None, *,
              on_error: Callable[[str], None] | None = None) -> Stream:
        """Run live: a thread makes updates as the clock passes each hop (merging hops when it
        falls behind) and hands them to ``on_update``; another runs the face model on the
        newest frames (older waiting ones are dropped). Stop with :meth:`stop`."""
        if self._running:
            return self
        self._on_update, self._on_error = on_update, on_error
        self._running = True
        self._threads = [threading.Thread(target=self._update_loop, name="emofuse-stream",
                                          daemon=True)]
        if "face" in self.modalities:
            self._threads.append(threading.Thread(target=self._face_loop,
                                                  name="emofuse-stream-face", daemon=True))
        if "speech" in self.modalities:
            self._threads.append(threading.Thread(target=self._speech_loop,
                                                  name="emofuse-stream-speech", daemon=True))
        for th in self._threads:
            th.start()
        return self

    def stop(self, *, flush: bool = True) -> list[Update]:
        """Stop the live threads; with ``flush``, process the frames still waiting and return
        (and hand to ``on_update``) the last updates."""
        with self._cond:
            was = self._running
            self._running = False
            self._cond.notify_all()
        for th in self._threads:
            th.join(timeout=30)
        self._threads = []
        if not flush:
            with self._lock:
                self._closed = True
            return []
        if was:
            with self._lock:
                self.counters["frames_dropped"] += len(self._pending)
                self._pending.clear()
        final = self.flush(merge=was)
        if was and self._on_update is not None:
            for u in final:
                self._deliver(u)
        return final

    def close(self) -> None:
        """Stop at once without waiting: the threads end after the work in hand; no more
        updates are made (for a client that went away)."""
        with self._cond:
            self._running = False
            self._closed = True
            self._pending.clear()
            self._speech_job = None
            self._cond.notify_all()

    def _deliver(self, u: Update) -> None:
        try:
            self._on_update(u)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a callback never stops the stream
            self._error(f"update callback failed ({type(exc).__name__}: {exc})")

    def _face_loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._pending:
                    self._cond.wait(0.1)
                if not self._running:
                    return
                t, frame = self._pending.popleft()
                self._busy_t = t
            try:
                self._process_frame(t, frame)
            except Exception as exc:  # noqa: BLE001 - a bad frame never stops the stream
                self._error(f"face model failed on a frame ({type(exc).__name__}: {exc})")
            finally:
                with self._cond:
                    self._busy_t = None
                    self._cond.notify_all()

    def _update_loop(self) -> None:
        while True:
            with self._cond:
                due = self._due()
                while self._running and not due:
                    self._cond.wait(0.05)
                    due = self._due()
                if not self._running:
                    return
            try:
                u = self._make_update(due[-1], merged=len(due) - 1)
            except Exception as exc:  # noqa: BLE001 - report, skip the hop, keep going
                with self._lock:
                    self._index = max(self._index, int(round(due[-1] / self.options.hop)))
                self._error(f"update failed ({type(exc).__name__}: {exc})")
                continue
            if self._on_update is not None and not self._closed:
                self._deliver(u)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop(flush=False)


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


# -- files --------------------------------------------------------------------------------------


def media_events(path: str | Path, *, frame_rate: float = 10.0, chunk_s: float = 0.1,
                 modalities: Sequence[str] = STREAM_MODALITIES
                 ) -> Iterator[tuple[float, str, Any]]:
    """A file as a stream: ``(time, "audio", samples at 16 kHz)`` chunks of ``chunk_s`` and
    ``(time, "frame", rgb)`` frames at ``frame_rate``, in time order (a frame comes after the
    audio up to its time). Audio files give audio; videos give frames and their sound."""
    from .inference import detect_kind
    from .media import iter_frames, load_audio, probe_video, read_audio_track

    path = Path(path)
    kind, _ = detect_kind(path)
    if kind not in ("audio", "video"):
        raise MediaError(path, f"a live source must be audio or video, not {kind}")
    y = np.zeros(0, dtype=np.float32)
    if kind == "audio":
        if "speech" in modalities:
            y, _ = load_audio(path, sr=SR)
        frames: Iterable[tuple[float, np.ndarray]] = ()
    else:
        info = probe_video(path)
        if info.has_audio and "speech" in modalities:
            y = read_audio_track(path, sr=SR)
        frames = iter_frames(path, fps=frame_rate) if "face" in modalities else ()
    step = max(1, int(round(chunk_s * SR)))
    pos = 0
    for t, rgb in frames:
        upto = min(y.size, int(math.ceil(t * SR)))
        while pos < upto:
            n = min(step, upto - pos)
            yield (pos + n) / SR, "audio", y[pos: pos + n]
            pos += n
        yield float(t), "frame", rgb
    while pos < y.size:
        n = min(step, y.size - pos)
        yield (pos + n) / SR, "audio", y[pos: pos + n]
        pos += n


def replay(recognizer: Recognizer, source: str | Path | Iterable[tuple[float, str, Any]], *,
           options: StreamOptions | None = None,
           modalities: Sequence[str] | None = None) -> list[Update]:
    """The offline timeline: a file (or :func:`media_events`) fed to a :class:`Stream` as fast
    as it goes, every frame processed; the list of its updates."""
    opts = options or StreamOptions()
    stream = Stream(recognizer, opts, modalities=modalities)
    events = media_events(source, frame_rate=opts.frame_rate, modalities=stream.modalities) \
        if isinstance(source, (str, Path)) else source
    updates: list[Update] = []
    for t, kind, payload in events:
        if kind == "audio":
            stream.push_audio(payload, SR)
        else:
            stream.push_frame(payload, t)
        updates += stream.step()
    updates += stream.flush()
    return updates


def play(stream: Stream, events: Iterable[tuple[float, str, Any]], *, speed: float = 1.0,
         stop: threading.Event | None = None, on_push: Callable[[float, str, float], None]
         | None = None) -> float:
    """Feed ``events`` to a live stream at ``speed`` times real time (each pushed when the
    wall clock reaches its time); returns the stream seconds played. ``stop`` ends early;
    ``on_push(time, kind, wall)`` is told of every push."""
    if not speed > 0:
        raise ConfigError(f"speed must be positive, not {speed}")
    t0 = time.perf_counter()
    last = 0.0
    for t, kind, payload in events:
        if stop is not None and stop.is_set():
            break
        wait = t0 + t / speed - time.perf_counter()
        if wait > 0:
            if stop is not None:
                if stop.wait(wait):
                    break
            else:
                time.sleep(wait)
        if kind == "audio":
            stream.push_audio(payload, SR)
        else:
            stream.push_frame(payload, t)
        if on_push is not None:
            on_push(t, kind, time.perf_counter())
        last = t
    return last


def stream_timeline(updates: Sequence[Update]) -> list[Segment]:
    """Updates as timeline segments: one per hop for ``fused`` and for each modality."""
    out: list[Segment] = []
    for u in updates:
        for m, p in [("fused", u.probabilities), *u.modalities.items()]:
            if not p:
                continue
            label, conf = max(p.items(), key=lambda kv: kv[1])
            out.append(Segment(start=round(u.start, 3), end=round(u.time, 3), modality=m,
                               label=label, confidence=round(float(conf), 6),
                               probabilities=dict(p)))
    return out


def agreement(live: Sequence[Update], offline: Sequence[Update]) -> dict[str, float]:
    """How often a live run showed the offline label: for every offline hop, the live update
    of that hop, or the latest live update before it (what the live view showed then)."""
    by_index = {u.index: u for u in live}
    ordered = sorted(live, key=lambda u: u.index)
    same = total = missing = 0
    j = -1
    for u in sorted(offline, key=lambda u: u.index):
        total += 1
        v = by_index.get(u.index)
        if v is None:
            missing += 1
            while j + 1 < len(ordered) and ordered[j + 1].index <= u.index:
                j += 1
            v = ordered[j] if j >= 0 else None
        same += int(v is not None and v.label == u.label)
    return {"hops": total, "same": same, "agreement": round(same / total, 4) if total else 1.0,
            "hops_missing_live": missing}

