"""Cutting long audio into segments for a prediction timeline, and plotting that timeline.

* :func:`vad_segments` - voice-activity segments with Silero VAD (the ``silero-vad`` package
  ships its ONNX model; it is loaded from the package, never from a hub);
* :func:`fixed_windows` - regular windows, the fallback when VAD is unavailable or unwanted;
* :func:`speech_segments` - one of the two, long segments split into windows;
* :func:`plot_timeline` - a PNG of the per-segment probabilities of a prediction.

>>> fixed_windows(7.0, window=3.0)
[(0.0, 3.0), (3.0, 6.0), (6.0, 7.0)]
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from ..errors import EmofuseError

if TYPE_CHECKING:
    from .types import Prediction

__all__ = ["vad_available", "vad_segments", "fixed_windows", "speech_segments", "plot_timeline"]

_VAD_LOCK = threading.Lock()


def vad_available() -> bool:
    """Whether the ``silero-vad`` package (and onnxruntime) can be imported."""
    import importlib.util

    return (importlib.util.find_spec("silero_vad") is not None
            and importlib.util.find_spec("onnxruntime") is not None)


@functools.cache
def _silero():
    """The Silero VAD ONNX model shipped inside the ``silero-vad`` package (loaded once)."""
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EmofuseError("voice-activity detection needs the silero-vad package "
                           "(pip install silero-vad --no-deps onnxruntime)") from exc
    return load_silero_vad(onnx=True)


def vad_segments(y: np.ndarray, sr: int, *, threshold: float = 0.5, min_speech_s: float = 0.25,
                 min_silence_s: float = 0.3, pad_s: float = 0.05,
                 max_segment_s: float = 8.0) -> list[tuple[float, float]]:
    """Speech segments ``[(start_s, end_s), ...]`` found by Silero VAD.

    Parameters
    ----------
    y, sr
        Mono waveform and its rate (resampled to 16 kHz for the detector when needed).
    threshold
        Speech probability above which a 32 ms frame counts as speech.
    min_speech_s, min_silence_s, pad_s
        Shortest speech kept, shortest pause that splits two segments, padding on each side.
    max_segment_s
        Longer speech is split at its longest inner pause (Silero's own rule).
    """
    import torch

    from ..media import resample

    if sr not in (8000, 16000):
        y, sr = resample(np.asarray(y, dtype=np.float32), sr, 16000), 16000
    from silero_vad import get_speech_timestamps

    wav = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    with _VAD_LOCK:  # the model keeps a recurrent state between frames
        stamps = get_speech_timestamps(
            wav, _silero(), sampling_rate=sr, threshold=threshold,
            min_speech_duration_ms=int(min_speech_s * 1000),
            min_silence_duration_ms=int(min_silence_s * 1000),
            speech_pad_ms=int(pad_s * 1000), max_speech_duration_s=max_segment_s)
    return [(s["start"] / sr, s["end"] / sr) for s in stamps]


def fixed_windows(duration: float, *, window: float = 3.0,
                  hop: float | None = None, min_last: float = 0.5) -> list[tuple[float, float]]:
    """Windows of ``window`` seconds every ``hop`` (default: ``window``) seconds.

    The last window is cut at ``duration``; a last piece shorter than ``min_last`` is merged
    into the one before (a clip shorter than ``window`` gives one window).
    """
    if window <= 0 or (hop is not None and hop <= 0):
        raise ValueError("window and hop must be positive")
    hop = hop or window
    if duration <= window:
        return [(0.0, round(float(duration), 4))]
    out: list[tuple[float, float]] = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + window, duration)
        if out and end - start < min_last and end >= duration:
            out[-1] = (out[-1][0], round(float(duration), 4))
            break
        out.append((round(start, 4), round(end, 4)))
        if end >= duration:
            break
        start += hop
    return out


def speech_segments(y: np.ndarray, sr: int, *, method: Literal["vad", "windows"] = "vad",
                    window: float = 3.0, hop: float | None = None,
                    max_segment_s: float = 8.0) -> tuple[list[tuple[float, float]], list[str]]:
    """Segments to classify in a long recording, and notes on how they were found.

    ``method="vad"`` uses :func:`vad_segments` (falling back to windows, with a note, when
    silero-vad is missing); segments longer than ``max_segment_s`` are split into windows.
    """
    duration = len(y) / sr if sr else 0.0
    notes: list[str] = []
    if method == "vad":
        if vad_available():
            segs = vad_segments(y, sr, max_segment_s=max_segment_s)
            if not segs:
                notes.append("no speech detected by voice-activity detection; "
                             "used fixed windows")
                return fixed_windows(duration, window=window, hop=hop), notes
            out: list[tuple[float, float]] = []
            for s, e in segs:
                if e - s > max_segment_s:
                    out += [(s + a, s + b) for a, b in fixed_windows(e - s, window=window, hop=hop)]
                else:
                    out.append((s, e))
            return [(round(s, 3), round(e, 3)) for s, e in out], notes
        notes.append("silero-vad is not installed; used fixed windows")
    elif method != "windows":
        raise ValueError(f"unknown segmentation method {method!r} (vad or windows)")
    return fixed_windows(duration, window=window, hop=hop), notes


def plot_timeline(prediction: Prediction, path: str | Path, *,
                  labels: Sequence[str] | None = None) -> Path:
    """Save a PNG with one panel per modality: each label's probability over time.

    Raises :class:`EmofuseError` when the prediction has no timeline (predict with
    ``timeline=True``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..palette import color

    segs = prediction.timeline
    if not segs:
        raise EmofuseError(f"{prediction.source}: no timeline to plot (predict with timeline)")
    modalities = list(dict.fromkeys(s.modality for s in segs))
    fig, axes = plt.subplots(len(modalities), 1, figsize=(9, 2.4 * len(modalities) + 0.6),
                             sharex=True, squeeze=False)
    for ax, m in zip(axes[:, 0], modalities):
        ms = [s for s in segs if s.modality == m]
        names = list(labels or dict.fromkeys(k for s in ms for k in s.probabilities))
        for i, lab in enumerate(names):
            xs, ys = [], []
            for s in ms:
                p = s.probabilities.get(lab, 0.0)
                xs += [s.start, s.end, np.nan]
                ys += [p, p, np.nan]
            ax.plot(xs, ys, lw=2, color=color(lab, i), label=lab)
        ax.set_ylim(0, 1)
        ax.set_ylabel(f"{m}\nprobability")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    axes[-1, 0].set_xlabel("time (s)")
    fig.suptitle(f"{Path(prediction.source).name}: {prediction.label}", fontsize=10)
    from ..evaluate.plots import save_figure

    return save_figure(fig, path, dpi=110)
