"""``emofuse train --data DIR_OR_CSV --modality ...``: a user's own data through the generic
loaders, then the model is used by ``emofuse predict``; flat folders (``--label-regex``),
cross-validation reports (``--cv``), one-speaker corpora and ``emofuse bench --config``."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from emofuse.cli import app
from emofuse.corpora import Record, load_corpus
from emofuse.errors import ConfigError, DataError, EmofuseError
from emofuse.recipes.own_data import WITHIN_SPEAKER, cv_splits, own_data_config

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


# --------------------------------------------------------------------------------------------
# Flat folders, cross-validation, one-speaker corpora, bench --config (issue part 6, "Own data")
#
# CLI tests run the installed ``emofuse`` executable as a user does (exit code, stderr lines);
# the fixtures are generated: texts (cheapest: the MiniLM encoder is shared by the session)
# and 48x48 face-like images (a 1-epoch mini-Xception in --quick).

EXE = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or shutil.which("emofuse")
needs_exe = pytest.mark.skipif(EXE is None, reason="the emofuse executable is not installed "
                                                   "(pip install -e .)")
REGEX = r"^(?P<speaker>[A-Z]+)_(?P<label>[a-z]+)\d+"
_WORDS = {"happy": ("wonderful", "lovely", "delighted"), "sad": ("lonely", "tears", "grief"),
          "angry": ("furious", "outraged", "rage"), "fear": ("scared", "terrified", "panic")}


def _emofuse(*args: str, cwd: Path | None = None, timeout: float = 300
             ) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env, check=False)


def _no_traceback(r: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    _no_traceback(r)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), \
        (r.returncode, r.stderr, r.stdout[-500:])
    return lines[0]


def _flat_texts(root: Path, speakers: tuple[str, ...] = ("AB", "CD", "EF")) -> Path:
    """``<SPK>_<label><n>.txt``: 3 per speaker and label, 4 labels, plus 2 stray files."""
    root.mkdir(parents=True)
    for s in speakers:
        for label, words in _WORDS.items():
            for i in range(3):
                (root / f"{s}_{label}{i}.txt").write_text(
                    f"{s.lower()} says: I feel so {words[i]} and {words[(i + 1) % 3]} today")
    (root / "README.txt").write_text("notes about the recordings")
    (root / "AB_happy.txt").write_text("no take number: does not match")
    return root


def _flat_faces(root: Path, speakers: tuple[str, ...]) -> Path:
    """``<spk>-<label>-<n>.png``: 48x48 noise with a class-dependent bright bar."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for s in speakers:
        for ci, label in enumerate(("happy", "angry", "sad")):
            for i in range(3):
                img = rng.integers(0, 80, (48, 48)).astype(np.uint8)
                img[6 + ci * 14:10 + ci * 14] = 230
                Image.fromarray(img).save(root / f"{s}-{label}-{i}.png")
    return root


def test_flat_folder_label_regex_and_presets(tmp_path: Path) -> None:
    root = _flat_texts(tmp_path / "flat")
    scan = load_corpus("folder", root, label_regex=REGEX)
    assert len(scan.records) == 36
    assert {r.speaker for r in scan.records} == {"AB", "CD", "EF"}
    assert {r.label for r in scan.records} == set(_WORDS)
    skipped = sorted(Path(a.path).name for a in scan.anomalies if a.skipped)
    assert skipped == ["AB_happy.txt", "README.txt"]
    assert all("does not match label_regex" in a.reason for a in scan.anomalies if a.skipped)
    # a nested layout works too: labels come from the names, not the folders
    (root / "more").mkdir()
    (root / "more" / "GH_sad1.txt").write_text("so lonely")
    assert load_corpus("folder", root, label_regex=REGEX).summary()["speakers"] == 4
    # presets map a scheme's codes to labels (RAVDESS: emotion 3rd, actor last; TESS: stem)
    pre = tmp_path / "presets"
    pre.mkdir()
    (pre / "03-01-05-01-02-01-12.txt").write_text("an angry line")
    (pre / "03-01-01-01-01-01-07.txt").write_text("a neutral line")
    (pre / "OAF_back_ps.txt").write_text("a surprised line")
    rav = {r.id: (r.label, r.speaker) for r in load_corpus("folder", pre,
                                                           label_regex="ravdess").records}
    assert rav == {"03-01-05-01-02-01-12": ("angry", "12"),
                   "03-01-01-01-01-01-07": ("neutral", "07")}
    (tess,) = load_corpus("folder", pre, label_regex="tess").records
    assert (tess.label_native, tess.label, tess.speaker) == ("ps", "surprise", "OAF")
    with pytest.raises(ConfigError, match="no named group 'label'"):
        load_corpus("folder", root, label_regex=r"^(?P<lab>[a-z]+)")
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        load_corpus("folder", root, label_regex="(unclosed")
    # only_ids and group_by (what cross-validation and one-speaker corpora use)
    few = load_corpus("folder", root, label_regex=REGEX, only_ids=["AB_sad1", "CD_fear0"],
                      group_by="item")
    assert sorted(r.id for r in few.records) == ["AB_sad1", "CD_fear0"]
    assert {r.group for r in few.records} == {"item:AB_sad1", "item:CD_fear0"}
    assert {r.speaker for r in few.records} == {"AB", "CD"}


