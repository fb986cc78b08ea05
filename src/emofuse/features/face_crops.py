"""Face crops of corpus records, as the face models see them: ready-made crops (FER2013's
48x48 images, stored pixels) resized, other images through face detection and alignment."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..corpora import Record
from ..errors import DataError, EmofuseError

__all__ = ["CROP_MAX_SIDE", "load_faces"]

#: Images no larger than this (both sides) count as ready-made face crops (``detect: auto``).
CROP_MAX_SIDE = 96


def load_faces(records: Sequence[Record], *, side: int = 48, detector: str = "yunet",
               detect: str | bool = "auto", cache: bool = True
               ) -> tuple[np.ndarray, list[Record], list[dict[str, str]]]:
    """Grayscale ``uint8 (n, side, side)`` face crops of ``records``.

    Pixels stored on a record (FER2013's CSV form) and image files no larger than
    :data:`CROP_MAX_SIDE` are taken as crops (resized to ``side``); other images go through
    face detection and alignment (the largest face), cached by content. A record whose file
    cannot be read or holds no face is skipped and reported.

    Returns
    -------
    crops, kept, skipped
        The crops, the records they belong to, and ``[{"id", "path", "reason"}]``.
    """
    import cv2

    from ..media.image import load_image

    crops: list[np.ndarray] = []
    kept: list[Record] = []
    skipped: list[dict[str, str]] = []
    for r in records:
        try:
            if "pixels" in r.extra:
                img = np.asarray(r.extra["pixels"], dtype=np.uint8)
            elif r.image:
                img = load_image(r.image, mode="L")
            else:
                raise DataError(None, "record has no image")
            if detect is True or (detect == "auto" and max(img.shape) > CROP_MAX_SIDE):
                img = _detected_crop(r.image, side=side, detector=detector, cache=cache)
            elif img.shape != (side, side):
                img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA
                                 if img.shape[0] > side else cv2.INTER_LINEAR)
        except EmofuseError as exc:
            skipped.append({"id": r.id, "path": r.image or "", "reason": str(exc)})
            continue
        crops.append(img)
        kept.append(r)
    arr = np.stack(crops) if crops else np.zeros((0, side, side), np.uint8)
    return arr, kept, skipped


def _detected_crop(path: str | None, *, side: int, detector: str, cache: bool) -> np.ndarray:
    from ..features.cache import FeatureCache
    from ..media import faces

    if path is None:
        raise DataError(None, "face detection needs an image file")

    def compute(p: Any) -> np.ndarray:
        found = faces.extract_faces(p, detector=detector, side=side)
        if not found:
            return np.zeros((0, side, side), np.uint8)
        return found[0].crop[None]

    settings = {"feature": "face_crop", "version": faces.ALIGN_VERSION, "side": side,
                "detector": detector}
    out = FeatureCache().get_or_compute(path, settings, compute) if cache else compute(path)
    if len(out) == 0:
        raise DataError(path, f"no face found ({detector} detector)")
    return np.asarray(out[0], dtype=np.uint8)
