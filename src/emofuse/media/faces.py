"""Face detection and alignment with models that ship inside pip packages (nothing downloaded).

Detectors (:func:`get_detector`):

``yunet``
    libfacedetection's YuNet CNN through the ``yuface`` package (weights compiled into the
    library): boxes, scores and 5 landmarks. The default: the most accurate and the fastest of
    the four on our measurements (``benchmarks/results/fer-detectors.md``).
``haar``
    OpenCV's Viola-Jones cascade (``haarcascade_frontalface_default.xml``), eyes from the eye
    cascade inside the upper face when it finds two.
``mtcnn``
    MTCNN (P/R/O-Net) of ``facenet-pytorch`` (weights ship in the package; installed
    ``--no-deps``). Its two torchvision imports are served by a few lines of torch
    (:func:`_torchvision_shim`), since torchvision is not installable here.
``mediapipe``
    MediaPipe 0.10.21 face mesh (468 landmarks; the box is their extent, the 5 landmarks are
    eye centres, nose tip and mouth corners).

Every detector returns :class:`Face` objects in the coordinates of the image given, largest
first. :func:`align_face` rotates the face so the eyes are level, scales it so that the eyes
sit where FER2013 faces have them (:data:`EYE_TEMPLATE`), crops, converts to grayscale and
resizes (48x48 for FER2013 models, 64x64 elsewhere). :func:`extract_faces` does all of this for
an image file or array. Large images are detected on a copy whose longer side is at most
``max_side`` (default 640) and mapped back, so memory and time stay bounded.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, MediaError
from ._face_backends import _FaceDetectCNN, _import_mtcnn, _need, _omp_threads

__all__ = ["Face", "Detector", "DETECTORS", "DEFAULT_DETECTOR", "get_detector", "detect_faces",
           "align_face", "extract_faces", "as_rgb", "EYE_TEMPLATE", "ALIGN_VERSION",
           "available_detectors"]

#: Detector names, default first.
DETECTORS: tuple[str, ...] = ("yunet", "haar", "mtcnn", "mediapipe")
DEFAULT_DETECTOR = "yunet"
#: Bump when alignment changes (part of the face-crop cache key).
ALIGN_VERSION = "1"
#: Eye centres in a FER2013-style crop, as fractions of the side: (x of the image-left eye,
#: y of both eyes, x of the image-right eye): medians of YuNet's eyes on 600 FER2013 Training
#: faces (0.307, 0.385 / 0.688, 0.380; MTCNN and MediaPipe agree within 0.02). This framing
#: keeps brows, mouth and chin inside the square, as FER2013 does.
EYE_TEMPLATE: tuple[float, float, float] = (0.31, 0.38, 0.69)
#: Longer side of the copy detectors see.
MAX_DETECT_SIDE = 640


@dataclass
class Face:
    """One detected face.

    Attributes
    ----------
    box
        ``(x, y, width, height)`` in pixels of the image the detector was given.
    score
        Detector confidence in 0..1 (1.0 where the detector gives none).
    landmarks
        ``(5, 2)`` float array: image-left eye, image-right eye, nose tip, image-left and
        image-right mouth corner; ``None`` when the detector found no eyes.
    detector
        Name of the detector.
    crop
        Aligned grayscale crop (filled by :func:`extract_faces`).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None = None
    detector: str = ""
    crop: np.ndarray | None = field(default=None, repr=False)

    @property
    def area(self) -> float:
        return float(self.box[2] * self.box[3])

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.box
        return x + w / 2, y + h / 2

    def scaled(self, factor: float) -> Face:
        """A copy with coordinates multiplied by ``factor``."""
        lm = None if self.landmarks is None else self.landmarks * factor
        return Face(tuple(float(v) * factor for v in self.box), self.score, lm, self.detector,
                    self.crop)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: box (rounded to 0.1 px), score, landmarks, detector."""
        return {"box": [round(float(v), 1) for v in self.box], "score": round(self.score, 4),
                "landmarks": None if self.landmarks is None
                else np.round(self.landmarks, 1).tolist(), "detector": self.detector}


# --------------------------------------------------------------------------------------------
# Image helpers


def as_rgb(image: np.ndarray | str | Path) -> np.ndarray:
    """An RGB ``uint8 (H, W, 3)`` array from a file (any mode, bounded size) or an array
    (grayscale, RGB, RGBA, 16-bit or float in 0..1 accepted)."""
    if isinstance(image, (str, Path)):
        from .image import load_image

        return load_image(image, mode="RGB")
    arr = np.asarray(image)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
        raise MediaError(None, f"expected an image array (H, W[, 1|3|4]), got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16:
            arr = (arr / 257.0).round()
        elif np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).round().astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:  # composite on white, like load_image
        alpha = arr[:, :, 3:4].astype(np.float32) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(arr)


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def _downscale(rgb: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``(image, factor)`` with the longer side at most ``max_side``; ``factor`` maps the small
    image's coordinates back (>= 1)."""
    import cv2

    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb, 1.0
    s = max_side / max(h, w)
    small = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))),
                       interpolation=cv2.INTER_AREA)
    return small, 1.0 / s


