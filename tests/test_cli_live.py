"""``emofuse live``: the installed executable replaying the examples at real-time speed (and
faster), one JSON update per line, a summary; no devices means one line and exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXE = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or shutil.which("emofuse")

pytestmark = pytest.mark.skipif(EXE is None, reason="the emofuse executable is not installed "
                                                    "(pip install -e .)")


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([EXE, *args], capture_output=True, timeout=timeout, env=env,
                          text=True)


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr, r.stdout[:500])
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.mark.slow
def test_replay_a_file_faster_than_real_time_as_jsonl():
    r = _run("live", "--source", str(EXAMPLES / "speech.flac"), "--speed", "8", "--jsonl")
    assert r.returncode == 0, r.stderr
    ups = [json.loads(line) for line in r.stdout.splitlines()]
    assert ups, r.stderr
    times = [u["time"] for u in ups]
    assert times == sorted(times) and times[-1] == pytest.approx(3.904, abs=0.01)
    last = ups[-1]
    assert last["counters"]["updates"] + last["counters"]["hops_merged"] == 8
    assert last["label"] and set(last["modalities"]) == {"speech"}
    assert any(u["label"] is None for u in ups[:2]) or ups[0]["merged"]  # silence at the start
    assert "live summary" in r.stderr and "3.9 s of stream" in r.stderr


def test_offline_replay_of_a_video_is_the_timeline(capsys):
    from emofuse.cli import run

    assert run(["live", "--source", str(EXAMPLES / "video.mp4"), "--offline", "--jsonl",
                "-q"]) == 0
    captured = capsys.readouterr()
    ups = [json.loads(line) for line in captured.out.splitlines()]
    assert [u["index"] for u in ups] == [1, 2, 3, 4, 5, 6, 7]
    assert {"speech", "face"} <= {m for u in ups for m in u["modalities"]}
    assert ups[-1]["counters"]["frames_processed"] == ups[-1]["counters"]["frames_received"]
    assert "error" not in captured.err


def test_no_microphone_or_camera_is_one_line_and_exit_2():
    from emofuse.cli_live import find_devices

    d = find_devices()
    if d.mic_rate is not None or d.camera is not None:
        d.camera is not None and d.camera.release()
        pytest.skip("this machine has a microphone or a camera")
    line = _one_line_error(_run("live", "--duration", "1"))
    assert "no microphone or camera" in line and "--source FILE" in line


@pytest.mark.parametrize("args, says", [
    (["--speed", "0", "--source", "x.wav"], "--speed"),
    (["--source", "nope.wav"], "does not exist"),
    (["--compare"], "--source"),
    (["--source", str(EXAMPLES / "face.jpg")], "audio or video"),
    (["--no-audio", "--no-video"], "nothing"),
    (["--hop", "nan"], "--hop"),
])
def test_usage_mistakes(args, says):
    assert says in _one_line_error(_run("live", *args, timeout=60))
