"""GoEmotions loader: schemes, multi-label rows, summary counts, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from emofuse.corpora import load_corpus
from emofuse.errors import ConfigError, DataError
from emofuse.labels import GOEMOTIONS_28
from emofuse.paths import data_root

EKMAN = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")
GROUP = ("ambiguous", "negative", "neutral", "positive")
ID = {name: i for i, name in enumerate(GOEMOTIONS_28)}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _tsv(path: Path, lines: list[str | bytes]) -> None:
    _write(path, b"".join((ln if isinstance(ln, bytes) else ln.encode()) + b"\n"
                          for ln in lines))


def _ids(*names: str) -> str:
    return ",".join(str(ID[n]) for n in names)


@pytest.fixture()
def go_root(tmp_path: Path) -> Path:
    orig = tmp_path / "original"
    _write(orig / "labels.txt", "\n".join(GOEMOTIONS_28).encode() + b"\n")
    _tsv(orig / "train.tsv", [
        f"Thanks a lot!\t{_ids('gratitude')}\tc1",                    # line 1 single
        f"So happy for you\t{_ids('joy', 'love')}\tc2",               # 2 multi, one group
        f"Great, now I am mad\t{_ids('joy', 'anger')}\tc3",           # 3 multi, mixed
        "A line without fields",                                      # 4 missing fields
        "Unknown label\t40\tc5",                                      # 5 unknown id
        b"Caf\xe9 is closed\t" + _ids("sadness").encode() + b"\tc6",  # 6 invalid UTF-8
        "No label\t\tc7",                                             # 7 empty label
        "",                                                           # 8 blank: ignored
        f"Duplicate id\t{_ids('neutral')}\tc1",                       # 9 repeated comment id
    ])
    _tsv(orig / "dev.tsv", [f"Well then\t{_ids('neutral')}\td1"])
    _tsv(orig / "test.tsv", [f"Wow\t{_ids('surprise', 'curiosity')}\tt1"])
    ekman = tmp_path / "ekman"
    _write(ekman / "labels.txt", "\n".join(EKMAN).encode())
    _tsv(ekman / "train.tsv", ["Thanks a lot!\t3\tc1", "Mixed\t0,3\tc3"])
    _tsv(ekman / "dev.tsv", ["Well then\t4\td1"])
    _tsv(ekman / "test.tsv", ["Wow\t6\tt1"])
    group = tmp_path / "group"
    _write(group / "labels.txt", "\n".join(GROUP).encode())
    _tsv(group / "train.tsv", ["Thanks a lot!\t3\tc1", "Mixed\t1,3\tc3"])
    _tsv(group / "dev.tsv", ["Well then\t2\td1"])
    _tsv(group / "test.tsv", ["Wow\t0\tt1"])
    return tmp_path


def test_single_and_multi_label_records(go_root: Path) -> None:
    scan = load_corpus("goemotions", go_root)
    by_id = {r.id: r for r in scan}
    assert set(by_id) == {"c1", "c2", "c3", "c6", "d1", "t1"}
    assert by_id["c1"].label_native == "gratitude" and by_id["c1"].label == "happy"
    assert by_id["c1"].extra["labels"] == ["gratitude"] and by_id["c1"].speaker is None
    assert by_id["c2"].label_native is None and by_id["c2"].extra["labels"] == ["joy", "love"]
    assert by_id["c2"].label == "happy"  # both in Ekman's joy group
    assert by_id["c3"].label_native is None and by_id["c3"].label is None
    assert by_id["c6"].text == "Café is closed" and by_id["c6"].label == "sad"
    assert by_id["t1"].label == "surprise" and by_id["t1"].split == "test"
    assert by_id["d1"].split == "dev" and by_id["c1"].text == "Thanks a lot!"


def test_summary_counts_every_label_of_multi_label_rows(go_root: Path) -> None:
    summary = load_corpus("goemotions", go_root).summary()
    assert summary["items"] == 6
    assert summary["classes"] == {"anger": 1, "curiosity": 1, "gratitude": 1, "joy": 2,
                                  "love": 1, "neutral": 1, "sadness": 1, "surprise": 1}
    assert summary["splits"] == {"train": 4, "dev": 1, "test": 1}


def test_bad_lines_are_anomalies(go_root: Path) -> None:
    scan = load_corpus("goemotions", go_root)
    train = str(go_root / "original/train.tsv")
    assert all(a.path == train for a in scan.anomalies)
    got = {a.reason.split(":")[0]: a for a in scan.anomalies}
    assert set(got) == {"line 4", "line 5", "line 6", "line 7", "line 9"}
    assert "missing field" in got["line 4"].reason
    assert "unknown label id(s) 40" in got["line 5"].reason
    assert not got["line 6"].skipped and "invalid UTF-8" in got["line 6"].reason
    assert "no label" in got["line 7"].reason
    assert "comment id c1 already in train" in got["line 9"].reason
    assert sum(a.skipped for a in scan.anomalies) == 4


@pytest.mark.parametrize("sub", ["original", "ekman", "group"])
def test_root_may_be_a_scheme_folder(go_root: Path, sub: str) -> None:
    scan = load_corpus("goemotions", go_root / sub)
    by_id = {r.id: r for r in scan}
    assert {r.extra["scheme"] for r in scan} == {sub}
    if sub == "ekman":
        assert by_id["c1"].label_native == "joy" and by_id["c1"].label == "happy"
        assert by_id["c3"].extra["labels"] == ["anger", "joy"] and by_id["c3"].label is None
        assert by_id["t1"].label == "surprise"
    if sub == "group":
        assert by_id["c1"].label_native == "positive" and by_id["c1"].label is None


def test_scheme_option(go_root: Path) -> None:
    scan = load_corpus("goemotions", go_root, scheme="ekman")
    assert len(scan) == 4 and scan.anomalies == []
    with pytest.raises(ConfigError, match="'ekman' folder"):
        load_corpus("goemotions", go_root / "ekman", scheme="group")
    with pytest.raises(ConfigError, match="scheme must be"):
        load_corpus("goemotions", go_root, scheme="plutchik")


def test_missing_labels_file(go_root: Path) -> None:
    (go_root / "original/labels.txt").unlink()
    scan = load_corpus("goemotions", go_root)
    assert len(scan) == 6 and any("28 standard" in a.reason for a in scan.anomalies)
    (go_root / "group/labels.txt").unlink()
    with pytest.raises(DataError, match="labels.txt"):
        load_corpus("goemotions", go_root / "group")
    (go_root / "elsewhere").mkdir()
    with pytest.raises(DataError, match="no GoEmotions"):
        load_corpus("goemotions", go_root / "elsewhere")


@pytest.mark.shared_data
def test_real_goemotions() -> None:
    root = data_root() / "text/goemotions"
    if not root.is_dir():
        pytest.skip(f"GoEmotions not found at {root}")
    scan = load_corpus("goemotions")
    summary = scan.summary()
    assert summary["splits"] == {"train": 43_410, "dev": 5_426, "test": 5_427}
    assert scan.anomalies == [] and len(summary["classes"]) == 28
    multi = [r for r in scan if r.label_native is None]
    assert multi and all(len(r.extra["labels"]) > 1 for r in multi)
    assert sum(summary["classes"].values()) > summary["items"]
