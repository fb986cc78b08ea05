"""The installed ``emofuse`` executable, run as a user runs it: exit codes, one-line errors,
no tracebacks, and a fuzz suite of 200+ malformed inputs in one batch."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXE = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or shutil.which("emofuse")

pytestmark = pytest.mark.skipif(EXE is None, reason="the emofuse executable is not installed "
                                                    "(pip install -e .)")


def _run(*args: str, stdin: bytes | None = None, cwd: Path | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    return subprocess.run([EXE, *args], input=stdin, capture_output=True, timeout=timeout,
                          cwd=cwd, env=env)


def _assert_one_line_error(r: subprocess.CompletedProcess, code: int = 2) -> str:
    err = r.stderr.decode()
    assert r.returncode == code, (r.returncode, err, r.stdout.decode()[:500])
    assert "Traceback" not in err and "Traceback" not in r.stdout.decode()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


USAGE_MISTAKES = [
    ["nosuchcmd"],
    ["predict", "--bogus"],
    ["predict", "-x", "file.wav"],
    ["predict", "-face.jpg"],
    ["predict", "--window", "0", "--text", "hi"],
    ["predict", "--window", "-1", "--text", "hi"],
    ["predict", "--window", "nan", "--text", "hi"],
    ["predict", "--window", "inf", "--text", "hi"],
    ["predict", "--window", "0.0001", "--text", "hi"],
    ["predict", "--window", "abc", "--text", "hi"],
    ["predict", "--threads", "0", "--text", "hi"],
    ["predict", "--threads", "-1", "--text", "hi"],
    ["predict", "--threads", "100000", "--text", "hi"],
    ["predict", "--frame-rate", "0", "--text", "hi"],
    ["predict", "--frame-rate", "nan", "--text", "hi"],
    ["predict", "--repeat", "-1", "--text", "hi"],
    ["predict", "-q", "-v", "--text", "hi"],
    ["predict", "--plot", "x.png", "--text", "hi"],
    ["predict", "--segmentation", "magic", "--text", "hi"],
    ["predict", "--json", "--jsonl", "--text", "hi"],
    ["predict"],
    ["predict", "-q"],
    ["serve", "--port", "70000"],
    ["serve", "--workers", "0"],
    ["serve", "--timeout", "nan"],
    ["serve", "--threads", "100000"],
    ["data", "folds", "--corpus", "savee", "--k", "1"],
    ["data", "scan"],
    ["data", "scan", "--corpus", "nosuchcorpus"],
    ["bench", "nosuchsuite"],
    ["config", "validate"],
    ["train"],
    ["evaluate", "--corpus", "savee"],
    ["export", "--opset", "1"],
]


@pytest.mark.parametrize("args", USAGE_MISTAKES, ids=lambda a: " ".join(a) or "<none>")
def test_usage_mistakes_exit_2_with_one_line(args, tmp_path):
    line = _assert_one_line_error(_run(*args, cwd=tmp_path))
    assert len(line) < 1000


def test_no_arguments_prints_help_and_exits_2():
    r = _run()
    assert r.returncode == 2 and b"Usage" in r.stdout and b"Traceback" not in r.stderr
    assert b"Exit codes" in r.stdout


def test_version_and_help_exit_0():
    assert _run("--version").returncode == 0
    r = _run("predict", "--help")
    assert r.returncode == 0 and b"--quiet" in r.stdout


def test_nothing_predicted_exits_2_and_names_every_file(tmp_path):
    (tmp_path / "t.mp4").write_text("<html>404</html>\n")
    r = _run("predict", str(tmp_path / "missing.wav"), str(tmp_path / "t.mp4"))
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    assert "missing.wav: file does not exist" in err and "t.mp4" in err and "holds text" in err


def test_empty_text_exits_2():
    r = _run("predict", "--text", "")
    assert r.returncode == 2 and b"nothing to predict" in r.stderr


def test_partial_failure_exits_1_and_stdin_text(tmp_path):
    """One good input and one missing file: exit 1; ``-`` reads text lines from stdin."""
    r = _run("predict", "-", str(tmp_path / "missing.wav"), "--jsonl", "-q",
             stdin="I am so happy today\n\n".encode("utf-16"))
    assert r.returncode == 1, r.stderr.decode()
    docs = [json.loads(x) for x in r.stdout.decode().splitlines()]
    assert {d.get("kind") for d in docs} == {"text", None}
    assert any("does not exist" in d.get("error", "") for d in docs)


def test_text_files_in_other_encodings(tmp_path):
    (tmp_path / "latin1.txt").write_bytes("Je suis très heureux, café\n".encode("latin-1"))
    (tmp_path / "utf16.txt").write_bytes("I am furious\n".encode("utf-16"))
    (tmp_path / "utf16le.txt").write_bytes("I am scared\n".encode("utf-16-le"))
    r = _run("predict", str(tmp_path), "--jsonl")
    assert r.returncode == 0, r.stderr.decode()
    assert len(r.stdout.decode().splitlines()) == 3
    # a decoding notice is one line naming the file, not Python's warning with its source line
    (tmp_path / "bad.txt").write_bytes(b"caf\xc3 ist toll\n\xff\xfe\xfd broken\n")
    r = _run("predict", "--text-file", str(tmp_path / "bad.txt"), "--jsonl")
    err = r.stderr.decode()
    assert r.returncode == 0, err
    notes = [ln for ln in err.splitlines() if "bad.txt" in ln]
    assert notes and all(ln.startswith("warning: ") for ln in notes), err
    assert "UserWarning" not in err and "media/text.py" not in err


def test_broken_link_in_a_folder_is_reported(tmp_path):
    (tmp_path / "note.txt").write_text("I am so happy today\n", encoding="utf-8")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    r = _run("predict", str(tmp_path), "--jsonl", "-q")
    err = r.stderr.decode()
    assert r.returncode == 1 and "gone.wav: broken symbolic link" in err, err
    assert len(r.stdout.decode().splitlines()) == 2


def test_long_text_file_warnings_in_reading_order(tmp_path):
    """The reader's cut (20000 characters) comes before the model's (5000), once each."""
    (tmp_path / "long.txt").write_text("I am so happy today! " * 2000, encoding="utf-8")
    r = _run("predict", str(tmp_path / "long.txt"), "--json")
    assert r.returncode == 0, r.stderr.decode()
    warns = json.loads(r.stdout.decode())[0]["warnings"]
    assert warns[:2] == ["text of 41999 characters truncated to 20000",
                         "text of 20000 characters truncated to the first 5000"], warns


# -- fuzz: 200+ malformed inputs in one batch --------------------------------------------------

def _wav_bytes(y: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, y, sr, format="WAV", subtype=subtype)
    return buf.getvalue()


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
            + struct.pack(">I", zlib.crc32(chunk)))


NO_SIGNAL = ("noise.wav", "tone.wav", "dc.wav", "random_pcm.wav", "chirp.wav", "silence.wav")


def make_fuzz_corpus(d: Path, seed: int = 0) -> list[Path]:
    """Write 200+ malformed or hostile inputs (all generated here) and return their paths."""
    rng = np.random.default_rng(seed)
    sr = 16000
    t = np.arange(2 * sr) / sr
    speech = sf.read(EXAMPLES / "speech.flac", dtype="float32")[0]
    bases = {
        "speech.wav": _wav_bytes(speech, sr),
        "speech.flac": (EXAMPLES / "speech.flac").read_bytes(),
        "face.jpg": (EXAMPLES / "face.jpg").read_bytes(),
        "video.mp4": (EXAMPLES / "video.mp4").read_bytes(),
        "sentence.txt": (EXAMPLES / "sentence.txt").read_bytes(),
    }
    files: dict[str, bytes] = {}
    # signals without speech
    files["noise.wav"] = _wav_bytes(rng.normal(0, 0.3, 2 * sr), sr)
    files["tone.wav"] = _wav_bytes(0.5 * np.sin(2 * np.pi * 440 * t), sr)
    files["dc.wav"] = _wav_bytes(np.full(2 * sr, 0.5), sr)
    files["silence.wav"] = _wav_bytes(np.zeros(2 * sr), sr)
    files["random_pcm.wav"] = _wav_bytes(rng.uniform(-1, 1, 2 * sr), sr)
    files["chirp.wav"] = _wav_bytes(0.5 * np.sin(2 * np.pi * (200 + 400 * t) * t), sr)
    # odd but valid audio
    y = speech.copy()
    y[100:300] = np.nan
    y[500] = np.inf
    y[600:700] = 1e30
    files["nonfinite_float.wav"] = _wav_bytes(y, sr, "FLOAT")
    files["huge_float.wav"] = _wav_bytes(speech * 1e6, sr, "FLOAT")
    files["all_nan_float.wav"] = _wav_bytes(np.full(2 * sr, np.nan), sr, "FLOAT")
    files["one_hz_header.wav"] = _wav_bytes(rng.normal(0, 0.3, 4800), 1)
    files["ten_hz_header.wav"] = _wav_bytes(rng.normal(0, 0.3, 4800), 10)
    files["tiny_0.01s.wav"] = _wav_bytes(speech[:160], sr)
    files["one_sample.wav"] = _wav_bytes(speech[:1], sr)
    files["u8.wav"] = _wav_bytes(speech, sr, "PCM_U8")
    files["pcm24.wav"] = _wav_bytes(speech, sr, "PCM_24")
    files["pcm32.wav"] = _wav_bytes(speech, sr, "PCM_32")
    files["stereo.wav"] = _wav_bytes(np.stack([speech, -speech], 1), sr)
    files["six_channels.wav"] = _wav_bytes(np.repeat(speech[:, None], 6, 1), sr)
    files["8khz.wav"] = _wav_bytes(speech[::2], 8000)
    files["header_only.wav"] = _wav_bytes(speech, sr)[:44]
    files["wav_named.mp3"] = _wav_bytes(speech, sr)
    # hostile images
    files["huge_header.png"] = _png_header(100_000, 100_000) + b"\x00" * 64
    files["zero_size_header.png"] = _png_header(0, 0)
    files["15000_header.png"] = _png_header(15_000, 15_000)
    files["text.png"] = b"this is not a picture\n" * 10
    files["one_pixel.png"] = _one_pixel_png()
    # text oddities
    files["control_chars.txt"] = bytes(range(1, 32)) * 3
    files["binary.txt"] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    files["empty_lines.txt"] = b"\n\n   \n\t\n"
    files["one_letter.txt"] = b"a\n"
    files["emoji.txt"] = "\U0001f600\U0001f622\n".encode()
    files["latin1.txt"] = "tr\xe8s content, caf\xe9\n".encode("latin-1")
    files["utf16.txt"] = "I am so angry right now\n".encode("utf-16")
    files["long_line.txt"] = b"happy " * 200_000
    files["[red]markup[-red].txt"] = b"rich markup in the name\n"
    files["unicode \u00e9\u00e8 name.txt"] = "un nom bizarre\n".encode()
    # containers that lie
    files["html.mp4"] = b"<html><body>404 Not Found</body></html>\n"
    files["random.mp4"] = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    files["random.wav"] = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    files["random.jpg"] = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    files["random.flac"] = rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    files["random.ogg"] = b"OggS" + rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()
    files["empty.wav"] = b""
    files["empty.jpg"] = b""
    files["empty.mp4"] = b""
    files["empty.txt"] = b""
    vid = bases["video.mp4"]
    moov = vid.find(b"moov")
    files["damaged_moov.mp4"] = vid[: moov + 8] + b"\x00" * 400 + vid[moov + 408:]
    files["moov_renamed.mp4"] = vid.replace(b"moov", b"free", 1)
    # mutations of every valid base: cuts and flipped bytes
    for name, data in bases.items():
        stem, ext = name.rsplit(".", 1)
        for frac in (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99):
            files[f"{stem}_cut{int(frac * 100):02d}.{ext}"] = data[: max(1, int(len(data) * frac))]
        for k in range(20):
            b = bytearray(data)
            pos = rng.integers(0, len(b), size=int(rng.integers(1, 64)))
            for p in pos:
                b[p] = int(rng.integers(0, 256))
            files[f"{stem}_flip{k:02d}.{ext}"] = bytes(b)
        files[f"{stem}_zero_head.{ext}"] = b"\x00" * 64 + data[64:]
        files[f"{stem}_doubled.{ext}"] = data + data
    # content under another kind's name
    files["face_named.wav"] = bases["face.jpg"]
    files["speech_named.jpg"] = bases["speech.flac"]
    files["video_named.png"] = bases["video.mp4"]
    files["speech_named.mp4"] = bases["speech.wav"]
    files["face_named.mp4"] = bases["face.jpg"]
    d.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (d / name).write_bytes(data)
    return sorted(d / n for n in files)


def _one_pixel_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (200, 100, 50)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_fuzz_batch_no_traceback_every_file_reported(tmp_path):
    files = make_fuzz_corpus(tmp_path / "fuzz")
    assert len(files) >= 200
    t0 = time.perf_counter()
    r = _run("predict", str(tmp_path / "fuzz"), "--jsonl", "--threads", "1", timeout=600)
    seconds = time.perf_counter() - t0
    err, out = r.stderr.decode(), r.stdout.decode()
    assert "Traceback" not in err and "Traceback" not in out
    assert r.returncode == 1, err[-2000:]  # some inputs failed, the others were predicted
    docs = [json.loads(line) for line in out.splitlines()]
    by_name: dict[str, dict] = {}
    for d in docs:
        by_name[Path(d["source"]).name] = d
    # every file (the walker skips none of these extensions) has exactly one result
    assert sorted(by_name) == sorted(f.name for f in files), set(f.name for f in files) ^ set(by_name)
    internal = [d for d in docs if d.get("error_type") == "InternalError"]
    assert not internal, internal[:3]
    for d in docs:
        if "error" in d:
            assert Path(d["source"]).name in d["error"] or d["source"] in d["error"], d
            assert str(tmp_path) not in d["error"] or d["source"].startswith(str(tmp_path))
    assert "silent" in by_name["silence.wav"]["error"]  # digital silence is refused outright
    for name in NO_SIGNAL[:-1]:
        d = by_name[name]
        assert "error" not in d and d["reliable"] is False, d
        assert any("no speech detected" in w for w in d["warnings"]), d
    assert "error" in by_name["one_hz_header.wav"]
    assert "sample rate" in by_name["one_hz_header.wav"]["error"]
    assert "error" in by_name["huge_header.png"] and "error" in by_name["15000_header.png"]
    assert by_name["one_letter.txt"]["reliable"] is False
    assert "error" not in by_name["nonfinite_float.wav"]
    assert "every sample is NaN or infinity" in by_name["all_nan_float.wav"]["error"]
    assert seconds < 300, seconds


@pytest.mark.slow
def test_jobs_gives_the_same_answers_in_order(tmp_path):
    one = _run("predict", str(EXAMPLES), "--jsonl", "-q")
    two = _run("predict", str(EXAMPLES), "--jsonl", "-q", "--jobs", "2")
    assert one.returncode == two.returncode == 0, two.stderr.decode()
    a = [json.loads(x) for x in one.stdout.decode().splitlines()]
    b = [json.loads(x) for x in two.stdout.decode().splitlines()]
    assert [d["source"] for d in a] == [d["source"] for d in b]
    for x, y in zip(a, b):
        assert x["label"] == y["label"]
        assert x["probabilities"] == pytest.approx(y["probabilities"], abs=1e-4)
    bad = _run("predict", str(EXAMPLES), "--jobs", "0")
    assert bad.returncode == 2 and b"--jobs" in bad.stderr


def test_examples_ship_inside_the_package():
    import emofuse

    pkg = Path(emofuse.__file__).parent / "examples"
    assert {p.name for p in pkg.iterdir()} >= {"speech.flac", "face.jpg", "video.mp4",
                                               "sentence.txt", "ATTRIBUTION.md"}


def test_command_lists_one_summary_line_each():
    """The command lists give each command the first paragraph of its docstring as one line
    (wrapped only at the terminal's width), not the docstring's own line breaks."""
    r = _run("augment", "--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "write Griffin-Lim WAV clips" in text        # "Griffin-Lim\nWAV" before
    assert "prosody set per emotion" in text
    r = _run("--help")
    assert "(--config FILE), and write its results" in r.stdout.decode()


def test_text_in_another_language_is_predicted_but_unreliable(tmp_path):
    (tmp_path / "pl.txt").write_text("Jestem bardzo szczęśliwy, że cię dzisiaj widzę.",
                                     encoding="utf-8")
    (tmp_path / "en.txt").write_text("I am so happy to see you again today.", encoding="utf-8")
    r = _run("predict", str(tmp_path), "--jsonl")
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    docs = {Path(d["source"]).name: d for d in map(json.loads, r.stdout.decode().splitlines())}
    assert docs["pl.txt"]["reliable"] is False
    assert any(w.startswith("not English?") for w in docs["pl.txt"]["warnings"])
    assert docs["en.txt"]["reliable"] is True and docs["en.txt"]["warnings"] == []
