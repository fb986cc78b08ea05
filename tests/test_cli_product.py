"""``emofuse predict`` and ``emofuse export`` (``serve`` is tested through the app)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emofuse.cli import app
from emofuse.errors import EmofuseError

from ._tiny_models import make_bundle, write_wav

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("models"))


@pytest.fixture()
def folder(tmp_path) -> Path:
    d = tmp_path / "inputs"
    shutil.copytree(EXAMPLES, d)
    (d / "nested").mkdir()
    write_wav(d / "nested" / "tone.wav", 1.0)
    (d / "nested" / "broken.wav").write_text("not audio at all\n")
    return d


@pytest.fixture(autouse=True)
def _wide(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # whole file names in the tables


def _run(*args: str):
    return runner.invoke(app, list(args))


def test_predict_folder_table_reports_and_skips_bad_file(bundle, folder):
    r = _run("predict", str(folder), "-m", str(bundle))
    assert r.exit_code == 1, r.output  # one file failed: exit code 1
    for name in ("face.jpg", "speech.flac", "video.mp4", "sentence.txt", "tone.wav"):
        assert name in r.output
    assert "broken.wav" in r.output and "holds text" in r.output
    assert "ATTRIBUTION" not in r.output  # markdown is not an input
    assert "5 predicted, 1 skipped" in r.output


def test_predict_json_and_jsonl(bundle, folder):
    r = _run("predict", str(folder / "speech.flac"), "--text", "What a day!", "-m", str(bundle),
             "--json")
    docs = json.loads(r.stdout)
    assert [d["kind"] for d in docs] == ["audio", "text"]
    assert docs[1]["source"] == '"What a day!"'
    r = _run("predict", str(folder), "-m", str(bundle), "--jsonl")
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.strip()]
    assert len(lines) == 6 and sum("error" in d for d in lines) == 1
    assert {d["kind"] for d in lines if "kind" in d} == {"audio", "image", "video", "text"}


def test_predict_text_file_and_latency(bundle, tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("I love this\n\nThis is terrible\n")
    r = _run("predict", "--text-file", str(f), "-m", str(bundle), "--json", "--repeat", "3")
    docs = json.loads(r.stdout)
    assert len(docs) == 2 and all(d["latency_ms"] > 0 for d in docs)


def test_predict_timeline_with_plot(bundle, folder, tmp_path):
    png = tmp_path / "t.png"
    r = _run("predict", str(folder / "video.mp4"), "-m", str(bundle), "--timeline",
             "--plot", str(png))
    assert r.exit_code == 0, r.output
    assert "timeline of video.mp4" in r.output and png.read_bytes()[:4] == b"\x89PNG"
    r = _run("predict", str(folder / "speech.flac"), str(folder / "video.mp4"), "-m",
             str(bundle), "--timeline", "--segmentation", "windows", "--plot", str(tmp_path / "p"))
    assert (tmp_path / "p" / "speech_timeline.png").is_file()
    assert (tmp_path / "p" / "video_timeline.png").is_file()


def test_predict_exit_code_when_nothing_succeeds(bundle, folder):
    r = _run("predict", str(folder / "nested" / "broken.wav"), "-m", str(bundle))
    assert r.exit_code == 2 and "holds text" in r.output
    r = _run("predict", "-m", str(bundle))
    assert isinstance(r.exception, EmofuseError) and "nothing to predict" in str(r.exception)


def test_predict_without_models_says_what_to_do(tmp_path, monkeypatch, folder):
    monkeypatch.setenv("EMOFUSE_MODELS", str(tmp_path / "empty"))
    r = _run("predict", str(folder / "speech.flac"))
    assert isinstance(r.exception, EmofuseError) and "make models" in str(r.exception)


def test_export_command(bundle, tmp_path):
    r = _run("export", "--model", str(bundle / "speech"), "--out", str(tmp_path / "x"), "--json")
    assert r.exit_code == 0, r.output
    (rep,) = json.loads(r.stdout)
    assert rep["ok"] and rep["max_abs_diff"] <= 1e-4
    assert (tmp_path / "x" / "speech.onnx").is_file()
    r = _run("export", "--model", str(bundle), "--format", "tflite")
    assert isinstance(r.exception, EmofuseError) and "supported: onnx" in str(r.exception)


def test_commands_are_registered():
    r = _run("--help")
    for cmd in ("predict", "serve", "export"):
        assert cmd in r.output
    assert "--max-upload-mb" in _run("serve", "--help").output


def test_quiet_does_not_leak_into_the_next_invocation(bundle, folder):
    """``-q`` of one in-process run must not silence the next (CI order once hid the summary)."""
    r = _run("-q", "predict", str(folder), "-m", str(bundle))
    assert r.exit_code == 1 and "predicted," not in r.stderr  # errors only
    r = _run("predict", str(folder), "-m", str(bundle))
    assert r.exit_code == 1 and "5 predicted, 1 skipped" in r.output
