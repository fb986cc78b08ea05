from emofuse.corpora import load_corpus

from ._audio_fixtures import (anomalies_of, assert_bad_reported, kept_notes, tone,
                              write_bad_set)

NEST = "TESS Toronto emotional speech set data"


def test_kaggle_layout_with_real_quirks(tmp_path):
    base = tmp_path / NEST
    tone(base / "OAF_angry/OAF_back_angry.wav", sr=24414)
    tone(base / "OAF_angry/OAF_bar_angry.wav", sr=24414)
    tone(base / "YAF_pleasant_surprised/YAF_bar_ps.wav", sr=24414)
    tone(base / "YAF_pleasant_surprised/YAF_base_ps.wav", sr=24414)
    tone(base / "OAF_Pleasant_surprise/OAF_base_ps.wav", sr=24414)
    tone(base / "YAF_neutral/YAF_bath_neutral.wav", sr=24414)
    short = tone(base / "OAF_neutral/OA_bite_neutral.wav", sr=24414)   # prefix lacks a letter
    tone(base / "OAF_Fear/OAF_bean_fear.WAV", sr=24414)                # case differs
    tone(base / "YAF_disgust/YAF_bone_disgust.wav", sr=24414)
    tone(base / "YAF_happy/YAF_cab_happy.flac", sr=24414)
    tone(base / "OAF_Sad/OAF_chair_sad.wav", sr=24414)

    scan = load_corpus("tess", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 11
    r = by_id["YAF_bar_ps"]
    assert (r.label_native, r.label, r.speaker, r.gender) == ("ps", "surprise", "YAF", "female")
    assert r.extra["word"] == "bar" and r.extra["statement"] == "Say the word bar"
    assert r.extra["age"] == 26 and by_id["OAF_back_angry"].extra["age"] == 64
    assert by_id["OA_bite_neutral"].speaker == "OAF"
    assert by_id["OAF_bean_fear"].label == "fear"
    assert by_id["OAF_base_ps"].label == "surprise"
    assert all(not a.skipped for a in scan.anomalies)
    assert "OA" in anomalies_of(scan, short)[0].reason
    spelled = {a.path.rsplit("/", 1)[-1] for a in kept_notes(scan) if "spelled" in a.reason}
    # reported once per folder, not once per file
    assert spelled == {"YAF_pleasant_surprised", "OAF_Pleasant_surprise", "OAF_Fear", "OAF_Sad"}
    assert len(kept_notes(scan)) == 5
    s = scan.summary()
    assert s["items"] == 11 and s["speakers"] == 2
    assert s["classes"] == {"angry": 2, "disgust": 1, "fear": 1, "happy": 1, "neutral": 2,
                            "ps": 3, "sad": 1}
    assert s["per_speaker"] == {"OAF": 6, "YAF": 5}


def test_file_name_contradicting_folder_and_media_quirks(tmp_path):
    for w in ("back", "bar", "base", "bath"):
        tone(tmp_path / f"OAF_angry/OAF_{w}_angry.wav", sr=24414)
    odd = tone(tmp_path / "OAF_angry/OAF_dog_sad.wav", sr=24414)
    wrong_spk = tone(tmp_path / "OAF_angry/YAF_dog_angry.wav", sr=24414)
    aiff = tone(tmp_path / "YAF_sad/YAF_dog_sad.wav", sr=24414, fmt="AIFF")
    stereo = tone(tmp_path / "YAF_sad/YAF_bar_sad.wav", sr=24414, channels=2)
    fast = tone(tmp_path / "YAF_sad/YAF_back_sad.wav", sr=96000)

    scan = load_corpus("tess", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 9 and all(not a.skipped for a in scan.anomalies)
    assert by_id["OAF_dog_sad"].label_native == "sad"                  # the file name wins
    assert "folder" in anomalies_of(scan, odd)[0].reason
    assert by_id["YAF_dog_angry"].speaker == "YAF"
    assert "OAF_angry" in anomalies_of(scan, wrong_spk)[0].reason
    assert "AIFF" in anomalies_of(scan, aiff)[0].reason
    assert "channels" in anomalies_of(scan, stereo)[0].reason
    assert "96000" in anomalies_of(scan, fast)[0].reason


def test_nested_second_copy_is_reported_as_duplicate(tmp_path):
    first = tone(tmp_path / NEST / "OAF_angry/OAF_back_angry.wav")
    copy = tmp_path / NEST / NEST / "OAF_angry/OAF_back_angry.wav"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(first.read_bytes())

    scan = load_corpus("tess", tmp_path)
    assert len(scan) == 1
    (dup,) = scan.anomalies
    assert dup.skipped and "duplicate" in dup.reason


def test_bad_files_become_anomalies(tmp_path):
    good = [tone(tmp_path / "OAF_angry/OAF_back_angry.wav"),
            tone(tmp_path / "YAF_sad/YAF_bar_sad.wav")]
    bad = write_bad_set(truncated=tmp_path / "OAF_angry/OAF_bar_angry.flac",
                        zero=tmp_path / "OAF_angry/OAF_base_angry.wav",
                        text=tmp_path / "YAF_sad/YAF_base_sad.wav",
                        unparseable=tmp_path / "YAF_sad/recording7.wav")
    nowhere = tone(tmp_path / "misc/XY_word_angry.wav")    # unknown speaker, no speaker folder
    unknown = tone(tmp_path / "misc/OAF_word_grumpy.wav")  # unknown emotion, no folder to ask

    scan = load_corpus("tess", tmp_path)
    assert_bad_reported(scan, bad + [nowhere, unknown])
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    assert "name" in anomalies_of(scan, bad[3])[0].reason
    assert "speaker" in anomalies_of(scan, nowhere)[0].reason
    assert "emotion" in anomalies_of(scan, unknown)[0].reason
    s = scan.summary()
    assert (s["items"], s["speakers"], s["classes"]) == (2, 2, {"angry": 1, "sad": 1})
