import pytest

from emofuse.corpora import load_corpus
from emofuse.errors import ConfigError, DataError

from ._audio_fixtures import (anomalies_of, assert_bad_reported, image, kept_notes, tone, video,
                              write_bad_set)


# --------------------------------------------------------------------------- folder

def _folder_tree(root):
    tone(root / "happy/DC_clip1.wav")
    (root / "happy/DC_clip1.txt").write_text("What a lovely day!\n")    # joins clip1.wav
    tone(root / "Happiness/JK_take2.FLAC")
    image(root / "angry/JK_face3.png")
    image(root / "angry/DC_face4.JPG")
    video(root / "sad/DC_vid5.mp4")
    (root / "neutral").mkdir()
    (root / "neutral/note6.txt").write_text("The meeting is at noon.")
    tone(root / "Grumpy/DC_g7.wav")
    tone(root / "Grumpy/sub/DC_g8.ogg")                                  # deeper is fine


def test_folder_any_modality_and_labels(tmp_path):
    _folder_tree(tmp_path)
    scan = load_corpus("folder", tmp_path)
    by_id = {r.id: r for r in scan.records}
    assert set(by_id) == {"happy/DC_clip1", "Happiness/JK_take2", "angry/JK_face3",
                          "angry/DC_face4", "sad/DC_vid5", "neutral/note6", "Grumpy/DC_g7",
                          "Grumpy/sub/DC_g8"}
    clip = by_id["happy/DC_clip1"]
    assert clip.modalities() == ["audio", "text"] and clip.text == "What a lovely day!"
    assert (by_id["Happiness/JK_take2"].label_native, by_id["Happiness/JK_take2"].label) == \
        ("Happiness", "happy")
    assert by_id["angry/DC_face4"].image and by_id["sad/DC_vid5"].video
    assert by_id["neutral/note6"].text == "The meeting is at noon."
    assert {by_id[k].label for k in ("Grumpy/DC_g7", "Grumpy/sub/DC_g8")} == {"grumpy"}
    assert all(r.speaker is None for r in scan.records)       # speakers only on request
    (note,) = scan.anomalies                                   # unknown spelling, once
    assert not note.skipped and "Grumpy" in note.reason
    s = scan.summary()
    assert s["items"] == 8 and "speakers" not in s
    assert s["classes"] == {"Grumpy": 2, "Happiness": 1, "angry": 2, "happy": 1, "neutral": 1,
                            "sad": 1}
    assert s["modalities"] == {"audio": 4, "text": 2, "image": 2, "video": 1}


def test_folder_speakers_on_request(tmp_path):
    _folder_tree(tmp_path)
    scan = load_corpus("folder", tmp_path, speaker_regex="prefix")
    speakers = {r.id: r.speaker for r in scan.records}
    assert speakers["happy/DC_clip1"] == "DC" and speakers["angry/JK_face3"] == "JK"
    assert speakers["Grumpy/sub/DC_g8"] == "DC" and speakers["neutral/note6"] is None
    assert any("no speaker in 1 item" in a.reason for a in kept_notes(scan))
    assert scan.summary()["speakers"] == 2

    custom = load_corpus("folder", tmp_path, speaker_regex=r"_(?P<speaker>[a-z]+)\d")
    assert {r.speaker for r in custom.records} == {"clip", "take", "face", "vid", "g", None}


def test_folder_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="speaker_regex"):
        load_corpus("folder", tmp_path, speaker_regex="(unclosed")
    with pytest.raises(ConfigError, match="unknown option"):
        load_corpus("folder", tmp_path, speakers=True)


