"""Speech emotion prediction with a trained model folder (``emofuse train`` writes one).

>>> from emofuse.speech import SpeechPredictor
>>> pred = SpeechPredictor("models/ser-ravdess")                     # doctest: +SKIP
>>> pred.predict("clip.wav")["label"]                                # doctest: +SKIP
'angry'
>>> results = pred.predict_many(["a.wav", "broken.wav"])            # doctest: +SKIP
>>> results[1]["error"]                                              # doctest: +SKIP
'broken.wav: not audio: the file holds text'

Audio of any rate and channel count is mixed to mono and resampled to the model's rate. Clips
up to ``window_s`` seconds go through the model whole; longer recordings are read and scored in
overlapping windows (never loaded whole into the model) and the window probabilities averaged;
each window's result is kept in ``segments``. Silent, too short, clipped or low-rate input is
reported: a clear error for the first two, a warning for the others.

A model folder holds ``model.safetensors`` + ``card.json`` (see :mod:`emofuse.train.checkpoint`).
The card's ``kind`` says what the model is: ``waveform`` (a network over audio), ``vector`` (a
network over a hand-crafted feature vector), ``classical`` (scikit-learn classifier stored as
arrays) or ``ensemble`` (members in sub-folders, probabilities averaged with ``weights``). A
model trained in the ``spknorm`` setting standardises features per speaker: give it
``speaker=`` statistics from several unlabelled utterances of that speaker
(:meth:`SpeechPredictor.speaker_stats`): mel-band or feature statistics, or, for networks
marked ``output_norm``, statistics of their class log-probabilities. Without them it falls back
to per-utterance normalisation (waveform models) or to no speaker normalisation, with a
warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, EmofuseError, MediaError

__all__ = ["SpeechPredictor", "SpeakerStats", "Member", "load_member", "save_member",
           "window_bounds", "check_audio", "band_stats", "vector_stats", "waveform_proba",
           "normalise_log_proba",
           "MIN_SECONDS", "KINDS"]

#: Shortest input that is scored (seconds).
MIN_SECONDS = 0.25
#: Peak level (linear) below which input counts as silent (-60 dBFS).
SILENCE_PEAK = 1e-3
KINDS = ("waveform", "vector", "classical", "adaptive", "ensemble")


def window_bounds(n: int, win: int, hop: int) -> list[tuple[int, int]]:
    """Sample ranges of the windows that cover ``n`` samples: the whole when ``n <= win``, else
    windows of ``win`` every ``hop`` samples, the last one ending at ``n``."""
    if n <= win:
        return [(0, n)]
    starts = list(range(0, n - win + 1, hop))
    if starts[-1] + win < n:
        starts.append(n - win)
    return [(s, s + win) for s in starts]


def check_audio(y: np.ndarray, sr: int, *, where: str | os.PathLike | None = None) -> list[str]:
    """Raise :class:`MediaError` for input that cannot be scored (silent, too short); return
    warnings for input that can (clipped)."""
    dur = len(y) / sr if sr else 0.0
    if dur < MIN_SECONDS:
        raise MediaError(where, f"too short to score ({dur:.2f} s; at least {MIN_SECONDS} s "
                         "needed)")
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak < SILENCE_PEAK:
        raise MediaError(where, f"silent (peak {20 * np.log10(max(peak, 1e-12)):.0f} dBFS); "
                         "no emotion to recognise")
    warnings = []
    clipped = float(np.mean(np.abs(y) >= 0.999))
    if clipped > 0.001:
        warnings.append(f"clipped: {100 * clipped:.1f} % of samples at full scale; the "
                        "prediction may be less reliable")
    return warnings


# --------------------------------------------------------------------------------------------
# Members: one trained model of any kind, scoring windows of audio


@dataclass
class Member:
    """A trained model that maps waveform windows to class probabilities.

    Attributes
    ----------
    kind
        ``waveform``, ``vector`` or ``classical``.
    labels
        Output classes, in order.
    model
        The torch module (``waveform``, ``vector``) or the fitted scikit-learn estimator.
    spec
        ``{"name", "params"}`` of the model (registry name, constructor parameters).
    feature
        For ``vector``/``classical``: ``{"feature", "version", "sr", "params"}`` of the
        extractor (see :func:`emofuse.features.speech.feature_settings`).
    setting
        ``inductive`` or ``spknorm``.
    sr
        Sample rate the model expects.
    output_norm
        ``spknorm`` networks trained on inductive input: their class log-probabilities are
        standardised per speaker (statistics from that speaker's unlabelled utterances).
    """

    kind: str
    labels: list[str]
    model: Any
    spec: dict[str, Any]
    feature: dict[str, Any] | None = None
    setting: str = "inductive"
    sr: int = 16000
    output_norm: bool = False

    # -- features -----------------------------------------------------------------------------

    def vectors(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Feature vectors ``(n, d)`` of waveforms (``vector``/``classical`` members)."""
        from .features import get_feature

        assert self.feature is not None
        fn = get_feature(self.feature["feature"]).fn
        return np.stack([np.asarray(fn(w, sr=self.sr, **self.feature["params"]), np.float32)
                         for w in waves])

    @property
    def adapts(self) -> bool:
        """Whether unlabelled statistics of the speaker or source change this member."""
        return self.setting == "spknorm" or self.kind == "adaptive"

    def speaker_stats(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """``(2, d)`` mean and std of this member's normalised quantity over a speaker's
        utterances: mel bands (``waveform``) or feature vector entries (others); ``(3, d)``
        count, mean and variance for ``adaptive`` members."""
        if self.kind == "adaptive":
            from .models.speech_adaptive import source_stats

            return source_stats(self.vectors(waves))
        if self.output_norm:
            return vector_stats(np.log(self._raw_proba(waves) + 1e-6))
        if self.kind == "waveform":
            return band_stats(self.model, waves)
        return vector_stats(self.vectors(waves))

    # -- scoring ------------------------------------------------------------------------------

    def proba(self, waves: Sequence[np.ndarray], *, stats: np.ndarray | None = None,
              vectors: np.ndarray | None = None, mode: str = "enrol") -> np.ndarray:
        """Class probabilities ``(n, C)`` of waveform windows (or of ready ``vectors``);
        ``mode`` says where ``stats`` come from (``enrol``: one speaker, ``folder``: the
        recordings predicted together), for ``adaptive`` members."""
        if self.kind == "adaptive":
            x = self.vectors(waves) if vectors is None else np.asarray(vectors, np.float32)
            return self.model.predict_proba(x, mode=mode, stats=stats)
        if self.output_norm:
            p = self._raw_proba(waves, vectors=vectors)
            return p if stats is None else normalise_log_proba(p, stats)
        return self._raw_proba(waves, stats=stats, vectors=vectors)

    def _raw_proba(self, waves: Sequence[np.ndarray], *, stats: np.ndarray | None = None,
                   vectors: np.ndarray | None = None) -> np.ndarray:
        if self.kind == "waveform":
            return waveform_proba(self.model, waves, stats=stats)
        x = self.vectors(waves) if vectors is None else np.asarray(vectors, np.float32)
        if self.setting == "spknorm" and stats is not None:
            x = (x - stats[0]) / stats[1]
        if self.kind == "classical":
            return np.asarray(self.model.predict_proba(x), dtype=np.float64)
        import torch

        self.model.eval()
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(x)), dim=1).double().numpy()


