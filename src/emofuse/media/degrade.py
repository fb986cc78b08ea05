"""Image degradations of the capture chain, for robustness curves: blur, JPEG compression,
low resolution, low light and in-plane rotation. Pure functions on ``uint8`` grayscale or RGB
arrays; ``level`` is in each kind's natural unit (see :data:`UNITS`)."""

from __future__ import annotations

import numpy as np

__all__ = ["KINDS", "UNITS", "degrade_image"]

#: what ``level`` means for each kind
UNITS = {
    "blur": "Gaussian sigma, pixels",
    "jpeg": "JPEG quality (100 best)",
    "downscale": "side the face arrives at, pixels (the model resizes it back)",
    "low_light": "brightness factor, plus read noise of 2 grey levels",
    "rotate": "in-plane rotation, degrees",
}
KINDS = tuple(UNITS)


def degrade_image(img: np.ndarray, *, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """``img`` (``uint8``, HxW or HxWx3) degraded by ``kind`` at ``level``.

    ``downscale`` returns a smaller image (side ``level`` on the longer edge): it is the image
    a user would hand over. ``low_light`` is the only random one (``seed``)."""
    import cv2

    img = np.ascontiguousarray(img, dtype=np.uint8)
    if kind == "blur":
        return cv2.GaussianBlur(img, (0, 0), sigmaX=float(level), borderType=cv2.BORDER_REFLECT)
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(level)])
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
            raise ValueError("JPEG encoding failed")
        flag = cv2.IMREAD_GRAYSCALE if img.ndim == 2 else cv2.IMREAD_COLOR
        return cv2.imdecode(buf, flag)
    if kind == "downscale":
        h, w = img.shape[:2]
        s = float(level) / max(h, w)
        size = (max(1, round(w * s)), max(1, round(h * s)))
        return cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    if kind == "low_light":
        rng = np.random.default_rng(seed)
        dark = img.astype(np.float64) * float(level) + rng.normal(0.0, 2.0, img.shape)
        return np.clip(np.rint(dark), 0, 255).astype(np.uint8)
    if kind == "rotate":
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(level), 1.0)
        return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
    raise ValueError(f"unknown degradation {kind!r}; known: {', '.join(KINDS)}")