def test_folder_bad_files_become_anomalies(tmp_path):
    good = [tone(tmp_path / "happy/a.wav"), tone(tmp_path / "sad/b.flac")]
    bad = write_bad_set(truncated=tmp_path / "happy/c.flac", zero=tmp_path / "happy/d.wav",
                        text=tmp_path / "sad/e.wav", unparseable=tmp_path / "stray.wav")
    (tmp_path / "sad/empty.txt").write_text("  \n")
    (tmp_path / "angry").mkdir()
    (tmp_path / "angry/broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    bad += [tmp_path / "sad/empty.txt", tmp_path / "angry/broken.png"]

    scan = load_corpus("folder", tmp_path)
    assert_bad_reported(scan, bad)
    assert sorted(r.audio for r in scan.records) == sorted(map(str, good))
    assert "sub-folder" in anomalies_of(scan, tmp_path / "stray.wav")[0].reason
    assert "empty" in anomalies_of(scan, tmp_path / "sad/empty.txt")[0].reason
    s = scan.summary()
    assert (s["items"], s["classes"]) == (2, {"happy": 1, "sad": 1})


# --------------------------------------------------------------------------- manifest

def test_manifest_rows_modalities_and_summary(tmp_path):
    tone(tmp_path / "audio/u1.wav")
    tone(tmp_path / "audio/u2.flac")
    image(tmp_path / "faces/f1.jpg")
    outside = tone(tmp_path.parent / f"{tmp_path.name}_abs/u3.wav")
    video(tmp_path / "video/v1.mp4")
    (tmp_path / "manifest.csv").write_text(
        "path,text,label,speaker,split,gender,session\n"
        "audio/u1.wav,,happy,spk1,train,F,s1\n"
        "audio/u2.flac,I am so cross,ANGER,spk2,Train,male,s1\n"
        f"{outside},,sad,spk1,test,f,s2\n"
        "faces/f1.jpg,,surprised,spk3,val,,s2\n"
        "video/v1.mp4,,neutral,spk3,test,,\n"
        ",It was fine I guess,meh,spk4,train,m,s3\n"
        "\n")

    scan = load_corpus("manifest", tmp_path)          # a folder holding manifest.csv
    by_id = {r.id: r for r in scan.records}
    assert len(scan) == 6
    u1 = by_id["audio/u1"]
    assert (u1.label, u1.speaker, u1.split, u1.gender) == ("happy", "spk1", "train", "female")
    assert u1.extra == {"session": "s1"} and u1.audio == str(tmp_path / "audio/u1.wav")
    u2 = by_id["audio/u2"]
    assert u2.label_native == "ANGER" and u2.label == "angry" and u2.split == "train"
    assert u2.modalities() == ["audio", "text"] and u2.text == "I am so cross"
    assert by_id[str(outside.with_suffix(""))].audio == str(outside)
    assert by_id["faces/f1"].image and by_id["video/v1"].video
    meh = by_id["row7"]
    assert meh.text == "It was fine I guess" and meh.label == "meh"
    (note,) = scan.anomalies
    assert not note.skipped and "meh" in note.reason
    s = scan.summary()
    assert s["items"] == 6 and s["speakers"] == 4
    assert s["splits"] == {"train": 3, "test": 2, "val": 1}
    assert s["classes"] == {"ANGER": 1, "happy": 1, "meh": 1, "neutral": 1, "sad": 1,
                            "surprised": 1}


def test_manifest_tsv_given_as_file_with_media_columns(tmp_path):
    tone(tmp_path / "a.wav")
    image(tmp_path / "a.png")
    table = tmp_path / "my_data.tsv"
    table.write_text("id\taudio\timage\tlabel\n"
                     "item1\ta.wav\ta.png\tjoy\n"
                     "item2\ta.png\t\tjoy\n")
    scan = load_corpus("manifest", table)
    assert [r.id for r in scan.records] == ["item1"]
    assert scan.records[0].modalities() == ["audio", "image"]
    assert scan.records[0].label == "happy"
    (bad,) = scan.anomalies
    assert bad.skipped and bad.reason.startswith("row 3:") and "audio" in bad.reason


def test_manifest_bad_rows_and_files_name_the_row(tmp_path):
    good = tone(tmp_path / "ok.wav")
    write_bad_set(truncated=tmp_path / "cut.flac", zero=tmp_path / "zero.wav",
                  text=tmp_path / "text.wav", unparseable=tmp_path / "unused.wav")
    (tmp_path / "manifest.csv").write_text(
        "path,label,speaker\n"
        "ok.wav,happy,a\n"            # 2
        "cut.flac,sad,a\n"            # 3 truncated
        "zero.wav,sad,a\n"            # 4 empty
        "text.wav,sad,b\n"            # 5 text named .wav
        "missing.wav,sad,b\n"         # 6 no such file
        "unused.wav,,b\n"             # 7 empty label
        "ok.wav,sad,b,extra\n"        # 8 too many fields
        "notes.docx,sad,b\n"          # 9 unknown media type
        "ok.wav,angry,c\n")           # 10 repeats row 2
    scan = load_corpus("manifest", tmp_path / "manifest.csv")
    assert [r.audio for r in scan.records] == [str(good)]
    rows = {}
    for a in scan.anomalies:
        assert a.skipped and a.reason.strip()
        rows[int(a.reason.split(":")[0].removeprefix("row "))] = a
    assert sorted(rows) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert rows[3].path.endswith("cut.flac") and "truncated" in rows[3].reason
    assert rows[4].path.endswith("zero.wav") and "empty" in rows[4].reason
    assert "text" in rows[5].reason and "does not exist" in rows[6].reason
    assert "empty label" in rows[7].reason and "fields" in rows[8].reason
    assert ".docx" in rows[9].reason and "repeats" in rows[10].reason
    s = scan.summary()
    assert (s["items"], s["speakers"], s["classes"]) == (1, 1, {"happy": 1})


def test_manifest_unusable_tables_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="manifest.csv"):
        load_corpus("manifest", tmp_path)
    (tmp_path / "manifest.csv").write_text("path,emotion\na.wav,happy\n")
    with pytest.raises(DataError, match="label"):
        load_corpus("manifest", tmp_path)
    (tmp_path / "manifest.csv").write_text("file,label\na.wav,happy\n")
    with pytest.raises(DataError, match="path"):
        load_corpus("manifest", tmp_path)
