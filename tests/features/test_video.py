"""Space-time interest points and the OpenFace CSV reader."""

from __future__ import annotations

import numpy as np
import pytest

from emofuse.errors import DataError
from emofuse.features import get_feature
from emofuse.features.video import (AU_INTENSITY, AU_PRESENCE, STIP_SCALES, harris3d_response,
                                    interest_points, openface_au_stats, read_openface,
                                    stip_features)


def _blob_volume(t0: int = 12, y0: int = 20, x0: int = 30) -> np.ndarray:
    """A dark volume where a bright square appears at frame t0 and moves right."""
    vol = np.zeros((24, 48, 64), np.float32)
    for t in range(t0, 24):
        x = x0 + (t - t0)
        vol[t, y0 - 3:y0 + 3, x - 3:x + 3] = 1.0
    return vol


def test_static_volume_has_no_interest_points():
    vol = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (20, 48, 1))
    assert len(interest_points(vol)) == 0


def test_points_mark_where_and_when_motion_starts():
    pts = interest_points(_blob_volume(), max_points=5)
    assert len(pts) > 0
    t, y, x, h = pts[0]
    assert h > 0 and abs(t - 12) <= 4 and abs(y - 20) <= 6 and abs(x - 30) <= 8


def test_response_is_det_minus_k_trace_cubed():
    vol = np.random.default_rng(0).random((8, 16, 16)).astype(np.float32)
    h0, _ = harris3d_response(vol, k=0.0)
    h1, _ = harris3d_response(vol, k=0.01)
    assert np.all(h1 <= h0 + 1e-12)  # trace >= 0, so a larger k only lowers H
    with pytest.raises(ValueError):
        harris3d_response(np.zeros((2, 8, 8)))


def test_stip_vector_layout():
    v = stip_features(np.stack([(_blob_volume() * 255).astype(np.uint8)] * 3, -1), fps=15,
                      side=64, grid=4)
    assert v.shape == (len(STIP_SCALES) * (4 * 4 + 15),) and np.isfinite(v).all()
    assert get_feature("stip").modality == "face"
    assert get_feature("openface_au").modality == "face"


def test_stip_on_a_real_clip(shared_data):
    clips = sorted((shared_data / "cremad" / "VideoFlash_sample").glob("*.flv"))
    if not clips:
        pytest.skip("CREMA-D sample clips not found")
    v = stip_features(clips[0], fps=10, side=80, max_frames=20)
    assert np.isfinite(v).all() and v[0] > 0  # points per second at the first scale


def _openface_csv(path, rows):
    head = ["frame", " face_id", " timestamp", " confidence", " success"]
    head += [f" {a}_r" for a in AU_INTENSITY] + [f" {a}_c" for a in AU_PRESENCE]
    lines = [",".join(head)]
    for frame, conf, success, inten, pres in rows:
        vals = [frame, 0, (frame - 1) / 30, conf, success]
        vals += [inten] * len(AU_INTENSITY) + [pres] * len(AU_PRESENCE)
        lines.append(", ".join(str(v) for v in vals))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_openface_and_summary(tmp_path):
    p = _openface_csv(tmp_path / "clip.csv", [(1, 0.98, 1, 1.0, 1), (2, 0.95, 1, 3.0, 0),
                                              (3, 0.1, 0, 5.0, 1)])
    aus = read_openface(p)
    assert len(aus) == 3 and aus.intensity_names == list(AU_INTENSITY)
    assert aus.presence_names == list(AU_PRESENCE)
    assert aus.good().tolist() == [True, True, False]
    v = openface_au_stats(p)
    n = len(AU_INTENSITY)
    assert v.shape == (2 * n + len(AU_PRESENCE),)
    assert v[0] == pytest.approx(2.0) and v[n] == pytest.approx(1.0)  # mean, std over 2 frames
    assert v[2 * n] == pytest.approx(0.5)


def test_openface_errors_name_the_file_and_line(tmp_path):
    no_au = tmp_path / "pose.csv"
    no_au.write_text("frame, timestamp, pose_Tx\n1, 0.0, 3.0\n")
    with pytest.raises(DataError, match="no action-unit columns"):
        read_openface(no_au)
    bad = _openface_csv(tmp_path / "bad.csv", [(1, 0.9, 1, 1.0, 1)])
    bad.write_text(bad.read_text() + "2, 0, 0.03, 0.9, 1, oops\n")
    with pytest.raises(DataError, match="line 3"):
        read_openface(bad)
    lost = _openface_csv(tmp_path / "lost.csv", [(1, 0.2, 0, 1.0, 1)])
    with pytest.raises(DataError, match="no tracked frame"):
        openface_au_stats(lost)
    with pytest.raises(DataError, match="not found"):
        read_openface(tmp_path / "missing.csv")
