import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse import protocols
from emofuse.corpora import load_corpus
from emofuse.media.audio import load_audio

from ._audio_fixtures import anomalies_of, assert_bad_reported, tone, write_bad_set


def opus(path: Path, sr: int = 16000) -> Path:
    """A 0.1 s Ogg Opus tone whose pitch depends on the path inside the corpus (folder and
    name, not the test's temporary folder, so that two files never get one pitch by chance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(sr // 10) / sr
    hz = 100 + zlib.crc32("/".join(path.parts[-2:]).encode()) % 2000
    y = 0.2 * np.sin(2 * np.pi * hz * t)
    sf.write(str(path), y.astype(np.float32), sr, format="OGG", subtype="OPUS")
    return path


def test_layout_speakers_and_summary(tmp_path):
    opus(tmp_path / "Angry/SM1_F1_A01.opus")
    opus(tmp_path / "Angry/SM1_F10_A010.opus")               # numbers written 0 + n
    opus(tmp_path / "Angry/SM4_F48_A0100.opus")
    tone(tmp_path / "Happy/SF1_F1_H01.wav", sr=44100)          # the original ships WAV
    tone(tmp_path / "Happy/SF1_F2_H02.wav", sr=44100)
    opus(tmp_path / "Neutral/SM20_F1_N05.opus")
    opus(tmp_path / "Sad/SF10_F1_S01.opus")
    opus(tmp_path / "Sad/SM1_F1_S02.opus")                   # F1 again: restarts per emotion

    scan = load_corpus("urdu", tmp_path)
    assert scan.anomalies == []
    by_id = {r.id: r for r in scan.records}
    assert len(by_id) == 8
    r = by_id["SM1_F10_A010"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("Angry", "angry", "SM1", "male")
    assert (r.extra["speaker_file"], r.extra["emotion_file"]) == (10, 10)
    assert by_id["SM4_F48_A0100"].extra["emotion_file"] == 100
    assert by_id["SF1_F1_H01"].speaker == "SF1" and by_id["SF1_F1_H01"].gender == "female"
    assert by_id["SF1_F1_H01"].label == "happy" and by_id["SM20_F1_N05"].label == "neutral"
    assert by_id["SM1_F1_S02"].label == "sad"
    s = scan.summary()
    assert s["items"] == 8 and s["modalities"] == {"audio": 8}
    assert s["classes"] == {"Angry": 3, "Happy": 2, "Neutral": 1, "Sad": 2}
    assert s["per_speaker"] == {"SF1": 2, "SF10": 1, "SM1": 3, "SM20": 1, "SM4": 1}
    # SM1 and SF1 are two people: leave-one-speaker-out keeps them apart
    folds = {f.name.rsplit("/", 1)[-1]: f for f in protocols.leave_one_speaker_out(scan.records)}
    assert set(folds) == {"SF1", "SF10", "SM1", "SM20", "SM4"}
    assert sorted(folds["SM1"].test) == ["SM1_F10_A010", "SM1_F1_A01", "SM1_F1_S02"]
    assert "SF1_F1_H01" in folds["SM1"].train
    y, sr = load_audio(by_id["SM1_F1_A01"].audio)
    assert sr == 16000 and len(y) > 0


def test_quirks_are_reported_and_kept(tmp_path):
    wrong_folder = opus(tmp_path / "Happy/SM2_F3_N07.opus")     # letter N in Happy/
    lower = opus(tmp_path / "Angry/sm2_f1_a03.opus")
    spaced = opus(tmp_path / "Sad/SM2_F2_S04 .opus")
    loose = opus(tmp_path / "SF3_F1_H09.opus")                  # outside any emotion folder
    opus(tmp_path / "sad/SF3_F2_S10.opus")                      # folder in lower case

    scan = load_corpus("urdu", tmp_path)
    assert len(scan) == 5 and all(not a.skipped for a in scan.anomalies)
    by_id = {r.id: r for r in scan.records}
    assert by_id["SM2_F3_N07"].label_native == "Neutral"      # the letter wins
    assert "contradicts folder Happy" in anomalies_of(scan, wrong_folder)[0].reason
    assert by_id["SM2_F1_A03"].speaker == "SM2" and by_id["SM2_F1_A03"].label == "angry"
    assert "lower-case" in anomalies_of(scan, lower)[0].reason
    assert "SM2_F2_S04" in by_id and "white space" in anomalies_of(scan, spaced)[0].reason
    assert by_id["SF3_F1_H09"].label == "happy" and not anomalies_of(scan, loose)
    assert by_id["SF3_F2_S10"].label == "sad"
    assert len(scan.anomalies) == 3


def test_bad_files_become_anomalies(tmp_path):
    good = [opus(tmp_path / "Angry/SM1_F1_A01.opus"), tone(tmp_path / "Sad/SF1_F1_S01.wav")]
    bad = write_bad_set(truncated=tmp_path / "Angry/SM1_F2_A02.flac",
                        zero=tmp_path / "Angry/SM1_F3_A03.opus",
                        text=tmp_path / "Sad/SF1_F2_S02.wav",
                        unparseable=tmp_path / "Sad/sad_speaker_1.wav")
    letter = tone(tmp_path / "Sad/SF1_F3_X03.wav")             # no such emotion letter
    other = tone(tmp_path / "Sad/SX1_F3_S03.wav")              # neither M nor F
    scan = load_corpus("urdu", tmp_path)
    assert_bad_reported(scan, bad + [letter, other])
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    reasons = {p.name: anomalies_of(scan, p)[0].reason for p in bad + [letter, other]}
    assert "truncated" in reasons["SM1_F2_A02.flac"]
    assert "empty" in reasons["SM1_F3_A03.opus"]
    assert "text" in reasons["SF1_F2_S02.wav"]
    assert "name" in reasons["sad_speaker_1.wav"] and "name" in reasons["SX1_F3_S03.wav"]
    assert "'X'" in reasons["SF1_F3_X03.wav"]


@pytest.mark.shared_data
def test_real_urdu(shared_data):
    root = shared_data / "urdu"
    if not root.is_dir():
        pytest.skip(f"URDU not found at {root}")
    scan = load_corpus("urdu", root, check_media=False)
    s = scan.summary()
    assert s["items"] == 400 and s["speakers"] == 29
    assert s["classes"] == {"Angry": 100, "Happy": 100, "Neutral": 100, "Sad": 100}
    assert scan.anomalies == []
    speakers = set(s["per_speaker"])
    assert {"SM1", "SF1"} <= speakers
    assert sum(sp.startswith("SF") for sp in speakers) == 11
    assert s["per_speaker"]["SM5"] == 80 and s["per_speaker"]["SF1"] == 12
    for split in protocols.leave_one_speaker_out(scan.records) + \
            protocols.speaker_kfold(scan.records, k=5):
        protocols.check_leakage(split, scan.records)
        train = {r.speaker for r in split.select(scan.records, "train")}
        assert train.isdisjoint(r.speaker for r in split.select(scan.records, "test"))
    for rec in scan.records[::150]:                       # decode a few
        y, sr = load_audio(rec.audio)
        assert sr == 16000 and len(y) > 8000
