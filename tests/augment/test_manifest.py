"""Synthetic sets on disk: round trip, CSV, records for training folds, leakage guard."""

from __future__ import annotations

import csv
import json

import pytest

from emofuse.augment import SyntheticItem, SyntheticSet, load_set, write_set
from emofuse.augment.manifest import ids_digest, to_records
from emofuse.errors import DataError


def _set() -> SyntheticSet:
    items = [SyntheticItem("g:0:sad:0", "sad", "llm_generate", "generate", 3, text="i feel low",
                           source_ids=["train-1", "train-2"], kept=True, score=0.9),
             SyntheticItem("g:0:sad:1", "sad", "llm_generate", "generate", 3, text="meh",
                           source_ids=["train-1"], kept=False, score=0.2),
             SyntheticItem("g:0:love:0", "love", "llm_generate", "generate", 3,
                           text="i adore you", source_ids=["train-5"])]
    return SyntheticSet("llm_generate", "text", {"shots": 5}, 3,
                        SyntheticSet.fitted("dair", "train", ["train-1", "train-2", "train-5"]),
                        items, seconds=1.5, quality={"kept": {"overall": {"n": 1}}})


def test_round_trip_and_csv(tmp_path):
    s = _set()
    folder = write_set(s, tmp_path / "set")
    m = json.loads((folder / "manifest.json").read_text())
    assert m["generator"] == "llm_generate" and m["seed"] == 3 and m["settings"] == {"shots": 5}
    assert m["fitted_on"]["n"] == 3 and m["fitted_on"]["sha256"] == ids_digest(
        ["train-5", "train-1", "train-2"])
    assert m["counts"] == {"sad": 2, "love": 1} and m["counts_kept"] == {"sad": 1, "love": 1}
    assert m["created"]
    rows = list(csv.DictReader((folder / "items.csv").open()))
    assert [r["kept"] for r in rows] == ["1", "0", ""]
    assert rows[0]["source_class"] == "sad" and rows[0]["source_ids"] == "train-1 train-2"
    back = load_set(folder)
    assert back.items[0] == s.items[0] and back.fitted_on == s.fitted_on
    assert back.quality == s.quality and back.seconds == 1.5


def test_records_are_training_only_and_synthetic(tmp_path):
    s = _set()
    recs = to_records(s)
    assert [r.text for r in recs] == ["i feel low", "i adore you"]  # the rejected one is out
    r = recs[0]
    assert r.split == "train" and r.label == "sad" and r.corpus == "dair"
    assert r.extra["synthetic"] and r.extra["generator"] == "llm_generate"
    assert r.extra["source_ids"] == ["train-1", "train-2"]
    assert len(to_records(s, kept_only=False)) == 3
    to_records(s, test_ids=["test-1"])  # no overlap: fine
    with pytest.raises(DataError, match="test item"):
        to_records(s, test_ids=["train-5"])


def test_media_paths_resolve_against_the_folder(tmp_path):
    s = SyntheticSet("cgan", "image", {}, 0, SyntheticSet.fitted("fer2013", "train", ["a"]),
                     [SyntheticItem("x", "disgust", "cgan", path="files/x.png")])
    recs = to_records(s, folder=tmp_path)
    assert recs[0].image == str(tmp_path / "files/x.png") and recs[0].text is None


def test_missing_or_bad_manifest(tmp_path):
    with pytest.raises(DataError, match="manifest.json missing"):
        load_set(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(DataError, match="cannot read"):
        load_set(tmp_path)
    (tmp_path / "manifest.json").write_text('{"generator": "x"}')
    with pytest.raises(DataError, match="malformed"):
        load_set(tmp_path)
