"""Speech models: :class:`Member` (one trained model of any kind scoring waveform windows),
its statistics for speaker normalisation, and model folders (:func:`save_member`,
:func:`load_member`).

A speech card's ``kind`` says what the model is: ``waveform`` (a network over audio),
``vector`` (a network over a hand-crafted feature vector), ``classical`` (scikit-learn
classifier stored as arrays), ``adaptive`` (a linear model over Whisper states standardised by
the statistics of a source or speaker) or ``ensemble`` (members in sub-folders, probabilities
averaged with ``weights``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, EmofuseError, MediaError
from .card import ModelCard, load_weights, read_card
from .types import SR

__all__ = ["Member", "load_member", "save_member", "window_bounds", "check_audio",
           "band_stats", "vector_stats", "waveform_proba", "normalise_log_proba",
           "MIN_SECONDS", "SILENCE_PEAK", "KINDS"]


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
    sr: int = SR
    output_norm: bool = False

    # -- features -----------------------------------------------------------------------------

    def vectors(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """Feature vectors ``(n, d)`` of waveforms (``vector``/``classical`` members)."""
        from ..features.speech import compute_feature

        assert self.feature is not None
        name, params = self.feature["feature"], self.feature["params"]
        return np.stack([np.asarray(compute_feature(w, name, params=params, sr=self.sr),
                                    np.float32) for w in waves])

    @property
    def adapts(self) -> bool:
        """Whether unlabelled statistics of the speaker or source change this member."""
        return self.setting == "spknorm" or self.kind == "adaptive"

    def speaker_stats(self, waves: Sequence[np.ndarray]) -> np.ndarray:
        """``(2, d)`` mean and std of this member's normalised quantity over a speaker's
        utterances: mel bands (``waveform``) or feature vector entries (others); ``(3, d)``
        count, mean and variance for ``adaptive`` members."""
        if self.kind == "adaptive":
            from ..models.speech_adaptive import source_stats

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
    required keys of :func:`emofuse.models.checkpoint.save_model` except ``labels``/``features``,
    which come from the member."""
    import torch

    from ..models.classical import to_tensors
    from ..models.checkpoint import save_model

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


def load_member(path_dir: str | os.PathLike, card: ModelCard | None = None
                ) -> tuple[list[Member], list[float], ModelCard]:
    """Load a model folder: ``(members, weights, card)`` (one member unless an ensemble);
    ``card``: the folder's card when it was read already.

    Raises
    ------
    DataError
        Naming the file, when the folder is not a speech model or is damaged.
    """
    folder = Path(path_dir)
    card = read_card(folder) if card is None else card
    # classical members are numpy arrays: reading them without torch keeps cold starts short
    state = load_weights(folder, card, numpy=card.kind in ("classical", "adaptive", "ensemble"))
    kind = card.kind
    if card.task != "speech" or kind not in KINDS:
        raise DataError(folder / "card.json", f"not a speech model (task {card.task!r}, "
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
    spec = card.model or {}
    labels = list(card.labels)
    try:
        if kind == "adaptive":
            from ..models.speech_adaptive import AdaptiveLinear

            model = AdaptiveLinear.from_arrays(labels, state, card["adaptive"])
        elif kind == "classical":
            from ..models._linear import fast_linear

            model = fast_linear(state, card["classical"])
            if model is None:                  # not a linear pipeline: rebuild scikit-learn's
                from ..models.classical import from_tensors

                model = from_tensors(state, card["classical"])
        else:
            from ..models import build_model

            model = build_model(spec["name"], n_classes=len(labels), **spec.get("params", {}))
            model.load_state_dict(state)
            model.eval()
    except (KeyError, RuntimeError, TypeError, EmofuseError) as exc:
        raise DataError(folder, f"cannot rebuild the model from its card and weights "
                        f"({exc})") from None
    feature = card.features if kind in ("vector", "classical", "adaptive") else None
    if feature and feature.get("feature") == "whisper":   # ONNX encoder, no torch at predict
        from ..features.whisper import prepare_whisper

        prepare_whisper(layers=feature["params"].get("layers", (3,)))
    return [Member(kind, labels, model, spec, feature, card.setting, int(card.sr),
                   bool(card.get("output_norm", False)))], [1.0], card


