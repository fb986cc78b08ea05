"""Recognizer, content sniffing, model resolution, fusion and timelines, on tiny models."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from emofuse.errors import DataError, MediaError
from emofuse.inference import (ModelUnavailableError, NoFaceError, Prediction, PredictionFailure,
                               PredictOptions, Recognizer, UnsupportedMediaError, detect_kind,
                               late_fusion, model_path, resolve_models)
from emofuse.inference.timeline import fixed_windows, plot_timeline, speech_segments, vad_available

from ._tiny_models import (FACE_LABELS, SPEECH_LABELS, make_bundle, tiny_audio, write_image,
                           write_video, write_wav)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def rec(bundle) -> Recognizer:
    return Recognizer.load(str(bundle))


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("media")
    write_wav(d / "tone.wav", 1.5)
    write_image(d / "face.png")
    write_image(d / "flat.png", flat=True)
    write_video(d / "clip.mp4")
    write_video(d / "silent.mp4", audio=False)
    write_video(d / "flat_silent.mp4", audio=False, flat=True)
    write_wav(d / "audio_named.jpg", 1.0)
    write_image(d / "image_named.wav", fmt="PNG")
    (d / "text_named.mp4").write_text("<html>404 not found</html>\n")
    (d / "note.txt").write_text("I am so happy today!\n")
    (d / "garbage.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 5000,
                                                                     dtype=np.uint8).tobytes())
    (d / "empty.wav").write_bytes(b"")
    return d


# -- content sniffing -------------------------------------------------------------------------


@pytest.mark.parametrize("name, kind", [("tone.wav", "audio"), ("face.png", "image"),
                                        ("clip.mp4", "video"), ("silent.mp4", "video"),
                                        ("note.txt", "text")])
def test_detect_kind_by_content(media, name, kind):
    assert detect_kind(media / name) == (kind, [])


def test_detect_kind_lying_extension_warns_and_reads_content(media):
    kind, notes = detect_kind(media / "audio_named.jpg")
    assert kind == "audio" and "content is audio" in notes[0]
    kind, notes = detect_kind(media / "image_named.wav")
    assert kind == "image" and ".wav suggests audio" in notes[0]


def test_detect_kind_refuses_text_behind_media_name_garbage_and_empty(media):
    with pytest.raises(UnsupportedMediaError, match="the name says video"):
        detect_kind(media / "text_named.mp4")
    with pytest.raises(UnsupportedMediaError, match="unsupported file type"):
        detect_kind(media / "garbage.bin")
    with pytest.raises(MediaError, match="empty"):
        detect_kind(media / "empty.wav")
    with pytest.raises(MediaError, match="does not exist"):
        detect_kind(media / "nothing.wav")
    with pytest.raises(MediaError, match="is a folder, not a file"):
        detect_kind(media)


# -- model resolution -------------------------------------------------------------------------


def test_bundled_names_resolve_through_env(bundle, monkeypatch):
    monkeypatch.setenv("EMOFUSE_MODELS", str(bundle))
    infos = resolve_models("default")
    assert [i.modality for i in infos] == ["speech", "face", "text", "fusion"]
    assert model_path("speech") == bundle / "speech"
    assert resolve_models("text")[0].card["labels"][0] == "sad"


def test_a_users_folder_named_like_a_model_does_not_shadow_it(bundle, tmp_path, monkeypatch):
    """``face/`` holding a user's images (no card.json) leaves ``face`` the bundled model; a
    folder of that name that holds a model is the user's model."""
    monkeypatch.setenv("EMOFUSE_MODELS", str(bundle))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "face").mkdir()
    (tmp_path / "face" / "me.jpg").write_bytes(b"not a model")
    (tmp_path / "default").mkdir()
    assert model_path("face") == bundle / "face"
    assert [i.modality for i in resolve_models("default")] == ["speech", "face", "text",
                                                               "fusion"]
    import shutil

    shutil.copytree(bundle / "text", tmp_path / "text")
    assert model_path("text") == Path("text")                   # the user's own model


