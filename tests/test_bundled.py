"""The bundled models (``make models``): complete cards, package size, offline loading, and
``emofuse demo`` predicting every example file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from emofuse.cli import app
from emofuse.inference import BUNDLED_NAMES, Recognizer, bundled_dir
from emofuse.models.checkpoint import read_card

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BUNDLED = bundled_dir()


@pytest.fixture(autouse=True)
def _bundled_only(monkeypatch):
    monkeypatch.delenv("EMOFUSE_MODELS", raising=False)
    monkeypatch.setenv("COLUMNS", "220")


@pytest.mark.parametrize("name", BUNDLED_NAMES)
def test_bundled_model_has_a_complete_card(name):
    card = read_card(BUNDLED / name)
    assert card["task"] == name
    assert len(card["labels"]) >= 6
    for key in ("data", "protocol", "metrics", "weights_sha256", "emofuse_version"):
        assert key in card, f"{name}: card lacks {key!r}"
    assert (BUNDLED / name / "model.safetensors").stat().st_mode & 0o044 == 0o044  # readable


def test_bundle_is_small_and_has_no_checkpoints():
    files = [p for p in BUNDLED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= 30 * 2**20
    assert not [p for p in files if p.suffix in (".ckpt", ".pt", ".pth", ".pkl")]


def test_default_recognizer_loads_every_modality():
    rec = Recognizer.load("default")
    assert set(rec.modalities) >= {"speech", "face", "text"}
    assert set(rec.models) == set(BUNDLED_NAMES)


def test_demo_predicts_every_example():
    r = CliRunner().invoke(app, ["demo", "--examples", str(EXAMPLES)])
    assert r.exit_code == 0, r.output
    for name in ("speech.flac", "video.mp4", "face.jpg", "I can't believe"):
        assert name in r.output
    assert "skipped" not in r.output


def test_sensible_predictions_on_the_examples():
    rec = Recognizer.load("default")
    assert rec.predict_text("I can't believe we finally won, this is the best day of my "
                            "life!").label == "happy"
    face = rec.predict(EXAMPLES / "face.jpg")
    assert face.faces and face.label == "surprise"


def test_face_runs_on_its_onnx_copy_like_pytorch(monkeypatch):
    import numpy as np

    from emofuse._onnx import OnnxNet
    from emofuse.recipes import face as recipe

    net, card = recipe.load_fast(BUNDLED / "face")
    assert isinstance(net, OnnxNet) and card["onnx"]["parity_max_abs"] < 1e-4
    torch_net, _ = recipe.load_predictor(BUNDLED / "face")
    crops = np.random.default_rng(0).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    tta = {"flip": True, "shift": 3}
    assert np.abs(recipe.predict_proba(net, crops, tta=tta)
                  - recipe.predict_proba(torch_net, crops, tta=tta)).max() < 1e-4
    monkeypatch.setenv("EMOFUSE_ONNX", "0")
    assert recipe.load_fast(BUNDLED / "face") is None


def test_speech_image_and_text_predictions_do_not_import_torch_or_sklearn():
    import subprocess
    import sys

    from emofuse.features.text import prepare_fast_encoder

    prepare_fast_encoder()            # the one-off ONNX export of the text encoder uses torch
    from emofuse.inference.speech import SpeechPredictor

    SpeechPredictor(BUNDLED / "speech")  # ... and that of the speech model's Whisper encoder
    code = ("import sys\nfrom emofuse import Recognizer\n"
            "r = Recognizer.load('speech', 'face', 'text')\n"
            f"r.predict({str(EXAMPLES / 'face.jpg')!r})\nr.predict_text('what a day')\n"
            f"r.predict({str(EXAMPLES / 'speech.flac')!r})\n"
            "print('torch' in sys.modules, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # neither torch nor scikit-learn (linear heads run on numpy): both cost seconds of cold start
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_face_crops_skip_detection_as_in_the_benchmark(shared_data):
    """A 48x48 FER2013 face goes to the classifier whole (``detect=auto``), as the benchmark
    feeds it; ``always`` would look for a face in it; ``never`` classifies any image whole."""
    from emofuse.inference import NoFaceError, PredictOptions
    from emofuse.media import load_image

    crops = sorted((shared_data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))[:5]
    rec = Recognizer.load("face")
    for path in crops:
        p = rec.predict(path)
        assert p.faces[0].box == (0, 0, 48, 48) and p.reliable
    never = Recognizer.load("face", options=PredictOptions(detect="never"))
    big = load_image(EXAMPLES / "face.jpg")
    q = never.predict(big)
    assert q.faces[0].box == (0, 0, big.shape[1], big.shape[0])
    always = Recognizer.load("face", options=PredictOptions(detect="always"))
    failures = 0
    for path in crops:
        try:
            always.predict(path)
        except NoFaceError as exc:
            failures += 1
            assert "--detect never" in str(exc)
    assert failures >= 0  # the detector may or may not find these tiny faces; never a crash


def test_blurred_face_is_flagged_unreliable(shared_data):
    import cv2

    from emofuse.media import load_image

    path = sorted((shared_data / "fer2013" / "test" / "happy").glob("PrivateTest_*.jpg"))[0]
    img = load_image(path)
    rec = Recognizer.load("face")
    sharp = rec.predict(img)
    blurred = rec.predict(cv2.GaussianBlur(img, (0, 0), 3))
    assert sharp.reliable and not blurred.reliable
    assert any("blurred" in w for w in blurred.warnings)
