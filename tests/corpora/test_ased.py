import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse import protocols
from emofuse.corpora import load_corpus
from emofuse.corpora.ased import audio_fingerprint
from emofuse.media.audio import load_audio

from ._audio_fixtures import anomalies_of, assert_bad_reported, kept_notes, tone, write_bad_set


def opus(path: Path, *, samples: np.ndarray | None = None, sr: int = 16000) -> Path:
    """A 0.1 s Ogg Opus tone whose pitch depends on the path inside the corpus (folder and
    name, not the test's temporary folder, so that two files never get one pitch by chance), or
    the given samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples is None:
        t = np.arange(sr // 10) / sr
        hz = 100 + zlib.crc32("/".join(path.parts[-2:]).encode()) % 2000
        samples = 0.2 * np.sin(2 * np.pi * hz * t)
    sf.write(str(path), samples.astype(np.float32), sr, format="OGG", subtype="OPUS")
    return path


def test_layout_labels_and_summary(tmp_path):
    opus(tmp_path / "01Neutral/n1-01-01-01-01.opus")
    opus(tmp_path / "02Fearful/f2-02-02-01-01.opus")
    tone(tmp_path / "03Happy/h3-07-01-02-12.wav")           # the original corpus ships WAV
    tone(tmp_path / "04Sad/s4-01-01-02-12.flac", sr=44100)
    opus(tmp_path / "04Sad/S4-04-02-01-29.opus")            # the real capital S
    tone(tmp_path / "05Angry/a5-03-02-01-65.WAV")

    scan = load_corpus("ased", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"n1-01-01-01-01", "f2-02-02-01-01", "h3-07-01-02-12",
                          "s4-01-01-02-12", "S4-04-02-01-29", "a5-03-02-01-65"}
    r = by_id["h3-07-01-02-12"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("happy", "happy", "12", "male")
    assert r.extra["sentence"] == 7 and r.extra["repetition"] == 1
    assert by_id["f2-02-02-01-01"].label == "fear"
    assert by_id["S4-04-02-01-29"].label == "sad" and by_id["S4-04-02-01-29"].speaker == "29"
    assert by_id["a5-03-02-01-65"].label == "angry"
    assert by_id["n1-01-01-01-01"].gender == "female"
    assert all(len(r.extra["content_hash"]) == 32 for r in scan.records)
    (note,) = scan.anomalies                                  # only the capital letter
    assert not note.skipped and "'S'" in note.reason
    s = scan.summary()
    assert s["items"] == 6 and s["speakers"] == 4 and s["modalities"] == {"audio": 6}
    assert s["classes"] == {"angry": 1, "fearful": 1, "happy": 1, "neutral": 1, "sad": 2}
    y, sr = load_audio(by_id["S4-04-02-01-29"].audio)
    assert sr == 16000 and len(y) > 0


def test_quirks_are_reported_and_kept(tmp_path):
    for i, sent in enumerate(("01", "02", "03")):
        opus(tmp_path / f"01Neutral/n1-{sent}-01-01-09.opus")     # speaker 09: female x3
    odd_gender = opus(tmp_path / "04Sad/s4-01-02-02-09.opus")    # ... and once "male"
    in_wrong_folder = opus(tmp_path / "02Fearful/h3-01-01-02-20.opus")
    wrong_number = opus(tmp_path / "05Angry/a2-01-01-02-20.opus")
    y = np.random.default_rng(1).uniform(-0.3, 0.3, 1600)
    first = opus(tmp_path / "03Happy/h3-01-01-02-08.opus", samples=y)
    again = opus(tmp_path / "03Happy/h3-01-02-02-08.opus", samples=y)   # stored twice
    spaced = opus(tmp_path / "03Happy/h3-02-01-02-08 .opus")

    scan = load_corpus("ased", tmp_path)
    assert len(scan) == 9 and all(not a.skipped for a in scan.anomalies)
    by_id = {r.id: r for r in scan.records}
    assert {r.gender for r in scan.records if r.speaker == "09"} == {"female"}
    assert "contradicts speaker 09" in anomalies_of(scan, odd_gender)[0].reason
    assert by_id["h3-01-01-02-20"].label == "happy"          # the letter wins over the folder
    assert "02Fearful" in anomalies_of(scan, in_wrong_folder)[0].reason
    assert "number 2" in anomalies_of(scan, wrong_number)[0].reason
    assert by_id["a2-01-01-02-20"].label == "angry"
    (dup,) = anomalies_of(scan, again)
    assert str(first) in dup.reason and not anomalies_of(scan, first)
    assert by_id["h3-01-01-02-08"].extra["content_hash"] == \
        by_id["h3-01-02-02-08"].extra["content_hash"]
    assert "white space" in anomalies_of(scan, spaced)[0].reason and "h3-02-01-02-08" in by_id
    assert len(kept_notes(scan)) == 5


def test_gender_tie_leaves_the_speaker_unknown(tmp_path):
    she = opus(tmp_path / "01Neutral/n1-01-01-01-30.opus")
    he = opus(tmp_path / "05Angry/a5-01-01-02-30.opus")
    scan = load_corpus("ased", tmp_path)
    assert [r.gender for r in scan.records] == [None, None]
    assert all("evenly" in anomalies_of(scan, p)[0].reason for p in (she, he))


def test_opus_fingerprint_ignores_the_ogg_serial(tmp_path):
    y = np.random.default_rng(2).uniform(-0.3, 0.3, 3200)
    a, b = opus(tmp_path / "a.opus", samples=y), opus(tmp_path / "b.opus", samples=y)
    c = opus(tmp_path / "c.opus", samples=y * 0.5)
    assert audio_fingerprint(a) == audio_fingerprint(b) != audio_fingerprint(c)
    broken = tmp_path / "broken.opus"
    broken.write_bytes(a.read_bytes()[:50])                  # a page cut short: plain hash
    assert audio_fingerprint(broken) is not None
    assert audio_fingerprint(tmp_path / "missing.opus") is None


def test_bad_files_become_anomalies(tmp_path):
    good = [opus(tmp_path / "01Neutral/n1-01-01-01-01.opus"),
            tone(tmp_path / "05Angry/a5-01-01-02-02.wav")]
    bad = write_bad_set(truncated=tmp_path / "01Neutral/n1-01-02-01-01.flac",
                        zero=tmp_path / "01Neutral/n1-02-01-01-01.opus",
                        text=tmp_path / "05Angry/a5-01-02-02-02.wav",
                        unparseable=tmp_path / "05Angry/angry_01.wav")
    letter = tone(tmp_path / "05Angry/x5-01-01-02-02.wav")    # no such emotion letter
    scan = load_corpus("ased", tmp_path)
    assert_bad_reported(scan, bad + [letter])
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    reasons = {p.name: anomalies_of(scan, p)[0].reason for p in bad + [letter]}
    assert "truncated" in reasons["n1-01-02-01-01.flac"]
    assert "empty" in reasons["n1-02-01-01-01.opus"]
    assert "text" in reasons["a5-01-02-02-02.wav"]
    assert "name" in reasons["angry_01.wav"]
    assert "'x'" in reasons["x5-01-01-02-02.wav"]


@pytest.mark.shared_data
def test_real_ased(shared_data):
    root = shared_data / "ased"
    if not root.is_dir():
        pytest.skip(f"ASED not found at {root}")
    scan = load_corpus("ased", root, check_media=False)
    s = scan.summary()
    assert s["items"] == 2474 and s["speakers"] == 65
    assert set(s["per_speaker"]) == {f"{i:02d}" for i in range(1, 66)}
    assert s["classes"] == {"angry": 486, "fearful": 510, "happy": 486, "neutral": 522,
                            "sad": 470}
    assert [a for a in scan.anomalies if a.skipped] == []
    reasons = [a.reason for a in scan.anomalies]
    assert sum("contradicts speaker" in r for r in reasons) == 5          # gender codes
    assert sum("same encoded audio" in r or "identical content" in r for r in reasons) == 4
    assert sum("upper-case" in r for r in reasons) == 1
    genders = {r.speaker: r.gender for r in scan.records}
    assert sorted(genders.values()).count("female") == 25
    assert len({r.speaker for r in scan.records if r.gender is None}) == 0
    for split in protocols.leave_one_speaker_out(scan.records)[:3] + \
            protocols.speaker_kfold(scan.records, k=5):
        protocols.check_leakage(split, scan.records)
        train = {r.speaker for r in split.select(scan.records, "train")}
        assert train.isdisjoint(r.speaker for r in split.select(scan.records, "test"))
    for rec in scan.records[::800]:                       # decode a few
        y, sr = load_audio(rec.audio)
        assert sr == 16000 and len(y) > 16000
