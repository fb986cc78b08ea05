"""Face detection and alignment (detectors shipped in pip packages; real frames from the
shared sample clips)."""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from emofuse.errors import ConfigError, MediaError
from emofuse.media import _face_backends, faces
from emofuse.media.faces import EYE_TEMPLATE, Face, align_face, as_rgb, detect_faces

needs_yuface = pytest.mark.skipif(importlib.util.find_spec("yuface") is None,
                                  reason="pip install yuface")


@pytest.fixture(scope="module")
def frame(shared_data) -> np.ndarray:
    """A real 640x360 RGB frame with one face (RAVDESS actor 01)."""
    from emofuse.media.video import iter_frames

    clips = sorted((shared_data / "ravdess" / "Video_Speech_Actor_01_sample").glob("*.mp4"))
    if not clips:
        pytest.skip("RAVDESS sample clips not found")
    return next(iter_frames(clips[0], max_frames=1))[1]


def test_as_rgb_accepts_every_layout():
    gray = np.full((10, 12), 100, np.uint8)
    assert as_rgb(gray).shape == (10, 12, 3)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 3] = 0  # fully transparent -> white
    assert as_rgb(rgba).min() == 255
    assert as_rgb(np.full((4, 4), 65535, np.uint16)).max() == 255
    assert as_rgb(np.full((4, 4, 3), 0.5)).max() == 128
    with pytest.raises(MediaError):
        as_rgb(np.zeros((4, 4, 2)))


def test_unknown_detector():
    with pytest.raises(ConfigError, match="unknown face detector"):
        faces.get_detector("nope")


def test_align_puts_eyes_on_the_template():
    """Two dots at known 'eye' positions on a tilted line land where the template says."""
    img = np.zeros((200, 300), np.uint8)
    left, right = np.array([100.0, 90.0]), np.array([170.0, 120.0])  # tilted ~23 degrees
    for x, y in (left, right):
        img[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] = 255
    lm = np.array([left, right, [135, 140], [110, 170], [160, 170]])
    crop = align_face(img, Face((60, 50, 150, 160), 1.0, lm, "test"), side=100)
    ys, xs = np.nonzero(crop > 100)
    found = sorted(((xs[xs < 50].mean(), ys[xs < 50].mean()),
                    (xs[xs >= 50].mean(), ys[xs >= 50].mean())))
    ex0, ey, ex1 = EYE_TEMPLATE
    assert found[0] == pytest.approx((ex0 * 100, ey * 100), abs=1.5)
    assert found[1] == pytest.approx((ex1 * 100, ey * 100), abs=1.5)


def test_align_without_eyes_crops_the_box():
    img = np.zeros((100, 100), np.uint8)
    img[20:60, 30:70] = 200
    crop = align_face(img, Face((30, 20, 40, 40), 1.0, None, "test"), side=40)
    assert crop.shape == (40, 40)
    assert crop[2:-2, 2:-2].min() > 190  # the box fills the crop, with a thin margin
    assert crop[0].mean() < 100


def test_torchvision_shim_nms():
    import torch

    shim = _face_backends._torchvision_shim()
    nms = shim["torchvision.ops.boxes"].batched_nms
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10.]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    idx = torch.tensor([0, 0, 0, 1])  # the last box is in another image: never suppressed
    assert sorted(nms(boxes, scores, idx, 0.5).tolist()) == [0, 2, 3]
    t = shim["torchvision.transforms.functional"].to_tensor(np.full((2, 3, 3), 255, np.uint8))
    assert t.shape == (3, 2, 3) and float(t.max()) == 1.0


@needs_yuface
def test_yunet_finds_the_face_with_landmarks(frame):
    found = detect_faces(frame, detector="yunet")
    assert len(found) == 1
    f = found[0]
    x, y, w, h = f.box
    assert 0.2 < w / frame.shape[1] < 0.5 and f.score > 0.8
    (lx, ly), (rx, ry) = f.landmarks[:2]
    assert x < lx < rx < x + w and y < ly < y + h / 2 + 10


@needs_yuface
def test_no_face_in_noise_and_tiny_images():
    rng = np.random.default_rng(0)
    assert detect_faces(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)) == []
    assert detect_faces(np.zeros((8, 8), np.uint8)) == []


def test_haar_detects_the_face(frame):
    found = detect_faces(frame, detector="haar")
    assert len(found) >= 1 and found[0].box[2] > 80


@pytest.mark.skipif(importlib.util.find_spec("facenet_pytorch") is None,
                    reason="pip install --no-deps facenet-pytorch")
def test_mtcnn_without_torchvision(frame):
    found = detect_faces(frame, detector="mtcnn")
    assert len(found) == 1 and found[0].landmarks is not None
    import sys

    assert "torchvision" not in sys.modules or importlib.util.find_spec("torchvision")


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                    reason="pip install --no-deps mediapipe==0.10.21")
def test_mediapipe_face_mesh(frame):
    found = detect_faces(frame, detector="mediapipe")
    assert len(found) == 1
    (lx, ly), (rx, ry) = found[0].landmarks[:2]
    assert lx < rx and abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 20


@needs_yuface
def test_extract_faces_on_a_large_image(frame):
    """A 4x enlarged frame is detected on a <= 640 px copy; boxes come back in full scale."""
    import cv2

    big = cv2.resize(frame, None, fx=4, fy=4)
    found = faces.extract_faces(big, side=64)
    small = faces.extract_faces(frame, side=64)
    assert len(found) == 1 and found[0].crop.shape == (64, 64)
    np.testing.assert_allclose(np.array(found[0].box) / 4, small[0].box, atol=6)


def test_openmp_setting_is_restored_after_detection():
    import torch

    before = torch.get_num_threads()
    with faces._omp_threads(1):
        pass
    assert torch.get_num_threads() == before
    assert all("omp" in p for p in _face_backends._openmp_libraries())
