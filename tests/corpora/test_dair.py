"""dair-ai emotion loader: text;label files, Hugging Face CSV/JSON-lines forms, bad lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from emofuse.corpora import load_corpus
from emofuse.errors import DataError
from emofuse.paths import data_root


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture()
def dair_root(tmp_path: Path) -> Path:
    _write(tmp_path / "train.txt", b"\n".join([
        b"i feel so alone today;sadness",            # line 1
        b"i am thrilled; really thrilled;joy",       # line 2: ';' inside the text
        b"no separator on this line",                # line 3: missing field
        b"i feel bored;boredom",                     # line 4: unknown label
        b"caf\xe9 made me feel loved;love",          # line 5: invalid UTF-8
        b"",                                         # line 6: blank, ignored
        b";anger",                                   # line 7: empty text
        b"i am furious;anger",                       # line 8
    ]) + b"\n")
    _write(tmp_path / "val.txt", b"i feel scared;fear\n")
    _write(tmp_path / "test.txt", b"what a surprise;surprise\r\nso mad;anger\r\n")
    return tmp_path


def test_records(dair_root: Path) -> None:
    scan = load_corpus("dair", dair_root)
    by_id = {r.id: r for r in scan}
    assert set(by_id) == {"train-000001", "train-000002", "train-000005", "train-000008",
                          "dev-000001", "test-000001", "test-000002"}
    assert by_id["train-000002"].text == "i am thrilled; really thrilled"
    assert by_id["train-000002"].label_native == "joy" and by_id["train-000002"].label == "happy"
    assert by_id["train-000005"].text == "café made me feel loved"
    assert by_id["train-000005"].label == "love"
    assert by_id["dev-000001"].split == "dev" and by_id["dev-000001"].label == "fear"
    assert by_id["test-000002"].text == "so mad" and by_id["test-000002"].speaker is None
    assert scan.summary()["splits"] == {"train": 4, "dev": 1, "test": 2}


def test_bad_lines_are_anomalies(dair_root: Path) -> None:
    scan = load_corpus("dair", dair_root)
    train = str(dair_root / "train.txt")
    assert all(a.path == train for a in scan.anomalies)
    got = {a.reason.split(":")[0]: a for a in scan.anomalies}
    assert set(got) == {"line 3", "line 4", "line 5", "line 7"}
    assert "missing field" in got["line 3"].reason
    assert "unknown label 'boredom'" in got["line 4"].reason
    assert not got["line 5"].skipped and "invalid UTF-8" in got["line 5"].reason
    assert "empty text" in got["line 7"].reason
    assert sum(a.skipped for a in scan.anomalies) == 3


def test_hugging_face_forms(tmp_path: Path) -> None:
    _write(tmp_path / "train.csv", b'text,label\n"i feel sad, truly",0\ni love it,2\nbad row\n')
    _write(tmp_path / "validation.jsonl",
           b'{"text": "so happy", "label": 1}\nnot json\n{"text": "x"}\n')
    lines = [json.dumps({"text": t, "label": lab}) for t, lab in (("angry", 3), ("odd", 9))]
    _write(tmp_path / "test.jsonl.gz", gzip.compress("\n".join(lines).encode()))
    scan = load_corpus("dair", tmp_path)
    by_id = {r.id: r for r in scan}
    assert by_id["train-000002"].text == "i feel sad, truly"
    assert by_id["train-000002"].label_native == "sadness"
    assert by_id["train-000003"].label_native == "love"
    assert by_id["dev-000001"].label == "happy" and by_id["test-000001"].label == "angry"
    reasons = sorted((Path(a.path).name, a.reason) for a in scan.anomalies)
    assert [name for name, _ in reasons] == ["test.jsonl.gz", "train.csv", "validation.jsonl",
                                             "validation.jsonl"]
    assert "unknown label '9'" in reasons[0][1] and "line 4: missing field" in reasons[1][1]
    assert "line 2: invalid JSON" in reasons[2][1] and "line 3: missing field" in reasons[3][1]


def test_missing_split_and_wrong_root(dair_root: Path, tmp_path_factory) -> None:
    (dair_root / "val.txt").unlink()
    scan = load_corpus("dair-ai", dair_root)
    assert [(Path(a.path).name, a.reason) for a in scan.anomalies
            if a.reason == "split file missing"] == [("val.txt", "split file missing")]
    with pytest.raises(DataError, match="no dair-ai emotion split files"):
        load_corpus("dair", tmp_path_factory.mktemp("empty"))


@pytest.mark.shared_data
def test_real_dair() -> None:
    root = data_root() / "text/dair_emotion"
    if not root.is_dir():
        pytest.skip(f"dair-ai emotion not found at {root}")
    scan = load_corpus("dair")
    summary = scan.summary()
    assert summary["splits"] == {"train": 16_000, "dev": 2_000, "test": 2_000}
    assert scan.anomalies == [] and len(summary["classes"]) == 6
    assert all(r.label is not None and r.text for r in scan)
