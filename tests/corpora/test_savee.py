import csv

import pytest

from emofuse.corpora import load_corpus
from emofuse.paths import protocols_root

from ._audio_fixtures import (anomalies_of, assert_bad_reported, kept_notes, tone,
                              write_bad_set)


def test_kaggle_layout_labels_and_summary(tmp_path):
    all_ = tmp_path / "ALL"
    tone(all_ / "DC_a01.wav", sr=44100)
    tone(all_ / "DC_sa03.wav", sr=44100)
    tone(all_ / "JK_su15.WAV", sr=44100)            # upper-case extension
    tone(all_ / "JK_n30.flac", sr=44100)
    tone(all_ / "KL_h02.mp3", sr=44100)
    tone(all_ / "JE_d01.ogg", sr=44100)
    tone(all_ / "JE_f07.wav", sr=44100)

    scan = load_corpus("savee", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"DC_a01", "DC_sa03", "JK_su15", "JK_n30", "KL_h02", "JE_d01", "JE_f07"}
    r = by_id["DC_sa03"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("sa", "sad", "DC", "male")
    assert r.extra["sentence"] == 3 and r.audio.endswith("DC_sa03.wav")
    assert by_id["JK_su15"].label == "surprise"
    assert by_id["KL_h02"].label == "happy" and by_id["JE_f07"].label == "fear"
    assert scan.anomalies == []
    s = scan.summary()
    assert s["items"] == 7 and s["speakers"] == 4
    assert s["classes"] == {"a": 1, "d": 1, "f": 1, "h": 1, "n": 1, "sa": 1, "su": 1}
    assert s["per_speaker"] == {"DC": 2, "JE": 2, "JK": 2, "KL": 1}
    assert "splits" not in s and s["modalities"] == {"audio": 7}


def test_original_layout_speaker_from_folder(tmp_path):
    data = tmp_path / "AudioData"
    tone(data / "DC/a01.wav")
    tone(data / "DC/n30.wav")
    tone(data / "KL/su05.wav")
    tone(data / "JE/JK_f01.wav")                     # prefix contradicts the folder

    scan = load_corpus("savee", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"DC_a01", "DC_n30", "KL_su05", "JK_f01"}
    assert by_id["KL_su05"].speaker == "KL" and by_id["JK_f01"].speaker == "JK"
    (note,) = kept_notes(scan)
    assert "JK" in note.reason and "JE" in note.reason
    assert scan.summary()["speakers"] == 3


def test_quirks_are_reported_and_kept(tmp_path):
    all_ = tmp_path / "ALL"
    for name in ("DC_a01", "DC_a02", "DC_a03", "DC_a04"):
        tone(all_ / f"{name}.wav", sr=44100)
    aiff = tone(all_ / "DC_d01.wav", sr=44100, fmt="AIFF")
    stereo = tone(all_ / "DC_d02.wav", sr=44100, channels=2)
    fast = tone(all_ / "DC_d03.wav", sr=96000)
    late = tone(all_ / "DC_a16.wav", sr=44100)       # sentence number beyond 15

    scan = load_corpus("savee", tmp_path)
    assert len(scan) == 8
    assert all(not a.skipped for a in scan.anomalies)
    assert "AIFF" in anomalies_of(scan, aiff)[0].reason
    assert "channels" in anomalies_of(scan, stereo)[0].reason
    assert "96000" in anomalies_of(scan, fast)[0].reason
    assert "1..15" in anomalies_of(scan, late)[0].reason


def test_bad_files_become_anomalies(tmp_path):
    all_ = tmp_path / "ALL"
    good = [tone(all_ / "DC_a01.wav"), tone(all_ / "JE_h01.flac"), tone(all_ / "KL_n12.wav")]
    bad = write_bad_set(truncated=all_ / "DC_a02.flac", zero=all_ / "DC_a03.wav",
                        text=all_ / "JE_h02.wav", unparseable=all_ / "DC_happy_1.wav")
    stray = tone(tmp_path / "a01.wav")               # no speaker prefix, no speaker folder

    scan = load_corpus("savee", tmp_path)
    assert_bad_reported(scan, bad + [stray])
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    reasons = {p.name: anomalies_of(scan, p)[0].reason for p in bad}
    assert "truncated" in reasons["DC_a02.flac"]
    assert "empty" in reasons["DC_a03.wav"]
    assert "text" in reasons["JE_h02.wav"]
    assert "name" in reasons["DC_happy_1.wav"]
    assert "speaker" in anomalies_of(scan, stray)[0].reason
    assert scan.summary()["items"] == 3


@pytest.mark.shared_data
def test_real_savee(shared_data):
    root = shared_data / "savee"
    if not root.is_dir():
        pytest.skip(f"SAVEE not found at {root}")
    scan = load_corpus("savee", root)
    s = scan.summary()
    assert s["items"] == 480 and s["speakers"] == 4
    assert s["per_speaker"] == {"DC": 120, "JE": 120, "JK": 120, "KL": 120}
    assert s["classes"] == {"a": 60, "d": 60, "f": 60, "h": 60, "n": 120, "sa": 60, "su": 60}
    assert [a for a in scan.anomalies if a.skipped] == []
    folds = protocols_root() / "savee_emobox_folds.csv"
    if folds.is_file():  # record ids are the base names the EmoBox folds use
        with folds.open(newline="") as f:
            utterances = {row["utterance"] for row in csv.DictReader(f)}
        assert {r.id for r in scan.records} == utterances