def _rec(i: int, label: str, speaker: str | None) -> Record:
    return Record(id=f"r{i}", corpus="folder", label_native=label, label=label, speaker=speaker)


def test_cv_splits_name_what_they_measure() -> None:
    recs = [_rec(i, ("happy", "sad")[i % 2], f"s{i % 4}") for i in range(24)]
    splits, protocol, dep = cv_splits(recs, "loso")
    assert len(splits) == 4 and dep is False and "leave-one-speaker-out" in protocol
    splits, protocol, dep = cv_splits(recs, "group-kfold", k=2)
    assert len(splits) == 2 and dep is False
    for s in splits:  # no speaker on both sides
        assert not {recs[int(i[1:])].speaker for i in s.train} & \
            {recs[int(i[1:])].speaker for i in s.test}
    splits, protocol, dep = cv_splits(recs, "kfold", k=3)
    assert len(splits) == 3 and dep is True and "speaker-dependent" in protocol
    _, protocol, dep = cv_splits([_rec(i, ("happy", "sad")[i % 2], None) for i in range(12)],
                                 "kfold", k=3)
    assert dep is None and "speakers unknown" in protocol
    one = [_rec(i, ("happy", "sad")[i % 2], "solo") for i in range(12)]
    warned: list[str] = []
    splits, protocol, dep = cv_splits(one, "loso", speaker_dependent=True, warn=warned.append)
    assert protocol == WITHIN_SPEAKER and dep is True and warned and len(splits) == 5
    with pytest.raises(DataError, match="at least 3 speakers"):
        cv_splits([_rec(i, ("happy", "sad")[i % 2], f"s{i % 2}") for i in range(12)], "loso")
    with pytest.raises(DataError, match="needs a speaker for every item"):
        cv_splits([_rec(i, "happy" if i % 2 else "sad", None) for i in range(12)], "loso")
    with pytest.raises(DataError, match="fewer than the 5 folds"):
        cv_splits(recs[:8], "kfold", k=5)
    with pytest.raises(ConfigError, match="--folds does not apply"):
        cv_splits(recs, "loso", k=3)
    with pytest.raises(ConfigError, match="--cv must be one of"):
        cv_splits(recs, "bootstrap")


@needs_exe
def test_cli_usage_mistakes_are_one_line_exit_2(tmp_path: Path) -> None:
    root = _flat_texts(tmp_path / "flat")
    base = ["train", "--data", str(root), "--modality", "text", "--out", str(tmp_path / "m")]
    line = _one_line_error(_emofuse(*base, "--label-regex", "^(?P<label>[a-z]+"))
    assert "not a valid regular expression" in line
    line = _one_line_error(_emofuse(*base, "--label-regex", r"^(?P<lab>[a-z]+)"))
    assert "no named group 'label'" in line
    line = _one_line_error(_emofuse(*base))           # flat folder, no --label-regex
    assert "--label-regex" in line and "directly in the folder" in line
    line = _one_line_error(_emofuse(*base, "--label-regex", REGEX, "--cv", "bootstrap"))
    assert "--cv must be one of" in line
    line = _one_line_error(_emofuse(*base, "--label-regex", REGEX, "--cv", "loso",
                                    "--folds", "3"))
    assert "--folds does not apply" in line
    line = _one_line_error(_emofuse(*base, "--label-regex", r"^(?P<label>zzz)"))
    assert "no file name matches" in line
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
@needs_exe
def test_flat_text_folder_loso_cv_report_then_predict(tmp_path: Path) -> None:
    root = _flat_texts(tmp_path / "flat")
    out = tmp_path / "model"
    r = _emofuse("train", "--data", str(root), "--modality", "text", "--label-regex", REGEX,
                 "--cv", "loso", "--out", str(out), "--quick")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    skipped = [ln for ln in r.stderr.splitlines() if ln.startswith("skipped: ")]
    assert len(skipped) == 2 and all("does not match label_regex" in ln for ln in skipped)
    assert {Path(ln.split(": ")[1]).name for ln in skipped} == {"README.txt", "AB_happy.txt"}
    assert "cross-validation, leave-one-speaker-out" in r.stdout and "UA per fold" in r.stdout
    assert {p.name for p in out.iterdir()} >= {"cv.json", "cv.md", "cv-confusion.png",
                                               "card.json", "model.safetensors"}
    cv = json.loads((out / "cv.json").read_text())
    assert cv["classes"] == ["happy", "sad", "angry", "fear"]
    for k in ("ua", "wa", "macro_f1"):
        m = cv["metrics"][k]
        assert len(m["per_fold"]) == 3 and 0 <= m["mean"] <= 1 and m["std"] >= 0
    assert set(cv["per_class"]) == set(cv["classes"]) and "recall" in cv["per_class"]["sad"]
    assert np.asarray(cv["confusion"]).shape == (4, 4) and np.sum(cv["confusion"]) == 36
    assert [f["test_speakers"] for f in cv["folds"]] == [["AB"], ["CD"], ["EF"]]
    assert cv["speaker_dependent"] is False and cv["confusion_png"] == "cv-confusion.png"
    assert "## Metrics" in (out / "cv.md").read_text()
    assert (out / "cv-confusion.png").read_bytes()[:4] == b"\x89PNG"
    card = json.loads((out / "card.json").read_text())
    assert card["cv"]["protocol"] == cv["protocol"] and card["cv"]["folds"] == 3
    assert card["cv"]["metrics"]["ua"]["mean"] == pytest.approx(cv["metrics"]["ua"]["mean"])
    assert card["metrics"]["cv_ua"] == pytest.approx(cv["metrics"]["ua"]["mean"])
    assert card["speaker_dependent"] is False and card["data"]["speakers"] == 3
    assert card["data"]["files_skipped"] == 2
    p = runner.invoke(app, ["predict", "--json", "--model", str(out), "--text", "so lonely"])
    assert p.exit_code == 0, p.output


