"""Speech emotion: :class:`SpeechPredictor`, a trained model folder (``emofuse train`` writes
one) behind the predictor protocol.

>>> from emofuse.inference.speech import SpeechPredictor
>>> pred = SpeechPredictor("models/ser-ravdess")                     # doctest: +SKIP
>>> pred.predict(Waveform(y, 16000)).probabilities                   # doctest: +SKIP
>>> pred.analyse("clip.wav")["label"]                                # doctest: +SKIP
'angry'
>>> results = pred.analyse_many(["a.wav", "broken.wav"])            # doctest: +SKIP
>>> results[1]["error"]                                              # doctest: +SKIP
'broken.wav: not audio: the file holds text'

Audio of any rate and channel count is mixed to mono and resampled to the model's rate (the
card's ``sr``). Clips up to ``window_s`` seconds go through the model whole; longer recordings
are read and scored in overlapping windows (never loaded whole into the model) and the window
probabilities averaged; each window's result is kept in ``segments``. Silent, too short,
clipped or low-rate input is reported: a clear error for the first two, a warning for the
others.

The members (:mod:`emofuse.inference.speech_models`) are of any ``kind``. A model trained in
the ``spknorm`` setting standardises features per speaker: give it ``speaker=`` statistics from
several unlabelled utterances of that speaker (:meth:`SpeechPredictor.speaker_stats`), or set
them once on :attr:`SpeechPredictor.speaker`. Without them it falls back to per-utterance
normalisation (waveform models) or to no speaker normalisation, with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, EmofuseError, MediaError
from .card import ModelCard
from .protocol import register_predictor
from .speech_models import (MIN_SECONDS, SILENCE_PEAK, check_audio, load_member, window_bounds)
from .types import ModalityOutput, Waveform

__all__ = ["SpeechPredictor", "SpeakerStats"]


@dataclass
class SpeakerStats:
    """Per-member normalisation statistics of one speaker (see
    :meth:`SpeechPredictor.speaker_stats`)."""

    per_member: list[np.ndarray | None] = field(default_factory=list)
    utterances: int = 0
    #: ``enrol``: one speaker's recordings; ``folder``: the recordings predicted together.
    mode: str = "enrol"


@register_predictor("speech")
class SpeechPredictor:
    """Predict emotions from audio with a saved speech model.

    Parameters
    ----------
    model_dir
        Model folder (``emofuse train`` output).
    card
        Its card, when it was read already (else it is read here).
    window_s, hop_s
        Window and hop for long audio (default: the card's ``window_s``, else 6 s; half of
        it).
    num_threads
        Torch CPU threads (``None``: leave as is).
    cache
        Feature cache for the vector features of files scored in one window (``None``:
        compute them every time).
    """

    modality = "speech"

    def __init__(self, model_dir: str | os.PathLike, *, card: ModelCard | None = None,
                 window_s: float | None = None, hop_s: float | None = None,
                 num_threads: int | None = None, cache: Any = None) -> None:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self.model_dir = Path(model_dir)
        self.members, weights, self.card = load_member(self.model_dir, card)
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.labels: list[str] = list(self.card.labels)
        self.sr = self.members[0].sr
        for m in self.members:
            if m.labels != self.labels:
                raise DataError(self.model_dir, "ensemble members disagree on the labels")
        self.window_s = float(window_s or self.card.window_s or 6.0)
        self.hop_s = float(hop_s or self.window_s / 2)
        self.setting = self.card.setting
        self.temperature = float(self.card.temperature or 1.0)
        self.cache = cache
        #: :class:`SpeakerStats` applied by :meth:`predict` (see
        #: :meth:`emofuse.Recognizer.adapt_speech`); ``None``: the model's default.
        self.speaker: SpeakerStats | None = None

    @classmethod
    def load(cls, model_dir: str | os.PathLike, card: ModelCard | None = None
             ) -> SpeechPredictor:
        """The predictor of a speech model folder (the protocol's loader)."""
        return cls(model_dir, card=card)

    def __repr__(self) -> str:
        return (f"SpeechPredictor({str(self.model_dir)!r}, labels={self.labels}, "
                f"setting={self.setting!r}, members={len(self.members)})")

    # -- speaker statistics -------------------------------------------------------------------

    @property
    def adapts(self) -> bool:
        """Whether :meth:`speaker_stats` change this model's answers."""
        return any(m.adapts for m in self.members)

    def speaker_stats(self, audio: Iterable[str | os.PathLike | np.ndarray], *,
                      sr: int | None = None, mode: str = "enrol") -> SpeakerStats:
        """Normalisation statistics of one speaker (``mode="enrol"``), or of one source
        (``"folder"``: the recordings predicted together), from several unlabelled
        recordings (paths or arrays at ``sr``); unreadable files are skipped."""
        if mode not in ("enrol", "folder"):
            raise EmofuseError(f"speaker statistics: mode is enrol or folder, not {mode!r}")
        waves = []
        for a in audio:
            try:
                waves.append(self._load(a, sr)[0])
            except EmofuseError:
                continue
        if not waves:
            raise DataError(None, "speaker statistics need at least one readable utterance")
        return SpeakerStats([m.speaker_stats(waves) if m.adapts else None
                             for m in self.members], len(waves), mode)

    # -- prediction ---------------------------------------------------------------------------

    def predict(self, x: Waveform) -> ModalityOutput:
        """The protocol: class probabilities of a waveform (with :attr:`speaker`'s
        statistics when set) and the warnings about it."""
        r = self.analyse(x.y, sr=x.sr, speaker=self.speaker)
        return ModalityOutput(np.array([r["probs"][c] for c in self.labels], dtype=np.float64),
                              warnings=list(r.get("warnings", [])))

    def analyse(self, audio: str | os.PathLike | np.ndarray, *, sr: int | None = None,
                speaker: SpeakerStats | None = None) -> dict[str, Any]:
        """Emotion of one recording (path, or array at ``sr``), with its windows.

        Returns
        -------
        dict
            ``label``, ``probs`` (label -> probability), ``duration_s``, ``windows``,
            ``warnings`` and, for recordings longer than one window, ``segments``
            (``start``, ``end``, ``label``, ``probs`` per window).

        Raises
        ------
        MediaError
            When the input cannot be decoded or scored (silent, too short).
        """
        where = audio if not isinstance(audio, np.ndarray) else None
        warnings: list[str] = []
        if self.setting == "spknorm" and speaker is None:
            warnings.append("model was trained with per-speaker normalisation but no speaker "
                            "statistics were given; scoring without them")
        stats = speaker.per_member if speaker else [None] * len(self.members)
        mode = speaker.mode if speaker else "enrol"
        win, hop = int(self.window_s * self.sr), int(self.hop_s * self.sr)
        if isinstance(audio, np.ndarray) or self._short(audio):
            y, notes = self._load(audio, sr)
            warnings += notes + check_audio(y, self.sr, where=where)
            bounds = window_bounds(len(y), win, hop)
            vectors = self._cached_vectors(audio) if len(bounds) == 1 else None
            probs = self._score([y[a:b] for a, b in bounds], stats, vectors, mode)
            n = len(y)
        else:  # long file: read window by window
            probs, bounds, n, notes = self._score_file(Path(audio), win, hop, stats, mode)
            warnings += notes
        mean = probs.mean(axis=0)
        out: dict[str, Any] = {
            "label": self.labels[int(np.argmax(mean))],
            "probs": {c: round(float(p), 6) for c, p in zip(self.labels, mean)},
            "duration_s": round(n / self.sr, 3), "windows": len(bounds),
            "warnings": warnings}
        if where is not None:
            out = {"path": str(where), **out}
        if len(bounds) > 1:
            out["segments"] = [{"start": round(a / self.sr, 3), "end": round(b / self.sr, 3),
                                "label": self.labels[int(np.argmax(p))],
                                "probs": {c: round(float(x), 4) for c, x in zip(self.labels, p)}}
                               for (a, b), p in zip(bounds, probs)]
        return out

    def analyse_many(self, paths: Iterable[str | os.PathLike], *,
                     speaker: SpeakerStats | None = None) -> list[dict[str, Any]]:
        """:meth:`analyse` for each file; a file that fails gives ``{"path", "error"}`` and the
        batch goes on."""
        results = []
        for p in paths:
            try:
                results.append(self.analyse(p, speaker=speaker))
            except EmofuseError as exc:
                results.append({"path": str(p), "error": str(exc)})
        return results

    def proba(self, audio: str | os.PathLike | np.ndarray, *, sr: int | None = None,
              speaker: SpeakerStats | None = None) -> np.ndarray:
        """Mean class probabilities ``(C,)`` of one recording (see :meth:`analyse`)."""
        return np.array([self.analyse(audio, sr=sr, speaker=speaker)["probs"][c]
                         for c in self.labels])

    # -- ONNX export --------------------------------------------------------------------------

    def _member(self) -> Any | None:
        ms = self.members
        return ms[0] if len(ms) == 1 and ms[0].kind in ("waveform", "vector") else None

    @property
    def module(self) -> Any:
        """The torch network (single waveform or vector model; ``None`` otherwise)."""
        m = self._member()
        return None if m is None else m.model

    def onnx_module(self) -> Any:
        """The network to export: a waveform model runs with its STFT computed as a DFT by
        convolutions (ONNX export does not take complex STFTs); the parity check compares the
        exported graph with the unchanged :attr:`module`."""
        from .onnx_wrap import with_conv_stft

        m = self._member()
        if m is None or m.kind != "waveform":
            return self.module
        return with_conv_stft(m.model)

    @property
    def onnx_dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Waveform models take any length; feature vectors have a fixed size."""
        m = self._member()
        if m is not None and m.kind == "waveform":
            return {"input": {0: "batch", 1: "samples"}}
        return {"input": {0: "batch"}}

    def example_input(self) -> Any:
        import torch

        from .onnx_wrap import test_signal

        m = self._member()
        if m is None:
            raise EmofuseError("only a single waveform or vector speech model can be exported")
        y = test_signal(sr=m.sr)
        x = y[None] if m.kind == "waveform" else m.vectors([y])
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    # -- internals ----------------------------------------------------------------------------

    def _cached_vectors(self, audio: str | os.PathLike | np.ndarray
                        ) -> list[np.ndarray | None] | None:
        """Cached feature vectors of a file for the vector/classical members."""
        if self.cache is None or isinstance(audio, np.ndarray):
            return None
        from ..features.speech import extract

        return [None if m.feature is None else
                extract(audio, m.feature["feature"], params=m.feature["params"], sr=m.sr,
                        cache=self.cache)[None]
                for m in self.members]

    def _score(self, windows: Sequence[np.ndarray], stats: Sequence[np.ndarray | None],
               vectors: Sequence[np.ndarray | None] | None = None, mode: str = "enrol"
               ) -> np.ndarray:
        total = None
        vectors = vectors or [None] * len(self.members)
        for m, w, s, v in zip(self.members, self.weights, stats, vectors):
            p = w * m.proba(windows, stats=s, vectors=v, mode=mode)
            total = p if total is None else total + p
        assert total is not None
        if self.temperature != 1.0:  # calibration fitted on validation data (card)
            z = np.log(np.clip(total, 1e-300, None)) / self.temperature
            z = np.exp(z - z.max(axis=1, keepdims=True))
            total = z / z.sum(axis=1, keepdims=True)
        return total

    def _short(self, path: str | os.PathLike) -> bool:
        from ..media import probe_audio

        info = probe_audio(path, decode=False)
        return info.duration <= max(60.0, 2 * self.window_s)

    def _load(self, audio: str | os.PathLike | np.ndarray, sr: int | None
              ) -> tuple[np.ndarray, list[str]]:
        from ..media import load_audio, probe_audio, resample, to_mono

        notes: list[str] = []
        if isinstance(audio, np.ndarray):
            if sr is None:
                raise EmofuseError("give sr= with an array of samples")
            y = to_mono(np.asarray(audio, dtype=np.float32))
            if sr < self.sr:
                notes.append(f"sample rate {sr} Hz is below the model's {self.sr} Hz; "
                             "upsampled, high frequencies are missing")
            y = resample(np.nan_to_num(y), sr, self.sr)
            return np.ascontiguousarray(y, np.float32), notes
        info = probe_audio(audio, decode=False)
        if info.samplerate < self.sr:
            notes.append(f"sample rate {info.samplerate} Hz is below the model's {self.sr} Hz; "
                         "upsampled, high frequencies are missing")
        if info.channels > 1:
            notes.append(f"{info.channels} channels mixed to mono")
        y, _ = load_audio(audio, sr=self.sr)
        return y, notes

    def _score_file(self, path: Path, win: int, hop: int,
                    stats: Sequence[np.ndarray | None], mode: str = "enrol"
                    ) -> tuple[np.ndarray, list[tuple[int, int]], int, list[str]]:
        from ..media import load_audio, probe_audio

        info = probe_audio(path, decode=False)
        notes: list[str] = []
        if info.samplerate < self.sr:
            notes.append(f"sample rate {info.samplerate} Hz is below the model's {self.sr} Hz; "
                         "upsampled, high frequencies are missing")
        if info.channels > 1:
            notes.append(f"{info.channels} channels mixed to mono")
        n = int(round(info.duration * self.sr))
        bounds = window_bounds(n, win, hop)
        probs, kept, clipped, silent = [], [], 0, 0
        for a, b in bounds:
            y, _ = load_audio(path, sr=self.sr, offset=a / self.sr, duration=(b - a) / self.sr)
            if len(y) < MIN_SECONDS * self.sr or np.max(np.abs(y)) < SILENCE_PEAK:
                silent += 1
                continue
            clipped += int(np.mean(np.abs(y) >= 0.999) > 0.001)
            probs.append(self._score([y], stats, mode=mode)[0])
            kept.append((a, a + len(y)))
        if not probs:
            raise MediaError(path, "silent throughout; no emotion to recognise")
        if silent:
            notes.append(f"{silent} silent window(s) skipped")
        if clipped:
            notes.append(f"clipped audio in {clipped} window(s); the prediction may be less "
                         "reliable")
        return np.stack(probs), kept, n, notes

