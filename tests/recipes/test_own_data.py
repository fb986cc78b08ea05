"""``emofuse train --data DIR_OR_CSV --modality ...``: a user's own data through the generic
loaders, then the model is used by ``emofuse predict``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from emofuse.cli import app
from emofuse.errors import ConfigError, DataError, EmofuseError
from emofuse.recipes.own_data import own_data_config

from .._tiny_models import write_wav

runner = CliRunner()


def _ok(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, (r.output, r.exception)
    return r.output


@pytest.fixture()
def speech_folder(tmp_path: Path) -> Path:
    root = tmp_path / "voices"
    for label, freq in (("happy", 330.0), ("sad", 140.0)):
        for spk in ("anna", "ben", "cleo"):
            for i in range(3):
                d = root / label
                d.mkdir(parents=True, exist_ok=True)
                write_wav(d / f"{spk}_{i}.wav", 1.0, freq=freq * (1 + 0.05 * i))
    return root


def test_speech_folder_with_speakers_then_predict(speech_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "my-speech"
    _ok("train", "--data", str(speech_folder), "--modality", "speech",
        "--speaker-regex", "prefix", "--out", str(out), "--quick")
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "speech" and sorted(card["labels"]) == ["happy", "sad"]
    assert card["data"]["corpus"] == "folder"
    r = runner.invoke(app, ["predict", "--json", "--model", str(out),
                            str(speech_folder / "happy" / "anna_0.wav")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["label"] in ("happy", "sad")


def test_text_manifest_without_split(tmp_path: Path) -> None:
    rows = [("what a lovely gift, thank you", "joy"), ("I miss her so much", "sadness")] * 12
    manifest = tmp_path / "texts.csv"
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label", "speaker"])
        for i, (t, lab) in enumerate(rows):
            w.writerow([f"{t} ({i})", lab, f"s{i % 6}"])
    out = tmp_path / "my-text"
    _ok("train", "--data", str(manifest), "--modality", "text", "--out", str(out), "--quick")
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "text" and sorted(card["labels"]) == ["happy", "sad"]
    r = runner.invoke(app, ["predict", "--json", "--model", str(out), "--text", "I miss you"])
    assert r.exit_code == 0, r.output


def test_face_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "faces"
    for ci, label in enumerate(("happy", "angry")):
        (root / label).mkdir(parents=True)
        for i in range(6):
            img = rng.integers(0, 80, (48, 48)).astype(np.uint8)
            img[8 + ci * 20:12 + ci * 20] = 230
            Image.fromarray(img).save(root / label / f"p{i % 3}_{i}.png")
    out = tmp_path / "my-face"
    _ok("train", "--data", str(root), "--modality", "face", "--speaker-regex", "prefix",
        "--out", str(out), "--quick")
    card = json.loads((out / "card.json").read_text())
    assert card["task"] == "face" and sorted(card["labels"]) == ["angry", "happy"]


def test_bad_requests_are_clear(tmp_path: Path, speech_folder: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        own_data_config(tmp_path / "nope", "speech", out_dir=tmp_path / "m")
    with pytest.raises(ConfigError, match="--modality"):
        own_data_config(speech_folder, "smell", out_dir=tmp_path / "m")
    r = runner.invoke(app, ["train", "--data", str(speech_folder), "--out", str(tmp_path / "m")])
    assert isinstance(r.exception, EmofuseError) and "--modality" in str(r.exception)
    r = runner.invoke(app, ["train"])
    assert isinstance(r.exception, EmofuseError) and "--config" in str(r.exception)
