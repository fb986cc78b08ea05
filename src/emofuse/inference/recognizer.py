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
``card.json``), read once into a :class:`~emofuse.inference.card.ModelCard`. Each modality's
model is loaded on first use by the loader its card names (:mod:`emofuse.inference.protocol`)
into a :class:`~emofuse.inference.protocol.Predictor` (``predict(x) -> ModalityOutput``) or a
fusion predictor (``fuse``).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import DataError, EmofuseError, MediaError
from .card import ModelInfo, resolve_models
from .checks import face_problem, no_speech
from .detect import detect_kind, is_path
from .protocol import fuse, load_predictor
from .types import (KIND_MODALITIES, SR, Face, Kind, ModalityOutput, ModelUnavailableError,
                    NoFaceError, Prediction, PredictionFailure, Segment, UnsupportedMediaError,
                    Waveform, probs_dict)
from .video import face_frames, frames_per_second, main_face, predict_face

__all__ = ["Recognizer", "PredictOptions"]


@dataclass
class PredictOptions:
    """How inputs are cut and sampled.

    Parameters
    ----------
    timeline
        Return per-segment (speech) and per-frame (faces) predictions.
    segmentation
        ``vad`` (Silero voice-activity segments) or ``windows`` (fixed windows) for speech;
        ``stream``: the timeline is the one a live stream gives (:func:`emofuse.inference.replay`,
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
            from ..errors import ConfigError

            raise ConfigError("invalid prediction options: " + "; ".join(problems))



def _segment(start: float, end: float, modality: str, labels: Sequence[str],
             p: np.ndarray) -> Segment:
    i = int(np.argmax(p))
    return Segment(start=round(float(start), 3), end=round(float(end), 3), modality=modality,
                   label=labels[i], confidence=round(float(p[i]), 6),
                   probabilities=probs_dict(list(labels), p))


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
        if not getattr(pred, "adapts", False):
            return 0
        from .speech import SpeakerStats

        stats = audio if isinstance(audio, SpeakerStats) else \
            pred.speaker_stats([Path(a) for a in audio], mode=mode)
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
        opts = self.options if timeline is None else replace(self.options, timeline=timeline)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                pred = self._predict(x, sr=sr, kind=kind, opts=opts, source=source)
            except DataError as exc:
                if isinstance(x, os.PathLike) or (
                        isinstance(x, str) and kind != "text" and is_path(x)):
                    if exc.path is None:  # a problem found deep inside: name the file
                        raise type(exc)(source or str(x), exc.problem) from None
                    if source and exc.path == str(x):
                        # name the upload, not the temporary file it was saved to
                        raise type(exc)(source, exc.problem) from None
                raise
        # what reading the input warned about came first: it leads the predictor's notes
        early = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        early = [m for i, m in enumerate(early) if m not in pred.warnings and m not in early[:i]]
        pred.warnings = early + pred.warnings
        if source and (isinstance(x, os.PathLike) or (
                isinstance(x, str) and kind != "text" and is_path(x))):
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
        if isinstance(x, str) and (kind == "text" or (kind is None and not is_path(x))):
            from ..media import normalise_text

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
            from ..media import normalise_text, read_text

            text = normalise_text(read_text(path, max_bytes=1_000_000))
            if not text:
                raise MediaError(path, "the text file holds no text")
            return self._finish(src, "text", {"text": self._run("text", text)}, notes, [], [],
                                None)
        if kind == "image":
            from ..media import load_image

            return self._predict_image(load_image(path), src=src, notes=notes, where=path,
                                       detect=opts.detect)
        if kind == "audio":
            from ..media import load_audio

            y, rate = load_audio(path, sr=SR)
            return self._predict_audio(Waveform(y, rate), src=src, opts=opts, notes=notes)
        if kind == "video":
            return self._predict_video(path, src=src, opts=opts, notes=notes)
        raise UnsupportedMediaError(path, f"unknown kind {kind!r}")

    def _predict_streamed(self, path: Path, *, kind: str, src: str, opts: PredictOptions,
                          notes: list[str]) -> Prediction:
        """The whole file's answer, with (``timeline``) the updates of a live stream replayed
        offline as its timeline: the same code as ``emofuse live``."""
        base = replace(opts, timeline=False, segmentation="vad")
        if kind == "audio":
            from ..media import load_audio

            y, rate = load_audio(path, sr=SR)
            pred = self._predict_audio(Waveform(y, rate), src=src, opts=base, notes=notes)
        else:
            pred = self._predict_video(path, src=src, opts=base, notes=notes)
        if opts.timeline:
            from .stream_files import replay, stream_timeline
            from .stream_parts import StreamOptions

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
            return self._predict_audio(Waveform(y, int(sr or SR)), src=source, opts=opts,
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
        return list(pred.labels), predict_face(pred, x, detect=detect)

    def _predict_image(self, rgb: np.ndarray, *, src: str, notes: list[str],
                       where: Path | None, detect: str = "auto") -> Prediction:
        labels, out = self._run("face", rgb, detect=detect)
        if out.probabilities is None:
            raise NoFaceError(where if where is not None else src,
                              "no face found in the image (if it is already a face crop, "
                              "predict with --detect never)")
        if out.faces and (problem := face_problem(rgb, main_face(out.faces))):
            notes.append(f"the face is {problem}: the prediction is unreliable")
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
        elif silent := no_speech(w):
            notes.append(silent)
        out, timeline, more = self._speech(w, opts)
        return self._finish(src, "audio", {"speech": out}, notes + more, [], timeline, duration)

    def _predict_video(self, path: Path, *, src: str, opts: PredictOptions,
                       notes: list[str]) -> Prediction:
        from ..media import probe_video, read_audio_track

        info = probe_video(path)
        outputs: dict[str, tuple[list[str], ModalityOutput]] = {}
        timeline: list[Segment] = []
        faces: list[Face] = []
        if "face" in self._models:
            pred = self.predictor("face")
            labels = list(pred.labels)
            fps = frames_per_second(info.duration, opts.frame_rate)  # short clip: at least 4 frames
            probs, problems = [], []
            for t, rgb, o in face_frames(pred, path, fps=fps, max_frames=opts.max_frames,
                                         detect=opts.detect):
                if o.probabilities is None:
                    continue
                probs.append(o.probabilities)
                main = main_face(o.faces)
                if main is not None:
                    faces.append(main.model_copy(update={"time": round(float(t), 3)}))
                    if problem := face_problem(rgb, main):
                        problems.append(problem)
                if opts.timeline:
                    timeline.append(_segment(t, t + 1.0 / fps, "face", labels, o.probabilities))
            if len(problems) * 2 > len(probs):   # most sampled faces tiny, blurred or flat
                notes.append(f"the face is tiny or blurred in {len(problems)} of {len(probs)} "
                             f"sampled frames (first: {problems[0]}): the prediction is "
                             "unreliable")
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
            y = read_audio_track(path, sr=SR)
            silent = no_speech(Waveform(y, SR))
            if silent and outputs:
                notes.append("the audio track holds no speech (voice activity detection): "
                             "predicted from faces only")
            else:
                if silent:
                    notes.append(silent)
                out, seg, more = self._speech(Waveform(y, SR), opts)
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
        per = {m: probs_dict(labels, o.probabilities) for m, (labels, o) in outputs.items()}
        for _, o in outputs.values():
            notes += [w for w in o.warnings if w not in notes]
        fused, weights = fuse(per, self.predictor("fusion") if len(per) > 1
                              and "fusion" in self._models else None)
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
