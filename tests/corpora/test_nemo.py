import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from emofuse import protocols
from emofuse.corpora import load_corpus
from emofuse.media.audio import load_audio

from ._audio_fixtures import anomalies_of, assert_bad_reported, kept_notes, tone, write_bad_set

_HEADER = "file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"


def opus(path: Path, sr: int = 16000) -> Path:
    """A 0.1 s Ogg Opus tone whose pitch depends on the path inside the corpus (folder and
    name, not the test's temporary folder, so that two files never get one pitch by chance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(sr // 10) / sr
    hz = 100 + zlib.crc32("/".join(path.parts[-2:]).encode()) % 2000
    y = 0.2 * np.sin(2 * np.pi * hz * t)
    sf.write(str(path), y.astype(np.float32), sr, format="OGG", subtype="OPUS")
    return path


def row(file_id: str, emotion: str, text: str, speaker: str, gender: str, age: int) -> str:
    # the real data.tsv pads speaker_id with eight spaces and names the .wav originals
    cells = (file_id, emotion, text, text.lower().rstrip("."), f"        {speaker}", gender, age)
    return "\t".join(map(str, cells)) + "\n"


def test_layout_metadata_and_summary(tmp_path):
    samples = tmp_path / "samples"
    opus(samples / "EB0_anger_1.opus")
    opus(samples / "EB0_surprised_90.opus")
    tone(samples / "KS0_happiness_12.wav", sr=24000)          # the original corpus ships WAV
    tone(samples / "KS0_sadness_3.wav", sr=24000)
    opus(samples / "MK0_neutral_7.opus")
    opus(samples / "WR0_fear_40.opus")
    (tmp_path / "data.tsv").write_text(
        _HEADER + row("EB0_anger_1.wav", "anger", "Lubię czytać przed snem.", "EB0", "female", 27)
        + row("EB0_surprised_90.wav", "surprised", "Ucho wykrywa dźwięki.", "EB0", "female", 27)
        + row("KS0_happiness_12.wav", "happiness", "Kupiłem nową szafę.", "KS0", "male", 23)
        + row("KS0_sadness_3.wav", "sadness", "Interesuje mnie historia.", "KS0", "male", 23)
        + row("MK0_neutral_7.wav", "neutral", "Zdanie \"w cudzysłowie\".", "MK0", "female", 23)
        + row("WR0_fear_40.wav", "fear", "Człowiek zaczyna.", "WR0", "male", 23),
        encoding="utf-8")

    scan = load_corpus("nemo", tmp_path)
    assert scan.anomalies == []
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"EB0_anger_1", "EB0_surprised_90", "KS0_happiness_12",
                          "KS0_sadness_3", "MK0_neutral_7", "WR0_fear_40"}
    r = by_id["EB0_anger_1"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("anger", "angry", "EB0", "female")
    assert r.extra["transcript"] == "Lubię czytać przed snem."
    assert r.extra["normalized_text"] == "lubię czytać przed snem"
    assert r.extra["age"] == 27 and r.extra["number"] == 1 and r.text is None
    assert by_id["MK0_neutral_7"].extra["transcript"] == "Zdanie \"w cudzysłowie\"."
    labels = {r.label_native: r.label for r in scan.records}
    assert labels == {"anger": "angry", "surprised": "surprise", "happiness": "happy",
                      "sadness": "sad", "neutral": "neutral", "fear": "fear"}
    s = scan.summary()
    assert s["items"] == 6 and s["speakers"] == 4 and s["modalities"] == {"audio": 6}
    assert s["per_speaker"] == {"EB0": 2, "KS0": 2, "MK0": 1, "WR0": 1}
    y, sr = load_audio(by_id["EB0_anger_1"].audio)
    assert sr == 16000 and len(y) > 0


def test_works_without_data_tsv(tmp_path):
    opus(tmp_path / "samples/IC0_fear_2.opus")
    opus(tmp_path / "samples/TP0_neutral_5.opus")
    scan = load_corpus("nemo", tmp_path)
    assert {(r.speaker, r.gender, r.label) for r in scan.records} == {
        ("IC0", "female", "fear"), ("TP0", "male", "neutral")}
    assert all("transcript" not in r.extra and "age" not in r.extra for r in scan.records)
    (note,) = scan.anomalies
    assert "data.tsv not found" in note.reason and not note.skipped


def test_disagreements_and_duplicates(tmp_path):
    samples = tmp_path / "samples"
    relabelled = opus(samples / "SM0_fear_18.opus")
    unlisted = opus(samples / "SM0_fear_19.opus")
    stranger = opus(samples / "XY0_anger_1.opus")             # not one of the nine speakers
    upper = opus(samples / "SM0_Anger_2.opus")
    opus(samples / "TP0_surprised_75.opus")
    copy = tone(tmp_path / "wav/TP0_surprised_75.wav")       # the WAV original beside it
    (tmp_path / "data.tsv").write_text(
        _HEADER + row("SM0_fear_18.wav", "sadness", "Zdanie.", "SM0", "male", 24)
        + row("SM0_anger_2.wav", "anger", "Zdanie.", "SM0", "male", 24)
        + row("TP0_surprised_75.wav", "surprised", "Zdanie.", "TP0", "male", 26)
        + row("EB0_surprised_40.wav", "surprised", "Zdanie.", "EB0", "female", 27)
        + row("XY0_anger_1.wav", "anger", "Zdanie.", "XY0", "female", 30),
        encoding="utf-8")

    scan = load_corpus("nemo", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"SM0_fear_18", "SM0_fear_19", "XY0_anger_1", "SM0_anger_2",
                          "TP0_surprised_75"}
    assert by_id["SM0_fear_18"].label == "fear"                 # the file name wins
    assert "'sadness'" in anomalies_of(scan, relabelled)[0].reason
    assert by_id["SM0_anger_2"].label_native == "anger"
    assert by_id["SM0_anger_2"].extra["transcript"] == "Zdanie."
    assert "'Anger'" in anomalies_of(scan, upper)[0].reason
    assert "not one of nEMO's nine" in anomalies_of(scan, stranger)[0].reason
    assert by_id["XY0_anger_1"].gender == "female" and by_id["XY0_anger_1"].extra["age"] == 30
    assert by_id["SM0_fear_19"].gender == "male" and "transcript" not in by_id["SM0_fear_19"].extra
    assert not anomalies_of(scan, unlisted)
    (dup,) = anomalies_of(scan, copy)
    assert dup.skipped and "duplicate" in dup.reason
    table = [a.reason for a in anomalies_of(scan, tmp_path / "data.tsv")]
    assert sorted(table) == ["1 audio files have no row in data.tsv (no transcript)",
                             "1 rows of data.tsv have no audio file (e.g. EB0_surprised_40)"]
    assert all(not a.skipped for a in kept_notes(scan))


@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary", "id\tlabel\nx\ty\n".encode()])
def test_unreadable_data_tsv_is_reported(tmp_path, content):
    opus(tmp_path / "samples/KD0_sadness_9.opus")
    (tmp_path / "data.tsv").write_bytes(content)
    scan = load_corpus("nemo", tmp_path)
    assert len(scan) == 1 and scan.records[0].gender == "female"
    (note,) = scan.anomalies
    assert note.reason.startswith("cannot read data.tsv") and not note.skipped


def test_bad_files_become_anomalies(tmp_path):
    samples = tmp_path / "samples"
    good = [opus(samples / "EB0_anger_1.opus"), tone(samples / "KD0_fear_3.wav")]
    bad = write_bad_set(truncated=samples / "EB0_anger_2.flac", zero=samples / "EB0_anger_3.opus",
                        text=samples / "KD0_fear_4.wav", unparseable=samples / "KD0_joy_1.wav")
    scan = load_corpus("nemo", tmp_path)
    assert_bad_reported(scan, bad)
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    reasons = {p.name: anomalies_of(scan, p)[0].reason for p in bad}
    assert "truncated" in reasons["EB0_anger_2.flac"]
    assert "empty" in reasons["EB0_anger_3.opus"]
    assert "text" in reasons["KD0_fear_4.wav"]
    assert "name" in reasons["KD0_joy_1.wav"]


@pytest.mark.shared_data
def test_real_nemo(shared_data):
    root = shared_data / "nemo"
    if not root.is_dir():
        pytest.skip(f"nEMO not found at {root}")
    scan = load_corpus("nemo", root, check_media=False)
    s = scan.summary()
    assert s["items"] == 4481 and s["speakers"] == 9
    assert s["per_speaker"] == {"EB0": 539, "IC0": 540, "KD0": 540, "KS0": 540, "MK0": 450,
                                "MP0": 256, "SM0": 538, "TP0": 539, "WR0": 539}
    assert s["classes"] == {"anger": 749, "fear": 736, "happiness": 749, "neutral": 809,
                            "sadness": 769, "surprised": 669}
    assert scan.anomalies == []
    assert all(r.extra.get("transcript") and r.gender for r in scan.records)
    genders = {r.speaker: r.gender for r in scan.records}
    assert sorted(genders.values()).count("female") == 4
    for split in protocols.leave_one_speaker_out(scan.records) + \
            protocols.speaker_kfold(scan.records, k=3):
        protocols.check_leakage(split, scan.records)
        train = {r.speaker for r in split.select(scan.records, "train")}
        assert train.isdisjoint(r.speaker for r in split.select(scan.records, "test"))
    for rec in scan.records[::1500]:                      # decode a few
        y, sr = load_audio(rec.audio)
        assert sr == 16000 and len(y) > 16000
