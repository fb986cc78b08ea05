"""``emofuse predict --enrol DIR`` and ``--adapt folder``: speech standardised with a speaker's
or the inputs' own unlabelled statistics (models of kind ``adaptive``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emofuse.cli import app
from emofuse.inference import Recognizer

from ._tiny_models import make_adaptive_speech, make_bundle, write_wav

runner = CliRunner()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return make_adaptive_speech(tmp_path_factory.mktemp("adaptive") / "speech")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("clips")
    for i, f in enumerate((180.0, 220.0, 330.0, 440.0)):
        write_wav(d / f"c{i}.wav", 1.0, freq=f)
    (d / "notes.txt").write_text("not audio, and not used for statistics\n")
    return d


def _probs(args: list[str]) -> dict[str, dict[str, float]]:
    r = runner.invoke(app, ["predict", *args, "--jsonl"])
    assert r.exit_code == 0, r.output
    return {Path(d["source"]).name: d["probabilities"]
            for d in map(json.loads, r.stdout.splitlines()) if d.get("kind") == "audio"}


def test_adapt_folder_and_enrol_change_speech(model, clips, tmp_path) -> None:
    wavs = [str(p) for p in sorted(clips.glob("*.wav"))]
    base = _probs([*wavs, "-m", str(model)])
    folder = _probs([*wavs, "-m", str(model), "--adapt", "folder"])
    enrol_dir = tmp_path / "speaker"
    enrol_dir.mkdir()
    write_wav(enrol_dir / "a.wav", 1.5, freq=200.0)
    write_wav(enrol_dir / "b.wav", 0.8, freq=260.0)
    (enrol_dir / "broken.wav").write_text("no audio here")
    enrol = _probs([*wavs, "-m", str(model), "--enrol", str(enrol_dir)])
    assert set(base) == set(folder) == set(enrol) == {Path(w).name for w in wavs}
    for name in base:
        for got in (folder[name], enrol[name]):
            assert abs(sum(got.values()) - 1) < 1e-3
            assert max(abs(got[c] - base[name][c]) for c in got) > 1e-4   # statistics used
    # worker processes (--jobs) get the same statistics ready-made
    from emofuse.cli_product import _WORKER, _speech_stats, _worker_init
    from emofuse.inference import PredictOptions

    stats = _speech_stats([str(model)], [Path(w) for w in wavs], enrol=None, adapt="folder")
    _worker_init([str(model)], PredictOptions(), False, stats)
    got = _WORKER.pop("rec").predict(wavs[0]).probabilities
    assert max(abs(got[c] - folder[Path(wavs[0]).name][c]) for c in got) < 1e-6


def test_recognizer_adapt_speech(model, clips) -> None:
    rec = Recognizer.load(str(model))
    wav = clips / "c0.wav"
    before = rec.predict(wav).probabilities
    assert rec.adapt_speech(sorted(clips.glob("*.wav")), mode="folder") == 4
    after = rec.predict(wav).probabilities
    assert after != before
    # a model that does not adapt: nothing changes, 0 recordings used
    plain = Recognizer.load(str(make_bundle(clips.parent / "bundle", fusion=False) / "speech"))
    assert plain.adapt_speech([wav]) == 0


def test_adapt_usage_errors(model, clips, tmp_path) -> None:
    """Through the installed executable: exit 2 and one error line each."""
    from .test_cli_exit_codes import EXE, _assert_one_line_error, _run

    if EXE is None:
        pytest.skip("the emofuse executable is not installed (pip install -e .)")
    line = _assert_one_line_error(_run("predict", str(clips), "-m", str(model), "--adapt",
                                       "folder", "--enrol", str(clips)))
    assert "choose one of --enrol and --adapt" in line
    line = _assert_one_line_error(_run("predict", str(clips), "-m", str(model), "--adapt",
                                       "speaker"))
    assert "must be one of none, folder" in line
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.txt").write_text("hello there")
    line = _assert_one_line_error(_run("predict", str(clips), "-m", str(model), "--enrol",
                                       str(empty)))
    assert "no audio or video recordings" in line
    line = _assert_one_line_error(_run("predict", str(clips), "-m", "face", "--adapt",
                                       "folder"))
    assert "need a speech model" in line
    from emofuse.cli_product import _speech_stats
    from emofuse.errors import EmofuseError

    bundle = make_bundle(tmp_path / "bundle", fusion=False)
    with pytest.raises(EmofuseError, match="does not adapt"):
        _speech_stats([str(bundle / "speech")], [clips / "c0.wav"], enrol=None, adapt="folder")
