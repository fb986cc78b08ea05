"""The video pipeline: frames sampled from a file, each through a face predictor.

:func:`face_frames` is the one way emofuse reads faces from a video (the
:class:`~emofuse.inference.Recognizer` and the face benchmarks use it). On top of it,
:func:`track_faces` links the faces of successive frames into tracks by box overlap and
:func:`attention_pool` pools a track's frame probabilities by their certainty.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .types import Face, ModalityOutput

__all__ = ["face_frames", "predict_face", "main_face", "frames_per_second", "track_faces",
           "attention_pool", "TRACK_IOU", "MIN_VIDEO_FRAMES"]

#: Smallest box overlap (IoU) that continues a track in the next sampled frame.
TRACK_IOU = 0.3
#: A short clip is sampled faster, so that at least this many frames are seen.
MIN_VIDEO_FRAMES = 4


def predict_face(predictor: Any, rgb: np.ndarray, *, detect: str | None = None
                 ) -> ModalityOutput:
    """``predictor.predict(rgb)``, with ``detect`` when the predictor takes it."""
    if detect is not None and getattr(predictor, "supports_detect", False):
        return predictor.predict(rgb, detect=detect)
    return predictor.predict(rgb)


def main_face(faces: Sequence[Face]) -> Face | None:
    """The largest face (by box area), or ``None``."""
    return max(faces, key=lambda f: f.box[2] * f.box[3]) if faces else None


def frames_per_second(duration: float | None, fps: float) -> float:
    """``fps``, raised for a clip so short that it would give fewer than
    :data:`MIN_VIDEO_FRAMES` frames."""
    if duration and duration * fps < MIN_VIDEO_FRAMES:
        return MIN_VIDEO_FRAMES / duration
    return fps


def face_frames(predictor: Any, path: str | Path, *, fps: float, max_frames: int | None = None,
                detect: str | None = None) -> Iterator[tuple[float, np.ndarray, ModalityOutput]]:
    """``(time, rgb frame, face output)`` of the frames sampled at ``fps`` (at most
    ``max_frames``), each through ``predictor``.

    Raises
    ------
    MediaError
        If the file cannot be opened or has no video stream.
    """
    from ..media import iter_frames

    for t, rgb in iter_frames(path, fps=fps, max_frames=max_frames):
        yield float(t), rgb, predict_face(predictor, rgb, detect=detect)


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def track_faces(frames: Sequence[Sequence[Any]], *, min_iou: float = TRACK_IOU,
                max_gap: int = 5) -> list[list[tuple[int, int]]]:
    """Link faces (anything with a ``box``: x, y, w, h) across frames by greedy box overlap.

    ``min_iou``: smallest IoU that continues a track; ``max_gap``: frames a track may miss
    before it ends. Returns the tracks, each a list of ``(frame index, face index)``, in order
    of creation.
    """
    tracks: list[list[tuple[int, int]]] = []
    last: list[tuple[int, tuple[float, ...]]] = []  # per track: (frame, box)
    for fi, faces in enumerate(frames):
        pairs = sorted(((_iou(last[t][1], f.box), t, j) for t in range(len(tracks))
                        if fi - last[t][0] <= max_gap for j, f in enumerate(faces)),
                       reverse=True)
        used_t, used_f = set(), set()
        for iou, t, j in pairs:
            if iou < min_iou or t in used_t or j in used_f:
                continue
            tracks[t].append((fi, j))
            last[t] = (fi, faces[j].box)
            used_t.add(t)
            used_f.add(j)
        for j, f in enumerate(faces):
            if j not in used_f:
                tracks.append([(fi, j)])
                last.append((fi, f.box))
    return tracks


def attention_pool(proba: np.ndarray, *, scores: np.ndarray | None = None,
                   temperature: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Certainty-weighted pooling of frame probabilities ``(n, C)``.

    Weights are ``softmax((1 - H_t / log C) / temperature) * score_t`` (renormalised), ``H_t``
    the entropy of frame ``t``. Returns ``(pooled (C,), weights (n,))``.
    """
    p = np.clip(np.asarray(proba, dtype=np.float64), 1e-12, 1.0)
    n, c = p.shape
    certainty = 1.0 - (-(p * np.log(p)).sum(1)) / math.log(max(c, 2))
    logits = certainty / temperature
    w = np.exp(logits - logits.max())
    if scores is not None:
        w = w * np.clip(np.asarray(scores, dtype=np.float64), 1e-6, None)
    w = w / w.sum()
    return (w[:, None] * proba).sum(0), w
