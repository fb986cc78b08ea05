"""MELD loader: CSV splits, dialogue keys, mojibake repair, clips, bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse.corpora import load_corpus
from emofuse.corpora._text import clean_text, decode_utf8, repair_mojibake
from emofuse.errors import DataError
from emofuse.paths import data_root

HEADER = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,"
          "StartTime,EndTime")
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 32


def _row(sr: int, text: str, emotion: str, dia: int | str, utt: int, speaker: str = "Ross"
         ) -> str:
    return (f'{sr},"{text}",{speaker},{emotion},neutral,{dia},{utt},3,7,'
            f'"00:01:02,500","00:01:04,250"')


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _csv(path: Path, rows: list[str | bytes]) -> None:
    lines = [r if isinstance(r, bytes) else r.encode() for r in [HEADER, *rows]]
    _write(path, b"\r\n".join(lines) + b"\r\n")


@pytest.fixture()
def meld_root(tmp_path: Path) -> Path:
    mojibake = "I donâ\x80\x99t know"  # what the official CSVs hold for "I don’t know"
    _csv(tmp_path / "train_sent_emo.csv", [
        _row(1, mojibake, "neutral", 0, 0),                       # line 2
        _row(2, "Oh, my God!", "surprise", 0, 1, "Rachel"),       # line 3
        b'3,"Caf\xe9 time",Joey,joy,positive,1,0,3,7,"0:0:1,0","0:0:2,0"',  # line 4: cp1252
        '4,"Too short",Ross,anger',                               # line 5: missing fields
        _row(5, "Hmm", "boredom", 1, 1),                          # line 6: unknown emotion
        _row(6, "Hi", "joy", "x", 2),                             # line 7: bad Dialogue_ID
        _row(7, "Again", "joy", 0, 1),                            # line 8: duplicate key
        _row(8, "Multi\nline", "sadness", 1, 2),                  # lines 9-10
    ])
    _csv(tmp_path / "dev_sent_emo.csv", [_row(1, "Dev line", "fear", 0, 0)])
    _csv(tmp_path / "test_sent_emo.csv", [_row(1, "Test line", "anger", 0, 0),
                                          _row(2, "Other", "disgust", 0, 1)])
    _write(tmp_path / "train_splits/dia0_utt0.mp4", MP4)
    _write(tmp_path / "train_splits/dia0_utt1.mp4", b"")  # empty clip
    _write(tmp_path / "train_splits/._dia1_utt0.mp4", MP4)  # macOS junk, ignored
    _write(tmp_path / "test/dia0_utt1.mp4", MP4)  # short folder name
    return tmp_path


def test_records_and_fields(meld_root: Path) -> None:
    scan = load_corpus("meld", meld_root)
    by_id = {r.id: r for r in scan}
    assert set(by_id) == {"train_dia0_utt0", "train_dia0_utt1", "train_dia1_utt0",
                          "train_dia1_utt2", "dev_dia0_utt0", "test_dia0_utt0",
                          "test_dia0_utt1"}
    rec = by_id["train_dia0_utt0"]
    assert rec.text == "I don’t know" and rec.speaker == "Ross" and rec.split == "train"
    assert rec.label_native == "neutral" and rec.label == "neutral"
    assert rec.extra["dialogue"] == "train:0" and rec.group == "train:0"
    assert rec.extra["utterance"] == 0 and rec.extra["sentiment"] == "neutral"
    assert (rec.extra["season"], rec.extra["episode"]) == (3, 7)
    assert rec.extra["start_time"] == "00:01:02,500" and rec.extra["start"] == 62.5
    assert rec.extra["end"] == 64.25
    assert by_id["train_dia1_utt0"].text == "Café time"
    assert by_id["train_dia1_utt2"].text == "Multi\nline"
    assert by_id["dev_dia0_utt0"].extra["dialogue"] == "dev:0"  # ids restart per split
    assert by_id["test_dia0_utt1"].label == "disgust"
    assert scan.summary()["splits"] == {"train": 4, "dev": 1, "test": 2}


def test_clips_become_video_and_audio(meld_root: Path) -> None:
    by_id = {r.id: r for r in load_corpus("meld", meld_root)}
    clip = str(meld_root / "train_splits/dia0_utt0.mp4")
    assert by_id["train_dia0_utt0"].video == clip and by_id["train_dia0_utt0"].audio == clip
    assert by_id["train_dia0_utt1"].video is None  # empty clip left out
    assert by_id["train_dia1_utt0"].video is None  # hidden ._ file ignored
    assert by_id["test_dia0_utt1"].video == str(meld_root / "test/dia0_utt1.mp4")
    assert by_id["dev_dia0_utt0"].modalities() == ["text"]


def test_bad_rows_are_anomalies(meld_root: Path) -> None:
    scan = load_corpus("meld", meld_root)
    train = str(meld_root / "train_sent_emo.csv")
    rows = {a.reason.split(":")[0]: a for a in scan.anomalies if a.path == train}
    assert set(rows) == {"line 4", "line 5", "line 6", "line 7", "line 8"}
    assert not rows["line 4"].skipped and "invalid UTF-8" in rows["line 4"].reason
    assert rows["line 5"].skipped and "missing field" in rows["line 5"].reason
    assert "unknown emotion 'boredom'" in rows["line 6"].reason
    assert "Dialogue_ID 'x'" in rows["line 7"].reason
    assert "appears twice" in rows["line 8"].reason
    clip = [a for a in scan.anomalies if a.path.endswith("dia0_utt1.mp4")]
    assert len(clip) == 1 and not clip[0].skipped and "empty" in clip[0].reason
    assert len(scan.anomalies) == 6


def test_missing_split_and_wrong_root(meld_root: Path, tmp_path_factory) -> None:
    (meld_root / "dev_sent_emo.csv").unlink()
    scan = load_corpus("meld", meld_root)
    assert any(a.path.endswith("dev_sent_emo.csv") and "missing" in a.reason
               for a in scan.anomalies)
    with pytest.raises(DataError, match="no MELD CSV"):
        load_corpus("meld", tmp_path_factory.mktemp("empty"))


def test_text_helpers() -> None:
    assert repair_mojibake("itâ€™s") == "it’s"  # the cp1252 reading
    assert repair_mojibake("â€œquotedâ€\x9d") == "“quoted”"
    assert repair_mojibake("café – it’s naïve") == "café – it’s naïve"  # genuine text kept
    assert clean_text(decode_utf8(b"\xef\xbb\xbf ok \x93x\x94 ")) == ("ok “x”", True)
    assert clean_text("plain") == ("plain", False)


@pytest.mark.shared_data
def test_real_meld() -> None:
    root = data_root() / "text/meld"
    if not root.is_dir():
        pytest.skip(f"MELD not found at {root}")
    scan = load_corpus("meld")
    assert scan.summary()["splits"] == {"train": 9_989, "dev": 1_109, "test": 2_610}
    assert scan.anomalies == []
    assert len(scan.summary()["classes"]) == 7
    assert not any("â€" in r.text or "\x80" in r.text for r in scan)
    dialogues = {r.extra["dialogue"]: r.split for r in scan}
    assert all(key.startswith(f"{split}:") for key, split in dialogues.items())
    assert len({r.id for r in scan}) == len(scan)