def normalise_log_proba(p: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Standardise class log-probabilities by a speaker's ``(2, C)`` statistics, then softmax."""
    z = (np.log(np.asarray(p) + 1e-6) - stats[0]) / stats[1]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def vector_stats(x: np.ndarray) -> np.ndarray:
    """``(2, d)`` mean and std (floored) of feature vectors ``(n, d)``."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=0)
    return np.stack([x.mean(axis=0), np.maximum(sd, 1e-6 + 1e-3 * np.abs(sd).mean())]
                    ).astype(np.float32)


def band_stats(net: Any, waves: Sequence[np.ndarray]) -> np.ndarray:
    """``(2, n_mels)`` mean and std of each mel band (dB) over all frames of ``waves``."""
    import torch

    s1 = s2 = None
    n = 0
    with torch.inference_mode():
        for w in waves:
            db = net.frontend.spectrogram(torch.from_numpy(np.asarray(w, np.float32))[None])[0]
            db = db.double()
            s1 = db.sum(1) if s1 is None else s1 + db.sum(1)
            s2 = (db ** 2).sum(1) if s2 is None else s2 + (db ** 2).sum(1)
            n += db.shape[1]
    if not n:
        raise DataError(None, "speaker statistics need at least one utterance")
    mean = s1 / n
    std = torch.sqrt(torch.clamp(s2 / n - mean ** 2, min=1e-6))
    return torch.stack([mean, std]).float().numpy()


def waveform_proba(net: Any, waves: Sequence[np.ndarray], *, stats: np.ndarray | None = None,
                   batch_size: int = 16) -> np.ndarray:
    """Softmax outputs ``(n, C)`` of a waveform network; equal-length windows are batched."""
    import torch

    net.eval()
    out: list[np.ndarray | None] = [None] * len(waves)
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_len.setdefault(len(w), []).append(i)
    st = None if stats is None else torch.from_numpy(np.asarray(stats, np.float32))
    with torch.inference_mode():
        for idx in by_len.values():
            for k in range(0, len(idx), batch_size):
                part = idx[k:k + batch_size]
                x = torch.from_numpy(np.stack([np.asarray(waves[i], np.float32) for i in part]))
                s = None if st is None else st.expand(len(part), *st.shape)
                p = torch.softmax(net(x, s), dim=1).double().numpy()
                for j, i in enumerate(part):
                    out[i] = p[j]
    return np.stack(out)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Model folders


def save_member(path_dir: str | os.PathLike, member: Member, card: Mapping[str, Any]) -> Path:
    """Save one member (any kind) as ``model.safetensors`` + ``card.json``; ``card`` holds the
    required keys of :func:`emofuse.train.checkpoint.save_model` except ``labels``/``features``,
    which come from the member."""
    import torch

    from .models.classical import to_tensors
    from .train.checkpoint import save_model

    full = {**card, "task": "speech", "kind": member.kind, "labels": list(member.labels),
            "model": member.spec, "setting": member.setting, "sr": member.sr,
            "output_norm": member.output_norm,
            "features": member.feature or {"feature": "logmel-frontend",
                                           "n_mels": member.model.frontend.n_mels,
                                           "norm": member.model.frontend.norm}}
    if member.kind == "classical":
        arrays, tree = to_tensors(member.model)
        full["classical"] = tree
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
        return save_model(path_dir, state, full)
    return save_model(path_dir, member.model, full)


def load_member(path_dir: str | os.PathLike) -> tuple[list[Member], list[float], dict[str, Any]]:
    """Load a model folder: ``(members, weights, card)`` (one member unless an ensemble).

    Raises
    ------
    DataError
        Naming the file, when the folder is not a speech model or is damaged.
    """
    from .train.checkpoint import load_model, read_card

    folder = Path(path_dir)
    # classical members are numpy arrays: reading them without torch keeps cold starts short
    state, card = load_model(folder, numpy=read_card(folder).get("kind") in ("classical",
                                                                             "adaptive",
                                                                             "ensemble"))
    kind = card.get("kind")
    if card.get("task") != "speech" or kind not in KINDS:
        raise DataError(folder / "card.json", f"not a speech model (task {card.get('task')!r}, "
                        f"kind {kind!r})")
    if kind == "ensemble":
        members, weights = [], []
        for entry in card.get("members", []):
            sub = (folder / str(entry["dir"])).resolve()
            if folder.resolve() not in sub.parents:
                raise DataError(folder / "card.json", f"member folder {entry['dir']!r} lies "
                                "outside the model folder")
            ms, _, _ = load_member(sub)
            members += ms
            weights.append(float(entry.get("weight", 1.0)))
        if not members:
            raise DataError(folder / "card.json", "ensemble without members")
        return members, weights, card
    spec = card.get("model") or {}
    labels = list(card["labels"])
    try:
        if kind == "adaptive":
            from .models.speech_adaptive import AdaptiveLinear

            model = AdaptiveLinear.from_arrays(labels, state, card["adaptive"])
        elif kind == "classical":
            from .models._linear import fast_linear

            model = fast_linear(state, card["classical"])
            if model is None:                  # not a linear pipeline: rebuild scikit-learn's
                from .models.classical import from_tensors

                model = from_tensors(state, card["classical"])
        else:
            from .models import build_model

            model = build_model(spec["name"], n_classes=len(labels), **spec.get("params", {}))
            model.load_state_dict(state)
            model.eval()
    except (KeyError, RuntimeError, TypeError, EmofuseError) as exc:
        raise DataError(folder, f"cannot rebuild the model from its card and weights "
                        f"({exc})") from None
    feature = card["features"] if kind in ("vector", "classical", "adaptive") else None
    if feature and feature.get("feature") == "whisper":   # ONNX encoder, no torch at predict
        from .features.whisper import prepare_whisper

        prepare_whisper(layers=feature["params"].get("layers", (3,)))
    return [Member(kind, labels, model, spec, feature, card.get("setting", "inductive"),
                   int(card.get("sr", 16000)), bool(card.get("output_norm", False)))], [1.0], card


# --------------------------------------------------------------------------------------------
# The predictor


@dataclass
class SpeakerStats:
    """Per-member normalisation statistics of one speaker (see
    :meth:`SpeechPredictor.speaker_stats`)."""

    per_member: list[np.ndarray | None] = field(default_factory=list)
    utterances: int = 0
    #: ``enrol``: one speaker's recordings; ``folder``: the recordings predicted together.
    mode: str = "enrol"


class SpeechPredictor:
    """Predict emotions from audio with a saved speech model.

    Parameters
    ----------
    model_dir
        Model folder (``emofuse train`` output).
    window_s, hop_s
        Window and hop for long audio (default: the card's ``window_s``, else 6 s; half of
        it).
    num_threads
        Torch CPU threads (``None``: leave as is).
    cache
        Feature cache for the vector features of files scored in one window (``None``:
        compute them every time).
    """

    def __init__(self, model_dir: str | os.PathLike, *, window_s: float | None = None,
                 hop_s: float | None = None, num_threads: int | None = None,
                 cache: Any = None) -> None:
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        self.model_dir = Path(model_dir)
        self.members, weights, self.card = load_member(self.model_dir)
        self.weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.labels: list[str] = list(self.card["labels"])
        self.sr = self.members[0].sr
        for m in self.members:
            if m.labels != self.labels:
                raise DataError(self.model_dir, "ensemble members disagree on the labels")
        self.window_s = float(window_s or self.card.get("window_s") or 6.0)
        self.hop_s = float(hop_s or self.window_s / 2)
        self.setting = self.card.get("setting", "inductive")
        self.temperature = float(self.card.get("temperature") or 1.0)
        self.cache = cache

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

    def predict(self, audio: str | os.PathLike | np.ndarray, *, sr: int | None = None,
                speaker: SpeakerStats | None = None) -> dict[str, Any]:
        """Emotion of one recording (path, or array at ``sr``).

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

    def predict_many(self, paths: Iterable[str | os.PathLike], *,
                     speaker: SpeakerStats | None = None) -> list[dict[str, Any]]:
        """:meth:`predict` for each file; a file that fails gives ``{"path", "error"}`` and the
        batch goes on."""
        results = []
        for p in paths:
            try:
                results.append(self.predict(p, speaker=speaker))
            except EmofuseError as exc:
                results.append({"path": str(p), "error": str(exc)})
        return results

    def proba(self, audio: str | os.PathLike | np.ndarray, *, sr: int | None = None,
              speaker: SpeakerStats | None = None) -> np.ndarray:
        """Mean class probabilities ``(C,)`` of one recording (see :meth:`predict`)."""
        return np.array([self.predict(audio, sr=sr, speaker=speaker)["probs"][c]
                         for c in self.labels])

    # -- internals ----------------------------------------------------------------------------

    def _cached_vectors(self, audio: str | os.PathLike | np.ndarray
                        ) -> list[np.ndarray | None] | None:
        """Cached feature vectors of a file for the vector/classical members."""
        if self.cache is None or isinstance(audio, np.ndarray):
            return None
        from .features.speech import extract

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
        from .media import probe_audio

        info = probe_audio(path, decode=False)
        return info.duration <= max(60.0, 2 * self.window_s)

    def _load(self, audio: str | os.PathLike | np.ndarray, sr: int | None
              ) -> tuple[np.ndarray, list[str]]:
        from .media import load_audio, probe_audio, resample, to_mono

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
        from .media import load_audio, probe_audio

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