# --------------------------------------------------------------------------------------------
# Detectors


class Detector:
    """Base class: ``detect(rgb)`` -> faces (coordinates of ``rgb``), largest first."""

    name = ""

    def detect(self, rgb: np.ndarray) -> list[Face]:  # pragma: no cover - interface
        raise NotImplementedError


class YuNetDetector(Detector):
    """YuNet (libfacedetection) through ``yuface``; ``conf`` is the score threshold (0..1).

    yuface 2023.5.1's ``detect`` mallocs a 36 kB result buffer on every call and never frees it
    (0.35 MB/s for a 10 fps stream). So the bundled ``libfacedetection`` is called directly
    (:class:`_FaceDetectCNN`) with one result buffer per thread, reused: the same C function
    on the same pixels, hence the same faces. Should the library not be loadable that way,
    yuface's own ``detect`` is used (and leaks).
    """

    name = "yunet"

    def __init__(self, *, conf: float = 0.6, threads: int = 1) -> None:
        _need("yuface", "pip install yuface")
        self.conf = conf
        self.threads = threads

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        if min(h, w) < 16:
            return []
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        cnn = _FaceDetectCNN.get()
        with _omp_threads(self.threads):
            if cnn is not None:
                raw = cnn(bgr)
            else:  # pragma: no cover - only where libfacedetection cannot be loaded by ctypes
                from yuface import yuface as _yu

                raw = np.asarray(_yu.detect(bgr)).astype(np.int64)
        if raw.size == 0:
            return []
        raw = raw.reshape(-1, raw.shape[-1])
        raw[:, 1:15] = np.where(raw[:, 1:15] > 32767, raw[:, 1:15] - 65536, raw[:, 1:15])
        out = []
        for row in raw:
            score = row[0] / 100.0
            if score < self.conf:
                continue
            x, y, bw, bh = (float(v) for v in row[1:5])
            pts = row[5:15].astype(np.float64).reshape(5, 2)
            out.append(Face(_clip_box((x, y, bw, bh), w, h), float(score), _order5(pts),
                            self.name))
        return out


