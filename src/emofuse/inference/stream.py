"""Live emotion from a stream of audio chunks and video frames: :class:`Stream`.

>>> from emofuse import Recognizer
>>> from emofuse.inference import Stream, replay
>>> rec = Recognizer.load("default")                                  # doctest: +SKIP
>>> s = Stream(rec)                                                   # doctest: +SKIP
>>> s.push_audio(chunk, sr=48000)        # int16 or float, any rate   # doctest: +SKIP
>>> s.push_frame(rgb, t=1.25)            # RGB uint8, seconds         # doctest: +SKIP
>>> for u in s.step(): print(u.time, u.label, u.modalities)           # doctest: +SKIP
>>> replay(rec, "examples/video.mp4")    # a file -> its updates      # doctest: +SKIP

How an update is made, every ``hop`` seconds of *stream time* (default 0.5 s):

* audio is resampled to 16 kHz as it arrives (a streaming soxr resampler: chunk boundaries
  change nothing) and Silero VAD (:mod:`emofuse.features.vad`) runs on every
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

The same code makes the offline timeline: :func:`~emofuse.inference.stream_files.replay`
feeds a file to a stream as fast as it can, every frame processed, and returns the list of
updates. Run live (:meth:`Stream.start`, :mod:`~emofuse.inference.stream_live`), a stream
runs the face model and the speech model in threads of their own. Frames that wait while the
face model is busy are dropped (``frames_dropped``). An update waits at most
``speech_wait`` (0.3 s) for the speech answer on its window and for the frames up to its
time, then shows the latest answer (``speech_time`` < ``time``, ``speech_late``), so that
updates keep coming on time while speech catches up; hops that pass while an update is made
are merged into the next one (``hops_merged``). Counters in every update say so.
:func:`~emofuse.inference.stream_files.play` feeds a file at real-time speed (``speed`` > 1
for tests), as a microphone and a webcam would.
"""


from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, EmofuseError, MediaError
from .protocol import fuse
from .stream_live import LiveThreads
from .stream_parts import (SR, STREAM_MODALITIES, VAD_FRAME, FaceObs, Resampler, StreamOptions,
                           Update, Vad, observe_face, to_float_audio, warm)
from .types import ModelUnavailableError, Waveform

if TYPE_CHECKING:
    from .recognizer import Recognizer

__all__ = ["Stream"]


class Stream(LiveThreads):
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
            warm(recognizer.predictor(m), m)  # load and run once now, not in the first hops
        self._fusion = recognizer.predictor("fusion") if "fusion" in have else None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        # audio at 16 kHz: _audio[0] is sample _a0 of the stream; _n samples received
        self._resampler: Resampler | None = None
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
        self._faces: deque[FaceObs] = deque()
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
                self._resampler = Resampler(int(sr))
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

    def _face(self, t: float, frame: Any) -> FaceObs:
        """Run the face model on one frame (no lock held)."""
        return observe_face(self.rec.predictor("face"), t, frame,
                            side=self.options.frame_side, detect=self.options.detect)

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
        n_frames = upto // VAD_FRAME
        if n_frames <= self._vad_done:
            return
        if self._vad is None:
            from ..features.vad import vad_available

            if not vad_available():
                self._vad_failed = True
                return
            self._vad = Vad()
        with self._lock:
            a = self._vad_done * VAD_FRAME - self._a0
            b = n_frames * VAD_FRAME - self._a0
            if a < 0:  # trimmed away before VAD saw it (cannot happen: trimming waits for VAD)
                a = 0
            frames = self._audio[a:b].reshape(-1, VAD_FRAME).copy()
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
                f0 = -(-ws // VAD_FRAME)          # first frame inside the window
                f1 = end // VAD_FRAME             # frames f0 .. f1-1 inside
                probs = self._vad_p[max(0, f0 - self._v0): max(0, f1 - self._v0)].copy()
            audio = self._audio[max(0, ws - self._a0): max(0, end - self._a0)].copy()
        if probs is None:  # no VAD installed: every window is speech
            notes.append("silero-vad is not installed: speech is not gated by voice activity")
            voiced_idx = np.arange(0)
            seg = (ws / SR, end / SR)
            hop_voice = 1.0
        else:
            voiced = probs > o.vad_threshold
            hop_frames = max(1, int(round(o.hop * SR / VAD_FRAME)))
            hop_voice = float(voiced[-hop_frames:].mean()) if voiced.size else 0.0
            if voiced.sum() * (VAD_FRAME / SR) < o.min_speech_s:
                return None, None, False, hop_voice, None
            voiced_idx = np.flatnonzero(voiced)
            first = (f0 + voiced_idx[0]) * VAD_FRAME / SR - o.pad_s
            last = (f0 + voiced_idx[-1] + 1) * VAD_FRAME / SR + o.pad_s
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
        out = self.rec.predictor("speech").predict(Waveform(piece, SR))
        with self._lock:
            self.counters["speech_runs"] += 1
        if out.probabilities is None:
            return None
        p = np.asarray(out.probabilities, dtype=np.float64)
        return p / max(p.sum(), 1e-12)

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
        face_frames, latest, face_bad = 0, None, False
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
                bad = [f.problem for f in found if f.problem]
                if len(bad) * 2 > len(found):  # as a video file: most frames' faces unusable
                    face_bad = True
                    notes.append(f"the face is tiny or blurred in {len(bad)} of {len(found)} "
                                 f"frames of the last {o.face_window:g} s (first: {bad[0]}): "
                                 "the face output is unreliable")
            elif obs:
                notes.append("no face in the frames of the last "
                             f"{o.face_window:g} s")
        if per:
            fused, weights = fuse(per, self._fusion)
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
            reliable=any(m != "face" or not face_bad for m in per), notes=notes,
            merged=merged, lag_ms=lag,
            compute_ms=round(1000 * (time.perf_counter() - t0), 2), counters=counters)

    def _trim(self, t: float) -> None:
        """Forget audio, VAD and faces that no later update can look at (lock held)."""
        o = self.options
        keep_from = t + o.hop - max(o.window, o.face_window) - 1.0
        a = max(0, int(keep_from * SR))
        if "speech" in self.modalities and not self._vad_failed:
            a = min(a, self._vad_done * VAD_FRAME)  # VAD has not seen it yet: keep
        if a > self._a0:
            self._audio = self._audio[a - self._a0:]
            self._a0 = a
        v = a // VAD_FRAME
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
