"""The adapters of the real recognisers (speech, face, text), on small untrained networks of
the real architectures: same numbers as the modality predictors, faces found, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.inference import NoFaceError, Recognizer

from ._tiny_models import write_image

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BASE = {"data": {"corpus": "none"}, "protocol": {"kind": "none"}, "metrics": {}}
SPEECH = ["neutral", "calm", "happy", "sad", "angry", "fear", "disgust", "surprise"]


@pytest.fixture(scope="module")
def speech_model(tmp_path_factory) -> Path:
    from emofuse.models import build_model
    from emofuse.inference.speech_models import Member, save_member

    torch.manual_seed(0)
    net = build_model("cnn2d", n_classes=8, channels=(4, 8)).eval()
    with torch.no_grad():
        net.out.weight.mul_(20)
    out = tmp_path_factory.mktemp("speech") / "speech"
    save_member(out, Member("waveform", SPEECH, net, {"name": "cnn2d",
                                                      "params": {"channels": [4, 8]}}), BASE)
    return out


def test_speech_adapter_matches_speech_predictor(speech_model):
    from emofuse.inference.speech import SpeechPredictor

    p = Recognizer.load(speech_model).predict(EXAMPLES / "speech.flac")
    want = SpeechPredictor(speech_model).analyse(EXAMPLES / "speech.flac")["probs"]
    for label, v in want.items():
        assert p.modalities["speech"][label] == pytest.approx(v, abs=1e-5)
    assert p.models == {"speech": "speech"}


def test_speech_adapter_passes_on_predictor_errors(speech_model):
    from emofuse.errors import MediaError

    rec = Recognizer.load(speech_model)
    with pytest.raises(MediaError, match="silent"):
        rec.predict(np.zeros(16000, np.float32), sr=16000)


@pytest.fixture(scope="module")
def face_model(tmp_path_factory) -> Path:
    from emofuse.media.faces import available_detectors
    from emofuse.models import build_model
    from emofuse.models.face import FER_CLASSES
    from emofuse.train import save_model

    if "yunet" not in available_detectors():
        pytest.skip("the yunet face detector (yuface package) is not installed")
    torch.manual_seed(0)
    net = build_model("resnet18_face", n_classes=7, width=4, stem_stride=2).eval()
    out = tmp_path_factory.mktemp("face") / "face"
    save_model(out, net, {"task": "face", "labels": list(FER_CLASSES),
                          "features": {"name": "face_crop", "side": 48, "detector": "yunet",
                                       "tta": None},
                          "model": {"name": "resnet18_face",
                                    "params": {"width": 4, "stem_stride": 2}}, **BASE})
    return out


def test_face_adapter_finds_the_face_and_uses_the_recipe_network(face_model, tmp_path):
    from emofuse.media import load_image
    from emofuse.media.faces import extract_faces
    from emofuse.recipes.face import load_predictor, predict_proba

    p = Recognizer.load(face_model).predict(EXAMPLES / "face.jpg")
    assert p.kind == "image" and len(p.faces) == 1
    x, y, w, h = p.faces[0].box
    assert 60 < x + w / 2 < 300 and 60 < y + h / 2 < 300 and w > 80  # the actor's face
    net, _ = load_predictor(face_model)
    crops = np.stack([f.crop for f in extract_faces(load_image(EXAMPLES / "face.jpg"),
                                                   detector="yunet", side=48)])
    want = predict_proba(net, crops)[0]
    got = [p.modalities["face"][c] for c in ("angry", "disgust", "fear", "happy", "sad",
                                             "surprise", "neutral")]
    np.testing.assert_allclose(got, want, atol=1e-5)
    with pytest.raises(NoFaceError):  # a large picture without a face
        Recognizer.load(face_model).predict(write_image(tmp_path / "wall.png", flat=True,
                                                        size=200))
    # a small picture is taken as a ready-made face crop (detect=auto), as FER2013 is
    small = write_image(tmp_path / "crop.png", flat=True)
    assert Recognizer.load(face_model).predict(small).faces[0].box == (0, 0, 64, 64)
    from emofuse.inference import PredictOptions

    with pytest.raises(NoFaceError):
        Recognizer.load(face_model, options=PredictOptions(detect="always")).predict(small)


def test_face_and_speech_on_the_example_video(face_model, speech_model):
    p = Recognizer.load(face_model, speech_model).predict(EXAMPLES / "video.mp4")
    assert set(p.modalities) == {"face", "speech"} and len(p.faces) >= 4
    assert p.weights == {"face": 0.5, "speech": 0.5}


def test_real_models_export_with_parity(face_model, speech_model, tmp_path):
    from emofuse.export import export_models

    for folder in (face_model, speech_model):
        (r,) = export_models(folder, tmp_path / folder.name)
        assert r.ok and r.max_abs_diff <= 1e-4


def test_text_adapter_matches_text_predictor(tmp_path):
    from emofuse.errors import ConfigError
    from emofuse.models import build_model
    from emofuse.train import save_model

    try:
        from emofuse.features.text import minilm_path

        minilm_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    from emofuse.inference.text import TextPredictor

    labels = ["sad", "happy", "love", "angry", "fear", "surprise"]
    torch.manual_seed(0)
    net = build_model("minilm_mlp", in_dim=384, n_classes=6)
    save_model(tmp_path / "text", net, {"task": "text", "labels": labels,
                                        "features": {"name": "minilm"},
                                        "model": {"name": "minilm_mlp",
                                                  "params": {"in_dim": 384, "n_classes": 6}},
                                        **BASE})
    rec = Recognizer.load(tmp_path / "text")
    p = rec.predict_text("What a wonderful surprise!")
    want = TextPredictor.load(tmp_path / "text").analyse(["What a wonderful surprise!"])[0]
    for label, v in want.scores.items():
        assert p.modalities["text"][label] == pytest.approx(v, abs=1e-4)
    assert "emoji only" in " ".join(rec.predict_text("😂😂").warnings)