class HaarDetector(Detector):
    """Viola-Jones frontal-face cascade; eyes from the eye cascade where it finds two."""

    name = "haar"

    def __init__(self, *, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: int = 24, eyes: bool = True) -> None:
        import cv2

        base = Path(cv2.data.haarcascades)
        self.face = cv2.CascadeClassifier(str(base / "haarcascade_frontalface_default.xml"))
        self.eye = cv2.CascadeClassifier(str(base / "haarcascade_eye.xml")) if eyes else None
        if self.face.empty():
            raise ConfigError(f"OpenCV's Haar cascade is missing from {base}")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import cv2

        gray = cv2.equalizeHist(_gray(rgb))
        boxes, _, weights = self.face.detectMultiScale3(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True)
        out = []
        for i, (x, y, w, h) in enumerate(np.asarray(boxes).reshape(-1, 4)):
            conf = 1.0 if weights is None or len(weights) <= i else \
                float(1 / (1 + math.exp(-float(np.ravel(weights)[i]))))
            out.append(Face((float(x), float(y), float(w), float(h)), conf,
                            self._eyes(gray, x, y, w, h), self.name))
        return out

    def _eyes(self, gray: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray | None:
        if self.eye is None:
            return None
        roi = gray[y:y + int(h * 0.6), x:x + w]
        eyes = self.eye.detectMultiScale(roi, scaleFactor=1.1, minNeighbors=5,
                                         minSize=(max(8, w // 8), max(8, w // 8)))
        eyes = np.asarray(eyes).reshape(-1, 4)
        if len(eyes) < 2:
            return None
        eyes = eyes[np.argsort(-eyes[:, 2] * eyes[:, 3])[:2]]
        centres = np.array([[x + ex + ew / 2, y + ey + eh / 2] for ex, ey, ew, eh in eyes])
        centres = centres[np.argsort(centres[:, 0])]
        if centres[1, 0] - centres[0, 0] < 0.2 * w:  # the same eye twice
            return None
        lm = np.full((5, 2), np.nan)
        lm[:2] = centres
        return lm


class MTCNNDetector(Detector):
    """MTCNN from ``facenet-pytorch`` (package weights); torch runs single-threaded here
    unless the caller set otherwise."""

    name = "mtcnn"

    def __init__(self, *, min_face_size: int = 20,
                 thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)) -> None:
        mtcnn_cls = _import_mtcnn()
        self.model = mtcnn_cls(keep_all=True, min_face_size=min_face_size,
                               thresholds=list(thresholds), device="cpu", post_process=False)

    def detect(self, rgb: np.ndarray) -> list[Face]:
        import torch

        h, w = rgb.shape[:2]
        if min(h, w) < 16:
            return []
        with torch.inference_mode():
            boxes, probs, points = self.model.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        out = []
        for (x1, y1, x2, y2), p, pts in zip(boxes, probs, points):
            out.append(Face(_clip_box((x1, y1, x2 - x1, y2 - y1), w, h), float(p),
                            _order5(np.asarray(pts, dtype=np.float64)), self.name))
        return out


class MediaPipeDetector(Detector):
    """MediaPipe face mesh (0.10.21 ``solutions`` API), up to ``max_faces`` faces."""

    name = "mediapipe"
    # mesh indices: eye corners (image-left eye: 33/133, image-right eye: 362/263), nose tip,
    # mouth corners
    _EYE_A, _EYE_B, _NOSE, _MOUTH = (33, 133), (362, 263), 1, (61, 291)

    def __init__(self, *, max_faces: int = 5, min_confidence: float = 0.5) -> None:
        _need("mediapipe", "pip install --no-deps mediapipe==0.10.21 (+ protobuf<5, attrs, "
                           "flatbuffers)")
        import mediapipe as mp

        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_faces, refine_landmarks=False,
            min_detection_confidence=min_confidence)
        self.lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        h, w = rgb.shape[:2]
        with self.lock:
            res = self.mesh.process(np.ascontiguousarray(rgb))
        out = []
        for lms in res.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h) for p in lms.landmark])
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            five = np.array([pts[list(self._EYE_A)].mean(0), pts[list(self._EYE_B)].mean(0),
                             pts[self._NOSE], pts[self._MOUTH[0]], pts[self._MOUTH[1]]])
            out.append(Face(_clip_box((x0, y0, x1 - x0, y1 - y0), w, h), 1.0, _order5(five),
                            self.name))
        return out


_FACTORIES: dict[str, Callable[..., Detector]] = {
    "yunet": YuNetDetector, "haar": HaarDetector, "mtcnn": MTCNNDetector,
    "mediapipe": MediaPipeDetector}
_CACHE: dict[tuple, Detector] = {}
_LOCK = threading.Lock()


def get_detector(name: str = DEFAULT_DETECTOR, **options: Any) -> Detector:
    """A (cached) detector by name: ``yunet`` (default), ``haar``, ``mtcnn``, ``mediapipe``."""
    if name not in _FACTORIES:
        raise ConfigError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
    key = (name, tuple(sorted(options.items())))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = _FACTORIES[name](**options)
        return _CACHE[key]


def available_detectors() -> list[str]:
    """Detectors whose package is installed."""
    needs = {"yunet": "yuface", "haar": "cv2", "mtcnn": "facenet_pytorch",
             "mediapipe": "mediapipe"}
    return [n for n in DETECTORS if importlib.util.find_spec(needs[n]) is not None]


def _clip_box(box: tuple[float, float, float, float], w: int, h: int
              ) -> tuple[float, float, float, float]:
    x, y, bw, bh = (float(v) for v in box)
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
    return x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0)


