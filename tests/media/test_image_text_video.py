import warnings

import numpy as np
import pytest
from PIL import Image

from emofuse.errors import MediaError
from emofuse.media import (load_image, normalise_text, probe_video, read_audio_track, read_frames,
                           read_lines, read_text)


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "CMYK", "P", "I;16"])
def test_image_modes(tmp_path, mode):
    arr = (np.arange(32 * 48) % 255).reshape(32, 48).astype(np.uint8)
    if mode == "I;16":
        img = Image.fromarray(arr.astype(np.uint16) * 257)
        p = tmp_path / "x.png"
    else:
        img = Image.fromarray(arr).convert(mode)
        p = tmp_path / ("x.jpg" if mode in ("L", "RGB", "CMYK") else "x.png")
    img.save(p)
    rgb = load_image(p)
    assert rgb.shape == (32, 48, 3) and rgb.dtype == np.uint8
    assert load_image(p, mode="L").shape == (32, 48)


def test_huge_image_downscaled(tmp_path):
    p = tmp_path / "big.jpg"
    Image.new("RGB", (6000, 3000), (10, 200, 30)).save(p, quality=50)
    out = load_image(p, max_side=1024)
    assert max(out.shape[:2]) <= 1024


@pytest.mark.parametrize("content,problem", [(b"", "empty"), (b"\xff\xd8\xff\xe0garbage", "corrupt|not an image"),
                                             (b"hello", "not an image")])
def test_bad_images(tmp_path, content, problem):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(MediaError, match=problem):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    p = tmp_path / "t.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(p)
    p.write_bytes(p.read_bytes()[:300])
    with pytest.raises(MediaError):
        load_image(p)


def test_text_normalisation_and_truncation():
    assert normalise_text("  a\u0000b \n\n c  ") == "ab c"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = normalise_text("x" * 100, max_chars=10)
    assert out == "x" * 10 and any("truncated" in str(m.message) for m in w)


def test_text_invalid_utf8_and_binary(tmp_path):
    p = tmp_path / "t.txt"
    p.write_bytes("café\n\n naïve \n".encode() + b"\xff\xfe bad\n")
    with pytest.warns(UserWarning, match="invalid UTF-8"):
        lines = read_lines(p)
    assert lines[0] == "café" and len(lines) == 3
    b = tmp_path / "b.txt"
    b.write_bytes(b"\x00\x01\x02" * 10)
    with pytest.raises(MediaError, match="binary"):
        read_text(b)


def _write_video(path, *, audio: bool, n=12):
    import av

    with av.open(str(path), "w") as c:
        vs = c.add_stream("mpeg4", rate=12)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        if audio:
            a_st = c.add_stream("aac", rate=16000)
        for i in range(n):
            fr = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")
            for pkt in vs.encode(fr):
                c.mux(pkt)
        for pkt in vs.encode():
            c.mux(pkt)
        if audio:
            t = np.arange(16000) / 16000
            samples = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)[None, :]
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate = 16000
            for pkt in a_st.encode(af):
                c.mux(pkt)
            for pkt in a_st.encode():
                c.mux(pkt)


def test_video_frames_and_audio(tmp_path):
    p = tmp_path / "v.mp4"
    _write_video(p, audio=True)
    info = probe_video(p)
    assert info.has_audio and info.width == 64
    times, frames = read_frames(p, fps=4)
    assert frames.shape[1:] == (48, 64, 3)
    assert 3 <= len(frames) <= 5 and np.all(np.diff(times) > 0)
    y = read_audio_track(p, sr=16000)
    assert 12000 < len(y) < 20000


def test_video_without_audio_or_video(tmp_path):
    p = tmp_path / "silent.mp4"
    _write_video(p, audio=False)
    assert not probe_video(p).has_audio
    with pytest.raises(MediaError, match="no audio stream"):
        read_audio_track(p)
    import soundfile as sf

    a = tmp_path / "audio_only.wav"
    sf.write(a, np.zeros(1600, np.float32), 16000)
    with pytest.raises(MediaError):
        probe_video(a)


def test_real_clips(shared_data):
    for p in [shared_data / "ravdess/Video_Speech_Actor_01_sample/01-01-01-01-01-01-01.mp4",
              shared_data / "cremad/VideoFlash_sample/1001_DFA_ANG_XX.flv"]:
        if not p.exists():
            pytest.skip(f"{p} not found")
        info = probe_video(p)
        assert info.has_audio and info.duration > 1
        _, frames = read_frames(p, fps=2)
        assert frames.shape[0] >= 3
        assert len(read_audio_track(p)) > 16000