def test_described_models_state_their_world():
    """``GET /models`` / ``--json`` facts of the shipped models: the corpora they were trained
    on, languages, licences and the cross-corpus figures their cards quote."""
    text = resolve_models("text")[0].describe()
    assert text["training_corpora"] == ["dair", "meld", "goemotions"]
    assert text["languages"] == ["en"]
    quoted = text["cross_corpus_results"]["xcorpus-text-model"]
    assert quoted["model"] == "text" and quoted["same_weights"] is True
    assert 0 < quoted["metrics"]["weighted_f1_meld"]["mean"] < 1
    face = resolve_models("face")[0].describe()["cross_corpus_results"]["xcorpus-face"]
    assert face["model"] == "face" and face["same_weights"] is True
    speech = resolve_models("speech")[0].describe()
    assert {"training_corpora", "languages", "licences", "cross_corpus"} <= set(speech)


def test_missing_bundled_model_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOFUSE_MODELS", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="no speech model available"):
        Recognizer.load("speech")
    with pytest.raises(ModelUnavailableError, match="make models"):
        Recognizer.load("default")
    with pytest.raises(DataError, match="model not found"):
        Recognizer.load(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    with pytest.raises(DataError, match="not a model folder"):
        Recognizer.load(tmp_path / "junk")


def test_recognizer_without_the_needed_modality(bundle, media):
    rec = Recognizer.load(bundle / "text")
    with pytest.raises(ModelUnavailableError, match="no speech model available"):
        rec.predict(media / "tone.wav")


def test_module_adapter_missing_module_is_a_clear_error(tmp_path, monkeypatch):
    from emofuse.train import save_model

    save_model(tmp_path / "fx", {"w": torch.ones(1)},
               {"task": "fusion", "labels": ["happy"], "features": {}, "data": {},
                "protocol": {}, "metrics": {}})
    monkeypatch.setitem(sys.modules, "emofuse.fusion", types.ModuleType("emofuse.fusion"))
    rec = Recognizer.load(tmp_path / "fx")
    with pytest.raises(ModelUnavailableError, match="no fusion model available"):
        rec.predictor("fusion")


# -- the predictor protocol and the model card ------------------------------------------------


def test_every_model_loads_as_a_predictor(bundle, media):
    from emofuse.inference import (FusionPredictor, ModalityOutput, ModelCard, Predictor,
                                   Waveform, load)

    face = np.full((32, 32, 3), 90, np.uint8) + np.arange(32, dtype=np.uint8)[:, None, None]
    inputs = {"speech": Waveform(np.zeros(16000, np.float32) + 0.1, 16000), "face": face,
              "text": "I am so happy today!"}
    for name, x in inputs.items():
        p = load(bundle / name)
        assert isinstance(p, Predictor) and p.modality == name
        assert isinstance(p.card, ModelCard) and p.card.labels == p.labels
        out = p.predict(x)
        assert isinstance(out, ModalityOutput) and out.probabilities.shape == (len(p.labels),)
    assert isinstance(load(bundle / "fusion"), FusionPredictor)


def test_the_card_is_typed_and_read_once(bundle, tmp_path, monkeypatch):
    import json
    import shutil

    import emofuse.models.checkpoint as ck
    from emofuse.inference import read_card

    card = read_card(bundle / "speech")
    assert card.task == "speech" and card.sr == 16000 and card["predictor"] == "torch-feature"
    assert {**card}["labels"] == SPEECH_LABELS and card.get("nope", 1) == 1
    reads = []
    real = ck._read_card
    monkeypatch.setattr(ck, "_read_card", lambda path: reads.append(path) or real(path))
    Recognizer.load(str(bundle)).warmup()
    assert len(reads) == len(set(reads)) == 4           # speech, face, text, fusion: once each
    bad = tmp_path / "bad"
    shutil.copytree(bundle / "speech", bad)
    data = json.loads((bad / "card.json").read_text())
    (bad / "card.json").write_text(json.dumps({**data, "sr": "fast"}))
    with pytest.raises(DataError, match=r"card.json: sr: "):
        read_card(bad)


# -- prediction -------------------------------------------------------------------------------


def _tiny_proba(rec: Recognizer, modality: str, feats: np.ndarray) -> np.ndarray:
    return rec.predictor(modality).proba(feats)


def test_audio_prediction_matches_the_model(rec, media):
    from emofuse.media import load_audio

    p = rec.predict(media / "tone.wav")
    assert isinstance(p, Prediction) and p.kind == "audio"
    y, sr = load_audio(media / "tone.wav")
    want = _tiny_proba(rec, "speech", tiny_audio(y, sr=sr))
    got = np.array([p.modalities["speech"][c] for c in SPEECH_LABELS])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert p.label == SPEECH_LABELS[int(want.argmax())]
    assert abs(sum(p.probabilities.values()) - 1) < 1e-5
    assert list(p.probabilities.values()) == sorted(p.probabilities.values(), reverse=True)
    assert p.weights == {"speech": 1.0} and p.duration_s == pytest.approx(1.5)


def test_image_and_array_inputs(rec, media):
    from emofuse.media import load_image

    p = rec.predict(media / "face.png")
    assert p.kind == "image" and len(p.faces) == 1 and p.faces[0].box == (0, 0, 64, 64)
    q = rec.predict(load_image(media / "face.png"))
    assert q.probabilities == p.probabilities and q.source == "<array>"
    y = np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    w = rec.predict(y, sr=16000)
    assert w.kind == "audio" and not w.reliable and "no speech detected" in w.warnings[0]  # a tone
    assert "assumed 16000 Hz" in rec.predict(y).warnings[0]


def test_text_string_and_text_file(rec, media):
    p = rec.predict("I am so happy!")
    assert p.kind == "text" and p.source == "<text>" and set(p.modalities) == {"text"}
    f = rec.predict(media / "note.txt")
    assert f.kind == "text" and f.source.endswith("note.txt")
    with pytest.raises(MediaError, match="empty text"):
        rec.predict_text("   ")
    with pytest.raises(MediaError, match="does not exist"):  # a mistyped path is not text
        rec.predict("missing_clip.wav")


def test_no_face_is_an_error_for_images(rec, media):
    with pytest.raises(NoFaceError, match="no face found in the image"):
        rec.predict(media / "flat.png")


def test_video_fuses_faces_and_speech_with_fusion_weights(rec, media):
    p = rec.predict(media / "clip.mp4")
    assert p.kind == "video" and set(p.modalities) == {"face", "speech"}
    assert p.weights == pytest.approx({"speech": 0.7, "face": 0.3})
    fused, _ = late_fusion(p.modalities, weights={"speech": 0.7, "face": 0.3})
    for k, v in fused.items():
        assert p.probabilities[k] == pytest.approx(v, abs=1e-5)
    assert p.faces and all(f.time is not None for f in p.faces)
    assert p.models == {"face": "face", "speech": "speech", "fusion": "fusion"}


def test_video_without_audio_or_faces(rec, media):
    p = rec.predict(media / "silent.mp4")
    assert set(p.modalities) == {"face"}
    assert any("no audio track" in w for w in p.warnings)
    with pytest.raises(NoFaceError, match="no face found in the video and it has no audio"):
        rec.predict(media / "flat_silent.mp4")


def test_equal_weights_without_fusion_model(tmp_path, media):
    b = make_bundle(tmp_path / "m", fusion=False)
    p = Recognizer.load(b).predict(media / "clip.mp4")
    assert p.weights == {"face": 0.5, "speech": 0.5}
    assert set(p.probabilities) == set(SPEECH_LABELS) | set(FACE_LABELS)


def test_batch_reports_each_failure_and_goes_on(rec, media):
    out = rec.predict_batch([media / "tone.wav", media / "garbage.bin", media / "flat.png",
                             media / "face.png"])
    assert [type(r).__name__ for r in out] == ["Prediction", "PredictionFailure",
                                              "PredictionFailure", "Prediction"]
    assert isinstance(out[1], PredictionFailure)
    assert out[1].error_type == "UnsupportedMediaError" and "garbage.bin" in out[1].error


def test_source_name_replaces_temporary_paths(rec, media):
    p = rec.predict(media / "audio_named.jpg", source="upload.jpg")
    assert p.source == "upload.jpg" and "upload.jpg" in p.warnings[0]
    with pytest.raises(UnsupportedMediaError, match="^page.mp4: "):
        rec.predict(media / "text_named.mp4", source="page.mp4")


def test_result_serialises(rec, media):
    p = rec.predict(media / "clip.mp4", timeline=True)
    again = Prediction.model_validate_json(p.model_dump_json())
    assert again == p
    assert p.top(2)[0][0] == p.label


# -- timeline ---------------------------------------------------------------------------------


def test_fixed_windows():
    assert fixed_windows(7.0, window=3.0) == [(0.0, 3.0), (3.0, 6.0), (6.0, 7.0)]
    assert fixed_windows(6.2, window=3.0) == [(0.0, 3.0), (3.0, 6.2)]
    assert fixed_windows(2.0, window=3.0) == [(0.0, 2.0)]
    assert fixed_windows(4.0, window=2.0, hop=1.0)[:2] == [(0.0, 2.0), (1.0, 3.0)]
    with pytest.raises(ValueError):
        fixed_windows(3.0, window=0)


@pytest.mark.skipif(not vad_available(), reason="silero-vad is not installed")
def test_vad_finds_the_speech_in_the_example_clip():
    from emofuse.media import load_audio

    y, sr = load_audio(EXAMPLES / "speech.flac")
    segs, notes = speech_segments(y, sr, method="vad")
    assert segs and not notes
    assert all(0 <= s < e <= len(y) / sr + 1e-3 for s, e in segs)
    # the padded clip: two stretches of speech separated by two seconds of silence
    gap = np.zeros(2 * sr, np.float32)
    segs2, _ = speech_segments(np.concatenate([y, gap, y]), sr, method="vad")
    assert len(segs2) >= 2 and segs2[-1][0] > len(y) / sr + 1.0


def test_audio_timeline_windows_and_plot(rec, tmp_path):
    path = write_wav(tmp_path / "long.wav", 7.0)
    opts = PredictOptions(timeline=True, segmentation="windows", window=3.0)
    p = Recognizer.load(rec.models["speech"].path, options=opts).predict(path)
    assert [(s.start, s.end) for s in p.timeline] == [(0.0, 3.0), (3.0, 6.0), (6.0, 7.0)]
    assert all(s.modality == "speech" for s in p.timeline)
    png = plot_timeline(p, tmp_path / "t.png")
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_long_audio_is_segmented_without_timeline(rec, tmp_path):
    path = write_wav(tmp_path / "long.wav", 9.0)
    opts = PredictOptions(segmentation="windows", long_audio_s=5.0)
    p = Recognizer.load(rec.models["speech"].path, options=opts).predict(path)
    assert not p.timeline and any("segments and averaged" in w for w in p.warnings)


def test_video_timeline_has_frames_and_speech(rec, media):
    p = rec.predict(media / "clip.mp4", timeline=True)
    face = [s for s in p.timeline if s.modality == "face"]
    assert len(face) >= 2 and [s.start for s in face] == sorted(s.start for s in face)
    assert any(s.modality == "speech" for s in p.timeline)


def test_timeline_keeps_the_clip_level_answer(rec, media):
    """``--timeline`` adds the timeline beside the answer; the answer itself is unchanged."""
    for name in ("clip.mp4", "tone.wav"):
        plain = rec.predict(media / name)
        timed = rec.predict(media / name, timeline=True)
        assert timed.probabilities == plain.probabilities and timed.label == plain.label
        assert timed.modalities == plain.modalities
    assert rec.predict(EXAMPLES / "speech.flac", timeline=True).timeline


def test_one_palette_for_plots_and_page():
    import re

    from emofuse.palette import COLORS, FALLBACK, color

    js = (Path(__file__).resolve().parents[1] / "src" / "emofuse" / "serve" / "static"
          / "app.js").read_text()
    table = dict(re.findall(r'(\w+): "(#[0-9a-f]{6})"', js.split("const COLORS")[1].split("};")[0]))
    assert table == COLORS
    fallback = re.findall(r'"(#[0-9a-f]{6})"', js.split("const PALETTE")[1].split("];")[0])
    assert tuple(fallback) == FALLBACK
    assert color("happy") == COLORS["happy"] and color("unknown", 1) == FALLBACK[1]