def _order5(pts: np.ndarray) -> np.ndarray:
    """Five landmarks as (left eye, right eye, nose, left mouth, right mouth) in image terms."""
    pts = np.asarray(pts, dtype=np.float64).reshape(5, 2).copy()
    if pts[0, 0] > pts[1, 0]:
        pts[[0, 1]] = pts[[1, 0]]
    if pts[3, 0] > pts[4, 0]:
        pts[[3, 4]] = pts[[4, 3]]
    return pts


# --------------------------------------------------------------------------------------------
# Detection, alignment, extraction


def detect_faces(image: np.ndarray | str | Path, *, detector: str | Detector = DEFAULT_DETECTOR,
                 max_side: int = MAX_DETECT_SIDE, min_size: float = 0.0) -> list[Face]:
    """Faces in an image (file or array), largest first, in the image's own coordinates.

    The detector sees a copy whose longer side is at most ``max_side``; faces smaller than
    ``min_size`` pixels (box side, original scale) are dropped.
    """
    rgb = as_rgb(image)
    det = get_detector(detector) if isinstance(detector, str) else detector
    small, factor = _downscale(rgb, max_side)
    faces = [f.scaled(factor) if factor != 1.0 else f for f in det.detect(small)]
    faces = [f for f in faces if min(f.box[2], f.box[3]) >= max(min_size, 1.0)]
    return sorted(faces, key=lambda f: -f.area)


def align_face(image: np.ndarray, face: Face, *, side: int = 48,
               template: tuple[float, float, float] = EYE_TEMPLATE) -> np.ndarray:
    """The face as an aligned grayscale ``uint8 (side, side)`` crop.

    With both eyes known, a similarity transform puts them at ``template`` (eyes level);
    otherwise the box is enlarged to the same framing (square, centred a little above the
    box centre) without rotation. Pixels outside the image repeat the border.
    """
    import cv2

    gray = _gray(as_rgb(image)) if image.ndim == 3 else np.asarray(image, dtype=np.uint8)
    ex0, ey, ex1 = template
    lm = face.landmarks
    if lm is not None and np.isfinite(lm[:2]).all() and lm[1, 0] - lm[0, 0] > 1.0:
        (lx, ly), (rx, ry) = lm[0], lm[1]
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
        scale = (ex1 - ex0) * side / math.hypot(rx - lx, ry - ly)
        cx, cy = (lx + rx) / 2, (ly + ry) / 2
        m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
        m[0, 2] += side * (ex0 + ex1) / 2 - cx
        m[1, 2] += side * ey - cy
    else:
        x, y, w, h = face.box
        size = max(w, h) * _BOX_TO_CROP
        cx, cy = x + w / 2, y + h * _BOX_CENTRE_Y
        s = side / size
        m = np.array([[s, 0, side / 2 - s * cx], [0, s, side / 2 - s * cy]])
    interp = cv2.INTER_AREA if m[0, 0] ** 2 + m[0, 1] ** 2 < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(gray, m, (side, side), flags=interp, borderMode=cv2.BORDER_REPLICATE)


#: Side of the crop relative to the larger side of a detector box, and the vertical centre of
#: the crop within the box (fractions), for boxes without eyes (Haar without eye hits). Haar's
#: boxes on FER2013 faces span 0.96 of the crop, centred (300 faces).
_BOX_TO_CROP = 1.04
_BOX_CENTRE_Y = 0.5


def extract_faces(image: np.ndarray | str | Path, *, detector: str | Detector = DEFAULT_DETECTOR,
                  side: int = 48, max_faces: int | None = None, max_side: int = MAX_DETECT_SIDE,
                  min_size: float = 0.0) -> list[Face]:
    """Detect the faces of an image and add the aligned crop of each (``face.crop``).

    Raises
    ------
    MediaError
        If the file cannot be read (a picture without a face gives ``[]``).
    """
    rgb = as_rgb(image)
    faces = detect_faces(rgb, detector=detector, max_side=max_side, min_size=min_size)
    if max_faces is not None:
        faces = faces[:max_faces]
    gray = _gray(rgb)
    for f in faces:
        f.crop = align_face(gray, f, side=side)
    return faces
