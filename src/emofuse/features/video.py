"""Video features for the face modality: spatio-temporal interest points and OpenFace action
units.

* :func:`interest_points` / :func:`stip_features` - space-time interest points (Laptev's
  Harris3D, as used by DV-EmotionNet): a Gaussian scale space ``L = g(.; sigma^2, tau^2) * f``
  over x, y and t, the 3x3 second-moment matrix ``mu = g(.; s sigma^2, s tau^2) *
  (grad L grad L^T)`` and the response ``H = det(mu) - k trace(mu)^3``; interest points are the
  positive local maxima of ``H``. :func:`stip_features` turns them into a fixed-length clip
  vector (registered as feature ``stip``).
* :func:`read_openface` - OpenFace 2.x ``FeatureExtraction`` CSV output (one row per frame:
  ``frame, face_id, timestamp, confidence, success, ..., AU01_r ... AU45_r, AU01_c ...
  AU45_c``; headers may carry OpenFace's leading spaces) as per-frame action units;
  :func:`openface_au_stats` summarises a clip (registered as feature ``openface_au``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import register_feature

__all__ = ["interest_points", "harris3d_response", "stip_features", "STIP_SCALES",
           "OpenFaceAUs", "read_openface", "openface_au_stats", "AU_INTENSITY", "AU_PRESENCE"]

#: (sigma^2, tau^2) pairs of the default multi-scale detection.
STIP_SCALES: tuple[tuple[float, float], ...] = ((4.0, 2.0), (8.0, 2.0), (4.0, 4.0))
_ORIENT_BINS = 8
_EPS = 1e-12


# --------------------------------------------------------------------------------------------
# Space-time interest points


def harris3d_response(volume: np.ndarray, *, sigma2: float = 4.0, tau2: float = 2.0,
                      s: float = 2.0, k: float = 0.005) -> tuple[np.ndarray, tuple]:
    """``H = det(mu) - k trace(mu)^3`` of a grayscale volume ``(t, y, x)`` (float, 0..1).

    Returns ``H`` and the gradients ``(Lt, Ly, Lx)`` of the smoothed volume (for descriptors).
    """
    from scipy.ndimage import gaussian_filter

    v = np.asarray(volume, dtype=np.float32)
    if v.ndim != 3 or min(v.shape) < 3:
        raise ValueError(f"expected a (t, y, x) volume with every side >= 3, got {v.shape}")
    sig, tau = float(np.sqrt(sigma2)), float(np.sqrt(tau2))
    smooth = gaussian_filter(v, sigma=(tau, sig, sig), mode="nearest")
    lt, ly, lx = np.gradient(smooth)
    isig, itau = float(np.sqrt(s) * sig), float(np.sqrt(s) * tau)

    def integrate(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=(itau, isig, isig), mode="nearest")

    xx, yy, tt = integrate(lx * lx), integrate(ly * ly), integrate(lt * lt)
    xy, xt, yt = integrate(lx * ly), integrate(lx * lt), integrate(ly * lt)
    det = xx * (yy * tt - yt * yt) - xy * (xy * tt - yt * xt) + xt * (xy * yt - yy * xt)
    trace = xx + yy + tt
    return det - k * trace ** 3, (lt, ly, lx)


def interest_points(volume: np.ndarray, *, sigma2: float = 4.0, tau2: float = 2.0,
                    s: float = 2.0, k: float = 0.005, rel_threshold: float = 1e-3,
                    max_points: int = 200, border: int = 2) -> np.ndarray:
    """Space-time interest points of a grayscale volume ``(t, y, x)`` in 0..1.

    A point is a 3x3x3 local maximum of ``H`` above ``rel_threshold`` times the largest
    ``H`` of the volume (and above 0), away from the spatial border; the ``max_points``
    strongest are kept.

    Returns
    -------
    np.ndarray
        ``(n, 4)`` float rows ``(t, y, x, H)``, strongest first.
    """
    from scipy.ndimage import maximum_filter

    h, _ = harris3d_response(volume, sigma2=sigma2, tau2=tau2, s=s, k=k)
    top = float(h.max()) if h.size else 0.0
    if top <= 0:
        return np.zeros((0, 4), np.float32)
    peak = (h == maximum_filter(h, size=3, mode="nearest")) & (h > rel_threshold * top)
    if border:
        peak[:, :border], peak[:, -border:] = False, False
        peak[:, :, :border], peak[:, :, -border:] = False, False
    t, y, x = np.nonzero(peak)
    vals = h[t, y, x]
    order = np.argsort(-vals)[:max_points]
    return np.stack([t[order], y[order], x[order], vals[order]], 1).astype(np.float32)


def _volume(source: str | Path | np.ndarray, *, fps: float, side: int,
            max_frames: int) -> tuple[np.ndarray, float]:
    """Grayscale volume ``(t, side', side)`` in 0..1 and its frame rate."""
    import cv2

    if isinstance(source, (str, Path)):
        from ..media.video import read_frames

        times, frames = read_frames(source, fps=fps, max_frames=max_frames)
        rate = (len(times) - 1) / max(times[-1] - times[0], 1e-6) if len(times) > 1 else fps
    else:
        frames = np.asarray(source)
        rate = fps
    if frames.ndim == 4:
        frames = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    if frames.ndim != 3 or len(frames) < 3:
        raise DataError(source if isinstance(source, (str, Path)) else None,
                        f"need at least 3 frames for interest points, got {len(frames)}")
    h, w = frames.shape[1:]
    scale = side / w
    size = (side, max(3, round(h * scale)))
    vol = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    return vol.astype(np.float32) / 255.0, float(rate)


@register_feature("stip", modality="face", version="1")
def stip_features(source: str | Path | np.ndarray, *, fps: float = 15.0, side: int = 112,
                  scales: Sequence[Sequence[float]] = STIP_SCALES, grid: int = 4,
                  max_points: int = 200, max_frames: int = 450, k: float = 0.005) -> np.ndarray:
    """A clip vector from space-time interest points of a video file or frames.

    The clip (or a face track's crops) is sampled at ``fps``, made grayscale and resized to
    ``side`` pixels wide. Per scale ``(sigma^2, tau^2)``: points per second, the share of
    points in each cell of a ``grid x grid`` spatial layout, the mean and spread of their
    time (fraction of the clip), log mean response, and an 8-bin histogram of the spatial
    gradient orientation plus the mean signed and absolute temporal gradient at the points
    (HOG/HOF-like). Length: ``len(scales) * (grid**2 + 15)``.
    """
    vol, rate = _volume(source, fps=fps, side=side, max_frames=max_frames)
    n_t, n_y, n_x = vol.shape
    parts = []
    for sigma2, tau2 in scales:
        h, (lt, ly, lx) = harris3d_response(vol, sigma2=sigma2, tau2=tau2, k=k)
        pts = interest_points(vol, sigma2=sigma2, tau2=tau2, k=k, max_points=max_points)
        n = len(pts)
        layout = np.zeros(grid * grid)
        orient = np.zeros(_ORIENT_BINS)
        timing = np.zeros(2)
        temporal = np.zeros(2)
        strength = 0.0
        if n:
            t, y, x = (pts[:, i].astype(int) for i in range(3))
            cell = np.minimum(y * grid // n_y, grid - 1) * grid + np.minimum(x * grid // n_x,
                                                                            grid - 1)
            layout = np.bincount(cell, minlength=grid * grid) / n
            gx, gy, gt = lx[t, y, x], ly[t, y, x], lt[t, y, x]
            ang = (np.arctan2(gy, gx) + np.pi) / (2 * np.pi) * _ORIENT_BINS
            mag = np.hypot(gx, gy)
            orient = np.bincount(np.minimum(ang.astype(int), _ORIENT_BINS - 1), weights=mag,
                                 minlength=_ORIENT_BINS)
            orient = orient / max(orient.sum(), _EPS)
            frac = t / max(n_t - 1, 1)
            timing = np.array([frac.mean(), frac.std()])
            temporal = np.array([gt.mean(), np.abs(gt).mean()]) * 100.0
            strength = float(np.log10(max(float(pts[:, 3].mean()), _EPS)))
        seconds = max(n_t / max(rate, 1e-6), 1e-6)
        parts.append(np.concatenate([[n / seconds, strength], layout, timing, orient,
                                     temporal, [float(h.max() > 0)]]))
    return np.concatenate(parts).astype(np.float32)


# --------------------------------------------------------------------------------------------
# OpenFace FeatureExtraction output

#: OpenFace 2.x action units with an intensity (``_r``, 0-5) and a presence (``_c``, 0/1).
AU_INTENSITY: tuple[str, ...] = ("AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09",
                                 "AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23",
                                 "AU25", "AU26", "AU45")
AU_PRESENCE: tuple[str, ...] = AU_INTENSITY[:-1] + ("AU28", "AU45")
_AU_COL = re.compile(r"^AU\d{2}_[rc]$")


@dataclass
class OpenFaceAUs:
    """Per-frame action units of one OpenFace ``FeatureExtraction`` CSV.

    Attributes
    ----------
    path
        The CSV file.
    frame, face_id, timestamp, confidence, success
        One value per row (``success`` as bool; rows are kept in file order).
    intensity, presence
        ``(rows, len(intensity_names))`` and ``(rows, len(presence_names))`` float arrays.
    intensity_names, presence_names
        AU names in column order (``AU01``...), as found in the file.
    """

    path: str
    frame: np.ndarray
    face_id: np.ndarray
    timestamp: np.ndarray
    confidence: np.ndarray
    success: np.ndarray
    intensity: np.ndarray
    presence: np.ndarray
    intensity_names: list[str]
    presence_names: list[str]

    def __len__(self) -> int:
        return len(self.frame)

    def good(self, *, min_confidence: float = 0.8, face_id: int | None = None) -> np.ndarray:
        """Boolean mask of tracked rows (``success`` and ``confidence >= min_confidence``,
        optionally of one face)."""
        mask = self.success & (self.confidence >= min_confidence)
        if face_id is not None:
            mask &= self.face_id == face_id
        return mask


def read_openface(path: str | Path) -> OpenFaceAUs:
    """Read an OpenFace 2.x ``FeatureExtraction`` CSV (``-aus`` or full output).

    Raises
    ------
    DataError
        If the file is missing, empty, has no AU columns, or a value is not a number (the
        message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "OpenFace CSV not found")
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if not header:
            raise DataError(path, "OpenFace CSV is empty")
        col = {h: i for i, h in enumerate(header)}
        r_names = [h[:-2] for h in header if _AU_COL.match(h) and h.endswith("_r")]
        c_names = [h[:-2] for h in header if _AU_COL.match(h) and h.endswith("_c")]
        if not r_names and not c_names:
            raise DataError(path, "no action-unit columns (AUxx_r / AUxx_c): is this "
                            "OpenFace FeatureExtraction output (run it with -aus)?")
        wanted = ["frame", "face_id", "timestamp", "confidence", "success"]
        rows: list[list[float]] = []
        for line, row in enumerate(reader, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            try:
                vals = [float(row[col[h]]) if h in col else np.nan for h in wanted]
                vals += [float(row[col[f"{a}_r"]]) for a in r_names]
                vals += [float(row[col[f"{a}_c"]]) for a in c_names]
            except (ValueError, IndexError):
                raise DataError(path, f"line {line}: not a number, or fewer columns than the "
                                      f"header's {len(header)}") from None
            rows.append(vals)
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 5 + len(r_names) + len(c_names))
    n = len(a)
    frame = np.where(np.isnan(a[:, 0]), np.arange(1, n + 1), a[:, 0]).astype(np.int64)
    return OpenFaceAUs(
        path=str(path), frame=frame,
        face_id=np.nan_to_num(a[:, 1], nan=0.0).astype(np.int64),
        timestamp=a[:, 2], confidence=np.nan_to_num(a[:, 3], nan=1.0),
        success=np.nan_to_num(a[:, 4], nan=1.0) > 0.5,
        intensity=a[:, 5:5 + len(r_names)], presence=a[:, 5 + len(r_names):],
        intensity_names=r_names, presence_names=c_names)


@register_feature("openface_au", modality="face", version="1")
def openface_au_stats(path: str | Path, *, min_confidence: float = 0.8,
                      face_id: int | None = None) -> np.ndarray:
    """Clip vector from an OpenFace CSV: mean and standard deviation of each AU intensity,
    then the mean of each AU presence, over tracked frames (layout of
    :data:`AU_INTENSITY` / :data:`AU_PRESENCE`; an AU the file lacks is 0). Length 52.

    Raises
    ------
    DataError
        If no frame was tracked (``success`` with enough confidence).
    """
    aus = read_openface(path)
    mask = aus.good(min_confidence=min_confidence, face_id=face_id)
    if not mask.any():
        raise DataError(path, f"no tracked frame (success=1, confidence >= {min_confidence}) "
                              f"among {len(aus)} rows")
    out = np.zeros(2 * len(AU_INTENSITY) + len(AU_PRESENCE), np.float32)
    inten = aus.intensity[mask]
    pres = aus.presence[mask]
    for j, name in enumerate(aus.intensity_names):
        if name in AU_INTENSITY:
            i = AU_INTENSITY.index(name)
            out[i] = np.nanmean(inten[:, j])
            out[len(AU_INTENSITY) + i] = np.nanstd(inten[:, j])
    for j, name in enumerate(aus.presence_names):
        if name in AU_PRESENCE:
            out[2 * len(AU_INTENSITY) + AU_PRESENCE.index(name)] = np.nanmean(pres[:, j])
    return out
