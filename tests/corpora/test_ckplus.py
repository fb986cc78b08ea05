"""CK+ loader: CK+48 layout, subject/sequence/frame from names, bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emofuse.corpora import load_corpus
from emofuse.errors import DataError
from emofuse.paths import data_root


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture()
def ck_root(tmp_path: Path) -> Path:
    base = tmp_path / "CK+48"
    _write(base / "anger/S010_004_00000017.png", _png(1))
    _write(base / "anger/S010_004_00000018.png", _png(2))
    _write(base / "sadness/S011_001_00000009.png", _png(3))
    _write(base / "contempt/S138_008_00000008.png", _png(4))
    # broken items
    _write(base / "happy/S012_002_00000005.png", _png(5)[:60])  # truncated
    _write(base / "happy/S012_002_00000006.png", b"not a png\n")
    _write(base / "happy/frame17.png", _png(6))  # name outside the convention
    _write(base / "neutral/S013_001_00000001.png", _png(7))  # no neutral class in CK+48
    _write(base / "fear/S010_004_00000017.png", _png(8))  # same frame under a second emotion
    return tmp_path


def test_records_from_names(ck_root: Path) -> None:
    scan = load_corpus("ckplus", ck_root)
    by_id = {r.id: r for r in scan}
    assert set(by_id) == {"S010_004_00000017", "S010_004_00000018", "S011_001_00000009",
                          "S138_008_00000008"}
    rec = by_id["S010_004_00000017"]
    assert rec.speaker == "S010" and rec.group == "S010"
    assert rec.extra["sequence"] == "S010_004" and rec.extra["frame"] == 17
    assert rec.label_native == "anger" and rec.label == "angry"
    assert rec.image == str(ck_root / "CK+48/anger/S010_004_00000017.png")
    assert by_id["S011_001_00000009"].label == "sad"
    assert by_id["S138_008_00000008"].label == "contempt"
    assert rec.split is None and len(rec.extra["content_hash"]) == 32
    assert scan.summary()["speakers"] == 3


def test_bad_files_are_anomalies(ck_root: Path) -> None:
    scan = load_corpus("ckplus", ck_root)
    got = {Path(a.path).relative_to(ck_root / "CK+48").as_posix(): a.reason
           for a in scan.anomalies}
    assert all(a.skipped for a in scan.anomalies)
    assert set(got) == {"happy/S012_002_00000005.png", "happy/S012_002_00000006.png",
                        "happy/frame17.png", "neutral/S013_001_00000001.png",
                        "fear/S010_004_00000017.png"}
    assert "truncated PNG" in got["happy/S012_002_00000005.png"]
    assert "holds text" in got["happy/S012_002_00000006.png"]
    assert "S<subject>_<sequence>_<frame>" in got["happy/frame17.png"]
    assert "not a CK+ emotion" in got["neutral/S013_001_00000001.png"]
    assert "already listed as anger" in got["fear/S010_004_00000017.png"]


def test_root_may_be_ck48_itself(ck_root: Path) -> None:
    assert len(load_corpus("ck+", ck_root / "CK+48")) == 4


def test_wrong_root_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no CK\\+ emotion folders"):
        load_corpus("ckplus", tmp_path)


@pytest.mark.shared_data
def test_real_ckplus() -> None:
    root = data_root() / "ckplus"
    if not root.is_dir():
        pytest.skip(f"CK+ not found at {root} (a user brings it; not in the shared data)")
    scan = load_corpus("ckplus", check_media=False)
    assert len(scan) > 0 and len(scan.summary()["classes"]) == 7
