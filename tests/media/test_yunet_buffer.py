"""YuNet without yuface's leak: libfacedetection called with a reused result buffer gives the
faces yuface's own ``detect`` gives, and resident memory stays flat (issue 23)."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emofuse.media import faces

pytestmark = pytest.mark.skipif(importlib.util.find_spec("yuface") is None,
                                reason="pip install yuface")


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """examples/face.jpg and 6 frames of examples/video.mp4, at full size and scaled to 320 px
    (the size live streams detect at)."""
    from emofuse.media.image import load_image
    from emofuse.media.video import iter_frames
    from emofuse.paths import examples_dir

    ex = examples_dir()
    if ex is None or not (ex / "face.jpg").is_file() or not (ex / "video.mp4").is_file():
        pytest.skip("examples (face.jpg, video.mp4) not found")
    full = [load_image(ex / "face.jpg", mode="RGB")]
    full += [f for _, f in iter_frames(ex / "video.mp4", max_frames=6)]
    return full + [faces._downscale(im, 320)[0] for im in full]


def _old_path(det: faces.YuNetDetector, rgb: np.ndarray, monkeypatch) -> list[faces.Face]:
    """``det.detect`` through yuface's own ``detect`` (the code path before the fix)."""
    with monkeypatch.context() as m:
        m.setattr(faces._FaceDetectCNN, "get", classmethod(lambda cls: None))
        return det.detect(rgb)


def _same(a: list[faces.Face], b: list[faces.Face]) -> bool:
    return len(a) == len(b) and all(
        x.box == y.box and x.score == y.score and np.array_equal(x.landmarks, y.landmarks)
        for x, y in zip(a, b))


def test_buffer_path_is_used():
    assert faces._FaceDetectCNN.get() is not None, "libfacedetection not callable via ctypes"


def test_raw_output_matches_yuface(images):
    """The 15 values yuface returns per face (score, box, 5 points) are the same; the 16th is
    never written by the library (uninitialised in yuface's buffer) and not used."""
    from yuface import yuface as _yu

    cnn = faces._FaceDetectCNN.get()
    for im in images:
        bgr = np.ascontiguousarray(im[:, :, ::-1])
        with faces._omp_threads(1):  # OpenMP workers crawl on a busy machine
            old = np.asarray(_yu.detect(bgr)).astype(np.int64)
            new = cnn(bgr)
        assert new.shape == old.shape and len(new) >= 1
        np.testing.assert_array_equal(new[:, :15], old[:, :15])


def test_faces_unchanged(images, monkeypatch):
    det = faces.YuNetDetector()
    for im in images:
        new = det.detect(im)
        assert len(new) == 1
        assert _same(new, _old_path(det, im, monkeypatch))
    # and through detect_faces / extract_faces on the file itself
    from emofuse.paths import examples_dir

    path: Path = examples_dir() / "face.jpg"
    new = faces.extract_faces(path)
    with monkeypatch.context() as m:
        m.setattr(faces._FaceDetectCNN, "get", classmethod(lambda cls: None))
        old = faces.extract_faces(path)
    assert _same(new, old) and np.array_equal(new[0].crop, old[0].crop)


def test_no_face_and_reused_buffer(images):
    """A frame without a face after one with a face gives no stale face from the buffer."""
    det = faces.YuNetDetector()
    assert det.detect(images[-1])
    assert det.detect(np.full((240, 320, 3), 128, np.uint8)) == []
    assert len(det.detect(images[-1])) == 1


def test_threads_give_the_single_thread_faces(images):
    """ctypes releases the GIL, so streams detect concurrently: each thread has its own buffer
    and gets the faces a single thread gets."""
    det = faces.YuNetDetector()
    want = [det.detect(im) for im in images]
    bad: list[int] = []

    def work(k: int) -> None:
        for r in range(2):
            for i in np.roll(np.arange(len(images)), k + r):
                if not _same(det.detect(images[i]), want[i]):
                    bad.append(int(i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []


def _rss_bytes() -> int:
    import os

    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_resident_memory_stays_flat(images):
    """yuface's detect leaked 36 kB a call (800 calls: +29 MB); now well under 2 MB in all,
    whatever the time budget allowed (at most 800 calls or ~12 s on a busy machine)."""
    det = faces.YuNetDetector()
    frame = np.ascontiguousarray(np.pad(images[-1], ((30, 30), (0, 0), (0, 0))))  # 320x240
    assert frame.shape == (240, 320, 3) and len(det.detect(frame)) == 1
    for _ in range(30):  # warm-up: allocator pools, OpenMP, numpy caches
        det.detect(frame)
    r0, t0, n = _rss_bytes(), time.perf_counter(), 0
    while n < 800 and (n < 200 or time.perf_counter() - t0 < 12.0):
        det.detect(frame)
        n += 1
    grown = _rss_bytes() - r0
    assert grown < 2_000_000, f"RSS grew {grown / 1e6:.1f} MB over {n} detections"
    assert grown / n < 2_000, f"{grown / n:.0f} B per detection (yuface leaked 36 kB)"
