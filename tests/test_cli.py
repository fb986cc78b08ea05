"""The command line: real-corpus scans with the figures the project promises, bad folders,
clear errors."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from emofuse.cli import main

EXPECTED = {
    # corpus: (items, speakers or None, number of classes, splits or None)
    "ravdess": (1440, 24, 8, None),
    "savee": (480, 4, 7, None),
    "fer2013": (35887, None, 7, {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}),
    "meld": (13708, None, 7, {"train": 9989, "dev": 1109, "test": 2610}),
    "goemotions": (54263, None, 28, {"train": 43410, "dev": 5426, "test": 5427}),
    "dair": (20000, None, 6, {"train": 16000, "dev": 2000, "test": 2000}),
}


def _scan_json(capsys, *args):
    with pytest.raises(SystemExit) as ei:
        main(["data", "scan", *args, "--json"]) or sys.exit(0)
    captured = capsys.readouterr()
    assert ei.value.code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize("corpus", list(EXPECTED))
def test_scan_real_corpora(capsys, shared_data, corpus):
    items, speakers, n_classes, splits = EXPECTED[corpus]
    s = _scan_json(capsys, "--corpus", corpus)
    assert s["items"] == items
    assert len(s["classes"]) == n_classes
    if speakers is not None:
        assert s["speakers"] == speakers
    if splits is not None:
        assert s["splits"] == splits
    assert not [a for a in s["anomalies"] if a["skipped"]], s["anomalies"][:5]
    if corpus == "ravdess":
        assert s["classes"]["neutral"] == 96
        assert all(v == 192 for k, v in s["classes"].items() if k != "neutral")
        assert s["modalities"]["au"] == 1440  # OpenFace AUs joined for every clip
        # the known byte-identical pair of actor 07 is reported, and kept
        assert any("identical content" in a["reason"] for a in s["anomalies"])
    if corpus == "savee":
        assert s["classes"]["n"] == 120 and s["classes"]["a"] == 60


def test_scan_bad_folder_lists_every_problem(capsys, tmp_path):
    actor = tmp_path / "Actor_01"
    actor.mkdir()
    rng = np.random.default_rng(0)
    good = ["03-01-01-01-01-01-01.wav", "03-01-05-02-01-01-01.flac"]
    for name in good:
        sf.write(actor / name, rng.normal(0, 0.1, 1600).astype(np.float32), 16000)
    trunc = actor / "03-01-04-01-01-01-01.flac"
    sf.write(trunc, rng.normal(0, 0.1, 48000).astype(np.float32), 48000)
    trunc.write_bytes(trunc.read_bytes()[: trunc.stat().st_size // 2])
    (actor / "03-01-03-01-01-01-01.wav").write_bytes(b"")
    (actor / "03-01-06-01-01-01-01.wav").write_text("I am a text file\n")
    sf.write(actor / "hello.wav", np.zeros(160, np.float32), 16000)
    s = _scan_json(capsys, "--corpus", "ravdess", "--root", str(tmp_path))
    assert s["items"] == 2
    reasons = {a["path"].split("/")[-1]: a["reason"] for a in s["anomalies"] if a["skipped"]}
    assert "truncated" in reasons["03-01-04-01-01-01-01.flac"] or "corrupt" in reasons["03-01-04-01-01-01-01.flac"]
    assert "empty" in reasons["03-01-03-01-01-01-01.wav"]
    assert "text" in reasons["03-01-06-01-01-01-01.wav"]
    assert "name" in reasons["hello.wav"]


def test_scan_of_a_folder_without_items_exits_2(tmp_path):
    (tmp_path / "notes.wav").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "emofuse.cli", "data", "scan", "--corpus",
                        "ravdess", "--root", str(tmp_path), "--json"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and json.loads(r.stdout)["items"] == 0
    assert f"error: {tmp_path}: no ravdess item found (1 file(s) skipped" in r.stderr
    for args in (["data", "folds", "--out", str(tmp_path / "f")],
                 ["evaluate", "--model", "speech"]):
        r = subprocess.run([sys.executable, "-m", "emofuse.cli", *args, "--corpus", "ravdess",
                            "--root", str(tmp_path)], capture_output=True, text=True)
        assert r.returncode == 2 and "no ravdess item found" in r.stderr, (args, r.stderr)


def test_evaluate_a_model_on_a_corpus_of_another_modality(tmp_path):
    """A text model on speech, a face model on audio-only records: one-line errors, exit 2."""
    actor = tmp_path / "Actor_01"
    actor.mkdir()
    rng = np.random.default_rng(0)
    for name in ("03-01-01-01-01-01-01.wav", "03-01-05-02-01-01-01.wav"):
        sf.write(actor / name, rng.normal(0, 0.1, 16000).astype(np.float32), 16000)
    for model, message in (("text", "is a text model but ravdess holds audio, no text"),
                           ("face", "is a face model but ravdess holds audio, no image")):
        r = subprocess.run([sys.executable, "-m", "emofuse.cli", "evaluate", "--model", model,
                            "--corpus", "ravdess", "--root", str(tmp_path)],
                           capture_output=True, text=True)
        assert r.returncode == 2 and message in r.stderr, (model, r.stderr)
        assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert "Traceback" not in r.stderr


def test_errors_are_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "emofuse.cli", "data", "scan", "--corpus", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown corpus 'nope'" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "emofuse.cli", "data", "scan", "--corpus", "ravdess",
                        "--root", str(tmp_path / "missing")], capture_output=True, text=True)
    assert r.returncode == 2 and "does not exist" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_folds_command(tmp_path, shared_data, capsys):
    out = tmp_path / "folds"
    with pytest.raises(SystemExit) as ei:
        main(["data", "folds", "--corpus", "savee", "--protocol", "emobox", "--out", str(out)]) or sys.exit(0)
    assert ei.value.code == 0
    rows = (out / "savee_emobox_folds.csv").read_text().splitlines()
    assert rows[0] == "fold,split,id,label" and len(rows) == 1 + 4 * 480
    # the random split leaks speakers: refused unless asked for explicitly
    with pytest.raises(SystemExit) as ei:
        main(["data", "folds", "--corpus", "savee", "--protocol", "random", "--out", str(out)])
    assert ei.value.code == 2 and "--allow-leak" in capsys.readouterr().err
    # FER2013's official split has duplicate images across usages: refused, then clean when dropped
    with pytest.raises(SystemExit) as ei:
        main(["data", "folds", "--corpus", "fer2013", "--protocol", "official", "--out", str(out)])
    assert ei.value.code == 2 and "content hash" in capsys.readouterr().err
    with pytest.raises(SystemExit) as ei:
        main(["data", "folds", "--corpus", "fer2013", "--protocol", "official", "--drop-duplicates",
              "--out", str(out)]) or sys.exit(0)
    assert ei.value.code == 0


def test_evaluate_face_model_on_a_corpus_without_readable_faces(shared_data):
    """RAVDESS here: audio for every item, a few video samples apart; no record has a face."""
    r = subprocess.run([sys.executable, "-m", "emofuse.cli", "evaluate", "--model", "face",
                        "--corpus", "ravdess"], capture_output=True, text=True)
    assert r.returncode == 2 and "ravdess: no face could be read from its" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
