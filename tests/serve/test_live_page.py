"""The "Live" tab in headless Chromium (Debian's ``chromium``, driven by Playwright) with fake
capture devices fed from ``examples/video.mp4``: the page streams microphone and camera over
the ``/stream`` WebSocket, updates arrive and the scrolling chart fills."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from .._tiny_models import make_bundle
from ._server import running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

if not Path(CHROMIUM).exists():
    pytest.skip("Debian package chromium is not installed (scripts/apt-packages.txt lists it)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
if not any(importlib.util.find_spec(m) for m in ("websockets", "wsproto")):
    pytest.skip("uvicorn serves WebSockets with websockets or wsproto (the live extra)",
                allow_module_level=True)


def write_y4m(video: Path, out: Path, *, width: int = 320, fps: int = 10) -> Path:
    """The video's frames as a Y4M file (Chromium's fake camera reads it, in a loop)."""
    import av

    from emofuse.media import iter_frames

    frames = [f for _, f in iter_frames(video, fps=fps)]
    h, w = frames[0].shape[:2]
    height = int(round(h * width / w / 2)) * 2
    with out.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                width=width, height=height, format="yuv420p").to_ndarray()
            f.write(b"FRAME\n" + np.ascontiguousarray(yuv).tobytes())
    return out


def write_wav(video: Path, out: Path, rate: int = 48000) -> Path:
    """The video's sound as 16-bit PCM WAV (Chromium's fake microphone reads it, in a loop)."""
    import soundfile as sf

    from emofuse.media import read_audio_track

    sf.write(str(out), read_audio_track(video, sr=rate), rate, subtype="PCM_16")
    return out


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    from emofuse.serve import create_app

    app = create_app([str(make_bundle(tmp_path_factory.mktemp("models")))], workers=0,
                     max_upload_mb=5)
    with running(app) as url:
        yield url


def test_live_tab_streams_microphone_and_camera(base_url, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    wav = write_wav(EXAMPLES / "video.mp4", media / "voice.wav")
    y4m = write_y4m(EXAMPLES / "video.mp4", media / "face.y4m")
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}",
            f"--use-file-for-fake-video-capture={y4m}",
            "--autoplay-policy=no-user-gesture-required",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic"]
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=args, headless=True,
            viewport={"width": 1100, "height": 1200})
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base_url + "/")
            page.wait_for_selector("body[data-ready='1']", timeout=15_000)
            assert page.is_visible("#predict") and not page.is_visible("#live")
            page.click("#tab-live")
            assert page.is_visible("#live") and not page.is_visible("#predict")
            page.click("#live-start")
            page.wait_for_function(
                "Number(document.getElementById('live-chart').dataset.updates) >= 6",
                timeout=40_000)
            assert "streaming speech + face" in page.inner_text("#live-status")
            chart = page.locator("#live-chart")
            rows = set(chart.get_attribute("data-rows").split(","))
            assert {"fused", "speech", "face"} <= rows, rows
            assert int(chart.get_attribute("data-bars")) >= 10
            label = page.get_attribute("#live-label", "data-label")
            colour = page.evaluate("color(document.getElementById('live-label').dataset.label, 0)")
            from emofuse.palette import color

            assert label and colour == color(label)
            assert "frames" in page.inner_text("#live-counters")
            assert page.is_visible("#live-video")
            page.screenshot(path=str(tmp_path / "live.png"), full_page=True)
            page.click("#live-stop")
            page.wait_for_function(
                "document.getElementById('live-status').textContent.startsWith('ended')",
                timeout=15_000)
            assert page.is_hidden("#live-error")
            assert errors == []
        finally:
            ctx.close()
