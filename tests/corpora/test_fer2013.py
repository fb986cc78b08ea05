"""FER2013 loader: CSV and image-folder forms, usage from names, duplicates, bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emofuse.corpora import load_corpus
from emofuse.corpora._image import inspect_image
from emofuse.corpora.fer2013 import duplicate_groups, parse_pixels
from emofuse.errors import ConfigError, DataError
from emofuse.paths import data_root


def _pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 48), dtype=np.uint8)


def _jpeg(seed: int, size: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(_pixels(seed)).resize((size, size)).save(buf, format="JPEG")
    return buf.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _row(emotion: str, pixels: np.ndarray | str, usage: str) -> str:
    text = pixels if isinstance(pixels, str) else " ".join(map(str, pixels.ravel()))
    return f"{emotion},{text},{usage}"


@pytest.fixture()
def fer_csv(tmp_path: Path) -> Path:
    rows = [
        "emotion,pixels,Usage",
        _row("0", _pixels(0), "Training"),              # 0 good
        _row("3", _pixels(1), "PublicTest"),            # 1 good
        _row("6", _pixels(0), "PrivateTest"),           # 2 good, same pixels as row 0
        _row("4", "1 2 3", "Training"),                 # 3 wrong pixel count
        "5," + " ".join(["7"] * 2304),                  # 4 missing Usage field
        _row("9", _pixels(2), "Training"),              # 5 unknown emotion id
        _row("2", "x " * 2304, "Training"),             # 6 not integers
        _row("2", _pixels(3), "Validation"),            # 7 unknown usage
        _row("1", " ".join(["300"] * 2304), "Training"),  # 8 out of range
    ]
    _write(tmp_path / "fer2013.csv", ("\n".join(rows) + "\n").encode())
    return tmp_path


def test_csv_form_records_and_bad_rows(fer_csv: Path) -> None:
    scan = load_corpus("fer2013", fer_csv)
    assert [r.extra["row"] for r in scan] == [0, 1, 2]
    first = scan.records[0]
    assert first.image is None and first.label_native == "angry" and first.label == "angry"
    assert first.extra["pixels"].dtype == np.uint8 and first.extra["pixels"].shape == (48, 48)
    np.testing.assert_array_equal(first.extra["pixels"], _pixels(0))
    assert [r.split for r in scan] == ["Training", "PublicTest", "PrivateTest"]
    assert [r.label_native for r in scan] == ["angry", "happy", "neutral"]
    assert scan.records[0].extra["content_hash"] == scan.records[2].extra["content_hash"]
    assert scan.records[0].extra["content_hash"] != scan.records[1].extra["content_hash"]
    groups = duplicate_groups(scan)
    assert [[r.id for r in g] for g in groups] == [["row-00000", "row-00002"]]
    csv_path = str(fer_csv / "fer2013.csv")
    assert all(a.path == csv_path and a.skipped for a in scan.anomalies)
    reasons = {int(a.reason.split()[2]): a.reason for a in scan.anomalies}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8]
    assert "3 pixel values instead of 2304" in reasons[3]
    assert "missing field" in reasons[4] and "unknown emotion id '9'" in reasons[5]
    assert "integers" in reasons[6] and "Validation" in reasons[7] and "0-255" in reasons[8]
    assert "line 5" in reasons[3]  # header is line 1


def test_csv_with_spaced_headers_and_root_as_file(tmp_path: Path) -> None:
    # Kaggle's icml_face_data.csv writes " Usage" and " pixels" with a leading space
    _write(tmp_path / "icml_face_data.csv",
           ("emotion, Usage, pixels\n" + f"5,Training,{' '.join(['9'] * 2304)}\n").encode())
    scan = load_corpus("fer2013", tmp_path / "icml_face_data.csv")
    assert len(scan) == 1 and scan.records[0].label == "surprise"


def test_csv_without_needed_columns_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "fer2013.csv", b"emotion,pixels\n0,1 2\n")
    with pytest.raises(DataError, match="no column usage"):
        load_corpus("fer2013", tmp_path)


@pytest.fixture()
def fer_images(tmp_path: Path) -> Path:
    _write(tmp_path / "train/angry/Training_1.jpg", _jpeg(1))
    _write(tmp_path / "train/happy/Training_2.jpg", _jpeg(2))
    _write(tmp_path / "test/happy/PublicTest_3.jpg", _jpeg(3))
    _write(tmp_path / "test/sad/PrivateTest_4.jpg", _jpeg(4))
    _write(tmp_path / "test/angry/PrivateTest_5.jpg", _jpeg(1))  # duplicate of Training_1
    _write(tmp_path / "train/fear/img_6.jpg", _jpeg(6))  # no prefix: Training from folder
    _write(tmp_path / "test/fear/img_7.jpg", _jpeg(7))  # no prefix: PublicTest, reported
    _write(tmp_path / "train/neutral/PublicTest_8.jpg", _jpeg(8))  # prefix vs folder
    _write(tmp_path / "train/surprise/Training_9.jpg", _jpeg(9, size=64))  # not 48x48
    _write(tmp_path / "train/neutral/Training_2.jpg", _jpeg(10))  # name reused, other label
    # broken files
    _write(tmp_path / "train/angry/Training_90.jpg", _jpeg(11)[:300])  # truncated
    _write(tmp_path / "train/angry/Training_91.jpg", b"this is not a picture\n")
    _write(tmp_path / "train/angry/Training_92.jpg", b"")
    good = _jpeg(12)
    _write(tmp_path / "train/angry/Training_93.jpg", good[:3] + b"\x00" * 200 + b"\xff\xd9")
    _write(tmp_path / "train/contempt/Training_94.jpg", _jpeg(13))  # not a FER2013 class
    return tmp_path


def test_image_form_usage_labels_and_hashes(fer_images: Path) -> None:
    scan = load_corpus("fer2013", fer_images)
    by_id = {r.id: r for r in scan}
    assert set(by_id) == {"train/angry/Training_1", "train/happy/Training_2",
                          "test/happy/PublicTest_3", "test/sad/PrivateTest_4",
                          "test/angry/PrivateTest_5", "train/fear/img_6", "test/fear/img_7",
                          "train/neutral/PublicTest_8", "train/surprise/Training_9",
                          "train/neutral/Training_2"}
    assert by_id["test/sad/PrivateTest_4"].split == "PrivateTest"
    assert by_id["test/sad/PrivateTest_4"].label == "sad"
    assert by_id["train/fear/img_6"].split == "Training"
    assert by_id["test/fear/img_7"].split == "PublicTest"
    assert by_id["train/neutral/PublicTest_8"].split == "PublicTest"
    rec = by_id["train/angry/Training_1"]
    assert rec.image == str(fer_images / "train/angry/Training_1.jpg") and rec.text is None
    groups = duplicate_groups(scan)
    assert len(groups) == 1
    assert {r.split for r in groups[0]} == {"Training", "PrivateTest"}
    assert len({r.extra["content_hash"] for r in scan}) == len(scan) - 1


def test_image_form_anomalies_name_each_file(fer_images: Path) -> None:
    scan = load_corpus("fer2013", fer_images)
    got = {Path(a.path).relative_to(fer_images).as_posix(): a for a in scan.anomalies}
    skipped = {p for p, a in got.items() if a.skipped}
    assert skipped == {"train/angry/Training_90.jpg", "train/angry/Training_91.jpg",
                       "train/angry/Training_92.jpg", "train/angry/Training_93.jpg",
                       "train/contempt/Training_94.jpg"}
    assert "truncated JPEG" in got["train/angry/Training_90.jpg"].reason
    assert "holds text" in got["train/angry/Training_91.jpg"].reason
    assert "empty" in got["train/angry/Training_92.jpg"].reason
    assert "corrupt JPEG" in got["train/angry/Training_93.jpg"].reason
    assert "not a FER2013 emotion" in got["train/contempt/Training_94.jpg"].reason
    assert "PublicTest" in got["test"].reason and "1 file(s), e.g. img_7.jpg" in got["test"].reason
    assert "folder train/" in got["train/neutral/PublicTest_8.jpg"].reason
    assert "64x64" in got["train/surprise/Training_9.jpg"].reason
    assert "also used by" in got["train/neutral/Training_2.jpg"].reason
    assert not any(a.skipped for p, a in got.items() if p not in skipped)


def test_image_form_without_decoding_still_catches_non_images(fer_images: Path) -> None:
    scan = load_corpus("fer2013", fer_images, check_media=False)
    skipped = {Path(a.path).name for a in scan.anomalies if a.skipped}
    # the JPEG whose markers look right is only caught by decoding
    assert skipped == {"Training_90.jpg", "Training_91.jpg", "Training_92.jpg",
                       "Training_94.jpg"}
    assert all("content_hash" in r.extra for r in scan)


def test_options_and_empty_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="form"):
        load_corpus("fer2013", tmp_path, form="zip")
    with pytest.raises(DataError, match="no fer2013.csv"):
        load_corpus("fer2013", tmp_path, form="csv")
    with pytest.raises(DataError, match="neither"):
        load_corpus("fer2013", tmp_path)


def test_helpers() -> None:
    assert inspect_image(_jpeg(0)) == (None, (48, 48))
    assert inspect_image(b"GIF8" + b"\x00" * 10)[0].startswith("corrupt GIF")
    assert inspect_image(b"\x00\x01\x02\x03")[0] == "not an image (unrecognised format)"
    assert parse_pixels(" ".join(["255"] * 2304)).max() == 255
    with pytest.raises(ValueError, match="1 pixel values"):
        parse_pixels("4")


@pytest.mark.shared_data
def test_real_fer2013() -> None:
    root = data_root() / "fer2013"
    if not root.is_dir():
        pytest.skip(f"FER2013 not found at {root}")
    scan = load_corpus("fer2013", check_media=False)
    summary = scan.summary()
    assert summary["items"] == 35_887
    assert summary["splits"] == {"Training": 28_709, "PublicTest": 3_589, "PrivateTest": 3_589}
    assert len(summary["classes"]) == 7
    assert not any(a.skipped for a in scan.anomalies)
    assert len({r.id for r in scan}) == len(scan)
    groups = duplicate_groups(scan)
    extra_copies = sum(len(g) - 1 for g in groups)
    assert 1_700 < extra_copies < 2_000  # the corpus' known ~1,850 repeated images
    assert sum(len({r.split for r in g}) > 1 for g in groups) > 100