@pytest.mark.slow
@needs_exe
def test_one_speaker_face_folder_is_flagged_speaker_dependent(tmp_path: Path) -> None:
    root = _flat_faces(tmp_path / "me", ("me",))
    out = tmp_path / "model"
    r = _emofuse("train", "--data", str(root), "--modality", "face", "--label-regex",
                 r"^(?P<speaker>[a-z]+)-(?P<label>[a-z]+)-\d", "--cv", "loso", "--out",
                 str(out), "--quick")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning: ")]
    assert any("one speaker only (me)" in w and WITHIN_SPEAKER in w for w in warnings)
    card = json.loads((out / "card.json").read_text())
    assert card["protocol"]["kind"] == WITHIN_SPEAKER and card["speaker_dependent"] is True
    assert "stratified by label" in card["protocol"]["validation"]
    cv = json.loads((out / "cv.json").read_text())
    assert cv["protocol"] == WITHIN_SPEAKER and cv["speaker_dependent"] is True
    assert len(cv["folds"]) == 3  # 3 items per class: 3 folds, not 5
    assert card["cv"]["protocol"] == WITHIN_SPEAKER
    assert "Speaker-dependent" in (out / "cv.md").read_text()


@pytest.mark.slow
@needs_exe
def test_bench_config_runs_any_corpus_and_protocol(tmp_path: Path) -> None:
    root = _flat_faces(tmp_path / "faces", ("p1", "p2", "p3"))
    cfg = tmp_path / "my-faces.yaml"
    cfg.write_text(yaml.safe_dump({
        "suite": "my-faces", "task": {"modality": "face"},
        "data": {"corpus": "folder", "root": str(root),
                 "options": {"label_regex": r"^(?P<speaker>p\d)-(?P<label>[a-z]+)-"}},
        "protocol": {"kind": "loso"},
        "features": {"name": "face_crop", "params": {"side": 48, "detector": "yunet"}},
        "model": {"name": "mini_xception"},
        "train": {"max_epochs": 2, "seeds": [0], "num_threads": 1},
        "output": {"results": str(tmp_path / "results")}}))   # where bench writes, no --results
    results = tmp_path / "results"
    r = _emofuse("bench", "--config", str(cfg), "--quick")
    _no_traceback(r)
    assert r.returncode == 0, r.stderr
    res = json.loads((results / "my-faces-quick.json").read_text())
    assert res["suite"] == "my-faces-quick" and res["corpus"] == "folder"
    assert res["protocol"] == "leave-one-speaker-out" and len(res["metrics"]["ua"]["per_fold"]) == 3
    assert (results / "my-faces-quick.md").is_file() and (results / "my-faces-quick.png").is_file()
    # a protocol that leaks is refused unless the config allows it
    cfg.write_text(cfg.read_text().replace("kind: loso", "kind: random"))
    line = _one_line_error(_emofuse("bench", "--config", str(cfg), "--results", str(results),
                                    "--quick"))
    assert "allow_leak" in line


def test_text_manifest_split_is_checked_before_any_training(tmp_path: Path) -> None:
    from emofuse.recipes.own_data import prepare

    manifest = tmp_path / "texts.csv"
    rows = ["text,label,speaker,split"] + [
        f"line {i} {('so happy', 'so sad')[i % 2]},{('joy', 'sadness')[i % 2]},s{i % 3},"
        f"{('train', 'test')[i % 4 == 0]}" for i in range(12)]
    manifest.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="'split' column cannot be used: .*leaks"):
        prepare(manifest, "text", out_dir=tmp_path / "m")
    disjoint = manifest.read_text().replace(",s0,train", ",s0,dev").replace(",s0,test", ",s0,dev")
    manifest.write_text(disjoint.replace(",s1,test", ",s1,train").replace(",s2,train", ",s2,test"))
    own = prepare(manifest, "text", out_dir=tmp_path / "m")
    assert own.own_split and own.protocol["kind"] == "the manifest's split"
    assert own.protocol["speaker_dependent"] is False
