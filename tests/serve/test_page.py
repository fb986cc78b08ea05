"""The web page in headless Chromium (Debian's ``chromium``, driven by Playwright): upload a
file or type text and see the probabilities, modality weights, faces and timeline drawn."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .._tiny_models import make_bundle, write_image
from ._server import running

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

if not Path(CHROMIUM).exists():
    pytest.skip("Debian package chromium is not installed (scripts/apt-packages.txt lists it)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    from emofuse.serve import create_app

    app = create_app([str(make_bundle(tmp_path_factory.mktemp("models")))], max_upload_mb=5)
    with running(app) as url:
        yield url


@pytest.fixture(scope="module")
def page(base_url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = browser.new_page(viewport={"width": 1100, "height": 1400})
        errors: list[str] = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(base_url + "/")
        pg.wait_for_selector("body[data-ready='1']", timeout=15_000)
        pg.js_errors = errors
        yield pg
        browser.close()


def _submit(page, button: str) -> None:
    """Click ``button`` and wait until the page has drawn this answer: the previous answer's
    ``#result`` is still visible while the new one is read, so waiting on it alone races."""
    before = page.get_attribute("body", "data-answers") or "0"
    with page.expect_response("**/predict*"):
        page.click(button)
    page.wait_for_function("n => (document.body.dataset.answers || '0') !== n", arg=before)


def _predict_file(page, path: Path, *, timeline: bool = False) -> None:
    page.set_input_files("#file", str(path))
    page.set_checked("#timeline", timeline)
    _submit(page, "#submit-file")


def test_page_loads_with_models_and_limits(page):
    status = page.inner_text("#status")
    assert "speech" in status and "face" in status and "5 MB" in status


def test_text_prediction_draws_probabilities(page):
    page.fill("#text", "I can't believe we finally won!")
    _submit(page, "#submit-text")
    assert page.is_visible("#result")
    assert page.inner_text("#label")
    assert page.locator("#probs rect.bar").count() == 6  # one bar per text label
    assert page.locator("#weights rect.weight").count() == 1
    values = [float(v) for v in page.locator("#probs rect.bar").evaluate_all(
        "els => els.map(e => e.dataset.value)")]
    assert abs(sum(values) - 1) < 1e-3


def test_speech_clip_with_timeline(page):
    _predict_file(page, EXAMPLES / "speech.flac", timeline=True)
    assert page.is_visible("#timeline-box")
    assert page.locator("svg[data-chart='timeline'][data-modality='speech'] path.series").count() == 8
    assert "audio" in page.inner_text("#meta")


def test_video_shows_both_modalities_and_weights(page):
    _predict_file(page, EXAMPLES / "video.mp4", timeline=True)
    assert page.locator("#weights rect.weight").count() == 2
    assert page.locator("#per-modality svg").count() == 2
    assert page.locator("svg[data-chart='timeline'][data-modality='face']").count() == 1


def test_image_draws_face_boxes(page, tmp_path):
    _predict_file(page, EXAMPLES / "face.jpg")
    page.wait_for_selector("#preview-box:not([hidden])")
    assert page.get_attribute("#preview", "data-faces") == "1"
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_errors_are_shown_and_the_page_recovers(page, tmp_path):
    flat = write_image(tmp_path / "wall.png", flat=True)
    _predict_file(page, flat)
    assert page.is_visible("#error") and "no face found" in page.inner_text("#error")
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n")
    _predict_file(page, bad)
    assert "Error 415" in page.inner_text("#error")
    _predict_file(page, EXAMPLES / "sentence.txt")
    assert page.is_visible("#result") and not page.is_visible("#error")
    assert page.js_errors == []
