"""``emofuse evaluate`` scores the test split by default and says what it scored; a bench
config whose split leaks is refused unless ``allow_leak``, and then named LEAKING."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emofuse.cli import _evaluation_split
from emofuse.corpora import Record
from emofuse.errors import EmofuseError

EXE = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or shutil.which("emofuse")


def _rec(i: int, split: str | None, label: str = "happy") -> Record:
    return Record(id=str(i), corpus="x", label_native=label, label=label, split=split)


def test_default_split_is_the_test_split():
    recs = [_rec(0, "Training"), _rec(1, "PublicTest"), _rec(2, "PrivateTest")]
    kept, name = _evaluation_split(recs, None, corpus="fer2013")
    assert name == "PrivateTest" and [r.id for r in kept] == ["2"]
    recs = [_rec(0, "train"), _rec(1, "dev"), _rec(2, "test"), _rec(3, "test")]
    assert _evaluation_split(recs, None, corpus="meld")[1] == "test"
    assert len(_evaluation_split(recs, "ALL", corpus="meld")[0]) == 4
    assert _evaluation_split(recs, "Dev", corpus="meld")[1] == "dev"
    with pytest.raises(EmofuseError, match="no split 'valid'; its splits: dev, test, train"):
        _evaluation_split(recs, "valid", corpus="meld")
    assert _evaluation_split([_rec(0, None)], None, corpus="savee")[1] == "all"


@pytest.mark.skipif(EXE is None, reason="the emofuse executable is not installed")
def test_evaluate_face_on_a_tiny_fer_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 4)):
        for label in ("happy", "sad"):
            d = tmp_path / split / label
            d.mkdir(parents=True)
            for i in range(n):
                usage = "Training" if split == "train" else ("PrivateTest" if i % 2 else "PublicTest")
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(buf, "JPEG")
                (d / f"{usage}_{label}{i}.jpg").write_bytes(buf.getvalue())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([EXE, "evaluate", "--model", "face", "--corpus", "fer2013", "--root",
                        str(tmp_path), "--json"], capture_output=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    res = json.loads(r.stdout)
    assert res["split"] == "PrivateTest" and res["items"] == 4
    assert res["chance_ua"] == pytest.approx(0.5) and res["classes"] == ["happy", "sad"]


def _cfg(kind: str, allow_leak: bool):
    from emofuse.config import RunConfig

    return RunConfig.model_validate({
        "suite": "leak-check", "task": {"modality": "speech"}, "data": {"corpus": "savee"},
        "protocol": {"kind": kind, "allow_leak": allow_leak}, "features": {"name": "egemaps"},
        "model": {"name": "svm"}})


def _speaker_records() -> list[Record]:
    return [Record(id=f"{s}_{i}", corpus="savee", label_native=lab, label=lab, speaker=s)
            for s in ("DC", "JE", "JK", "KL") for i, lab in enumerate(["angry", "sad"] * 10)]


def test_leaking_split_refused_unless_allowed_and_then_named_leaking():
    from emofuse.errors import LeakageError
    from emofuse.evaluate.results import leaking_result, results_to
    from emofuse.recipes._common import make_splits

    recs = _speaker_records()
    with pytest.raises(LeakageError, match="allow_leak: true"):
        make_splits(_cfg("random", False), recs)
    leaks: list[str] = []
    with results_to("/tmp", leaks):
        make_splits(_cfg("random", True), recs)
    assert leaks and "random" in leaks[0]
    res = leaking_result({"suite": "ser-x", "protocol": "random 80/20"}, leaks)
    assert res["suite"] == "ser-x-LEAKING" and res["protocol"].startswith("LEAKING")
    clean: list[str] = []
    with results_to("/tmp", clean):
        make_splits(_cfg("loso", False), recs)
    assert clean == []


@pytest.mark.slow
@pytest.mark.skipif(EXE is None, reason="the emofuse executable is not installed")
def test_evaluate_warns_when_the_corpus_was_in_training(tmp_path):
    """The bundled speech model was trained on five corpora (card ``ravdess+savee+...``):
    scoring all of SAVEE says so."""
    import soundfile as sf

    from ._tiny_models import speech_samples

    d = tmp_path / "ALL"
    d.mkdir()
    y = speech_samples(32000)
    for name in ("DC_a01", "DC_h01", "JE_a01", "JE_h01"):
        sf.write(str(d / f"{name}.wav"), y, 16000)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([EXE, "evaluate", "--model", "speech", "--corpus", "savee", "--root",
                        str(tmp_path), "--json"], capture_output=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    res = json.loads(r.stdout)
    assert res["split"] == "all" and res["items"] == 4
    assert "trained on ravdess+savee" in res["warning"]
