"""The speech predictor: model folders of every kind, windows for long audio, and bad input
(silence, 0.1 s, a 10-minute recording, clipping, 8 kHz, stereo, a corrupt file in a batch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emofuse.errors import DataError, MediaError
from emofuse.models import build_model
from emofuse.inference.speech import SpeechPredictor
from emofuse.inference.speech_models import Member, load_member, save_member, window_bounds

torch.set_num_threads(1)
SR = 16000
LABELS = ["neutral", "happy", "sad", "angry"]
CARD = {"data": {"corpus": "synthetic"}, "protocol": {"kind": "none"}, "metrics": {}}


def voice(seconds: float, *, f0: float = 180.0, amp: float = 0.3, sr: int = SR) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    y = amp * env * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
    return y.astype(np.float32)


@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = build_model("cnn2d", n_classes=len(LABELS), channels=[8, 16, 32]).eval()
    member = Member("waveform", LABELS, net, {"name": "cnn2d", "params": {"channels": [8, 16, 32]}})
    return save_member(tmp_path_factory.mktemp("m") / "cnn", member, {**CARD, "window_s": 4.0})


@pytest.fixture(scope="module")
def predictor(cnn_dir: Path) -> SpeechPredictor:
    return SpeechPredictor(cnn_dir)


def write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, y, sr)
    return path


def test_window_bounds() -> None:
    assert window_bounds(100, 200, 100) == [(0, 100)]
    assert window_bounds(450, 200, 100) == [(0, 200), (100, 300), (200, 400), (250, 450)]


def test_predict_path_and_array_agree(predictor: SpeechPredictor, tmp_path: Path) -> None:
    y = voice(2.0)
    res = predictor.analyse(write(tmp_path / "a.wav", y))
    assert res["label"] in LABELS and res["windows"] == 1 and "segments" not in res
    assert sum(res["probs"].values()) == pytest.approx(1.0, abs=1e-4)
    arr = predictor.analyse(y, sr=SR)
    assert arr["probs"] == pytest.approx(res["probs"], abs=1e-3)
    with pytest.raises(Exception, match="sr="):
        predictor.analyse(y)


def test_silence_is_a_clear_error(predictor: SpeechPredictor, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="silent"):
        predictor.analyse(write(tmp_path / "silence.wav", np.zeros(2 * SR, np.float32)))


def test_a_tenth_of_a_second_is_too_short(predictor: SpeechPredictor, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="too short"):
        predictor.analyse(write(tmp_path / "short.wav", voice(0.1)))


@pytest.mark.slow
def test_ten_minutes_are_scored_in_windows(predictor: SpeechPredictor, tmp_path: Path,
                                           monkeypatch) -> None:
    path = tmp_path / "long.flac"
    y = np.tile(voice(10.0), 60)
    y[SR * 30: SR * 40] = 0.0                              # a silent stretch
    sf.write(path, y, SR)
    seen = []
    original = predictor._score

    def spy(windows, stats, vectors=None, mode="enrol"):
        seen.append(max(len(w) for w in windows))
        return original(windows, stats, vectors, mode)

    monkeypatch.setattr(predictor, "_score", spy)
    res = predictor.analyse(path)
    assert res["duration_s"] == pytest.approx(600.0, abs=0.01)
    assert max(seen) <= 4 * SR                             # the model never sees more
    assert res["windows"] == len(res["segments"]) >= 290
    assert any("silent window" in w for w in res["warnings"])
    assert res["segments"][-1]["end"] == pytest.approx(600.0, abs=0.01)


def test_clipped_audio_is_scored_with_a_warning(predictor: SpeechPredictor, tmp_path: Path) -> None:
    y = np.clip(voice(2.0, amp=3.0), -1, 1)
    res = predictor.analyse(write(tmp_path / "clipped.wav", y))
    assert res["label"] in LABELS and any("clipped" in w for w in res["warnings"])


def test_8khz_and_stereo_are_converted(predictor: SpeechPredictor, tmp_path: Path) -> None:
    low = predictor.analyse(write(tmp_path / "low.wav", voice(2.0, sr=8000), 8000))
    assert any("8000 Hz" in w for w in low["warnings"]) and low["duration_s"] == pytest.approx(2.0)
    st = np.stack([voice(2.0), voice(2.0, f0=200)], axis=1)
    res = predictor.analyse(write(tmp_path / "stereo.wav", st))
    assert any("2 channels" in w for w in res["warnings"])


def test_a_corrupt_file_in_a_batch(predictor: SpeechPredictor, tmp_path: Path) -> None:
    good = write(tmp_path / "good.wav", voice(1.5))
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    text = tmp_path / "notes.wav"
    text.write_text("hello")
    out = predictor.analyse_many([good, bad, text, tmp_path / "missing.wav", good])
    assert [("error" in r) for r in out] == [False, True, True, True, False]
    assert "bad.wav" in out[1]["error"] and "text" in out[2]["error"]
    assert "does not exist" in out[3]["error"]


def test_vector_classical_and_ensemble_folders(tmp_path: Path) -> None:
    from emofuse.features.speech import feature_settings, fused
    from emofuse.models.checkpoint import save_model

    rng = np.random.default_rng(0)
    ys = [voice(1.0, f0=f, amp=a) for f, a in zip(rng.uniform(100, 300, 16),
                                                    rng.uniform(0.05, 0.5, 16))]
    x = np.stack([fused(y) for y in ys])
    labels = np.arange(16) % len(LABELS)
    feat = feature_settings("fused")
    clf = build_model("logreg", C=0.1).fit(x, labels)
    save_member(tmp_path / "ens" / "m0", Member("classical", LABELS, clf,
                                                {"name": "logreg", "params": {"C": 0.1}}, feat),
                CARD)
    net = build_model("fercnn", n_classes=4, dim=x.shape[1])
    net.set_scaler(x.mean(0), x.std(0))
    save_member(tmp_path / "ens" / "m1", Member("vector", LABELS, net.eval(),
                                                {"name": "fercnn", "params": {"dim": x.shape[1]}},
                                                feat), CARD)
    save_model(tmp_path / "ens", {"weights": torch.tensor([0.5, 0.5])},
               {**CARD, "task": "speech", "kind": "ensemble", "labels": LABELS,
                "features": {}, "members": [{"dir": "m0", "weight": 0.7},
                                            {"dir": "m1", "weight": 0.3}]})
    pred = SpeechPredictor(tmp_path / "ens")
    assert len(pred.members) == 2 and pred.weights.tolist() == pytest.approx([0.7, 0.3])
    p_clf = clf.predict_proba(x[:1])[0]
    one = load_member(tmp_path / "ens" / "m0")[0][0].proba([ys[0]])[0]
    assert one == pytest.approx(p_clf, abs=1e-5)
    assert pred.analyse(ys[0], sr=SR)["label"] in LABELS


def test_speaker_normalised_model_uses_enrolment(tmp_path: Path) -> None:
    net = build_model("cnn2d", n_classes=4, channels=[8, 16], norm="speaker").eval()
    folder = save_member(tmp_path / "spk", Member("waveform", LABELS, net,
                                                  {"name": "cnn2d", "params": {
                                                      "channels": [8, 16], "norm": "speaker"}},
                                                  setting="spknorm"), CARD)
    pred = SpeechPredictor(folder)
    plain = pred.analyse(voice(1.0), sr=SR)
    assert any("speaker statistics" in w for w in plain["warnings"])
    stats = pred.speaker_stats([voice(1.0, f0=f) for f in (120, 150, 200)], sr=SR)
    enrolled = pred.analyse(voice(1.0), sr=SR, speaker=stats)
    assert stats.utterances == 3 and not enrolled["warnings"]
    assert enrolled["probs"] != pytest.approx(plain["probs"], abs=1e-6)


def test_damaged_or_foreign_folders(tmp_path: Path, cnn_dir: Path) -> None:
    import shutil

    with pytest.raises(DataError, match="not found"):
        SpeechPredictor(tmp_path / "nothing")
    bad = tmp_path / "copy"
    shutil.copytree(cnn_dir, bad)
    (bad / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(DataError, match="checksum"):
        SpeechPredictor(bad)
    from emofuse.models.checkpoint import save_model

    save_model(tmp_path / "text", {"w": torch.zeros(2)},
               {**CARD, "task": "text", "labels": LABELS, "features": {}})
    with pytest.raises(DataError, match="not a speech model"):
        SpeechPredictor(tmp_path / "text")
