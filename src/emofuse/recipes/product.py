"""The ``product-latency`` suite: how fast the bundled models answer on a CPU.

* warm latency per modality, one thread, after warm-up: a 3 s speech clip given as an array
  (file decoding excluded), a face image given as an array (detection + alignment +
  classification), one sentence, and the example video file end to end (decoding included);
* cold start: a fresh Python process that imports emofuse, loads the bundled models and
  returns its first prediction, per modality (process start included);
* the size of the bundled models.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import Params, RunConfig
from ..errors import DataError
from ..media.limits import SPEECH_SR
from ._suite import Suite

__all__ = ["ProductLatency", "ProductParams", "product_latency"]


class ProductParams(Params):
    """``model.params`` of ``product-latency`` (a quick run: 3 repeats, 1 cold run, 2 copies)."""

    #: warm predictions measured per input (a fifth of them for the video file)
    repeats: int = Field(default=30, ge=1)
    #: fresh processes per modality for the cold start
    cold_runs: int = Field(default=3, ge=1)
    #: ``emofuse predict --jobs N`` values whose throughput is measured
    jobs: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    #: copies of the four example files in the throughput folder
    copies: int = Field(default=10, ge=1)

_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from emofuse import Recognizer
rec = Recognizer.load("default")
t1 = time.perf_counter()
kind, x = sys.argv[1], sys.argv[2]
rec.predict(x, kind="text") if kind == "text" else rec.predict(x)
print(json.dumps({"load_s": t1 - t0, "first_s": time.perf_counter() - t0}))
"""


def _stats(values: list[float]) -> dict[str, Any]:
    return {"mean": float(statistics.median(values)),
            "std": float(statistics.pstdev(values)) if len(values) > 1 else 0.0,
            "per_fold": [round(float(v), 4) for v in values]}


def _throughput(ex: Path, *, jobs: list[int], copies: int, env: dict[str, str]
                ) -> dict[str, Any]:
    """Inputs per second of ``emofuse predict FOLDER --jobs N`` for each N."""
    import shutil
    import tempfile

    exe = shutil.which("emofuse", path=str(Path(sys.executable).parent)) or "emofuse"
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        n = 0
        for i in range(copies):
            for name in ("speech.flac", "face.jpg", "video.mp4", "sentence.txt"):
                (Path(tmp) / f"{i:03d}_{name}").symlink_to((ex / name).resolve())
                n += 1
        for j in jobs:
            t0 = time.perf_counter()
            proc = subprocess.run([exe, "predict", tmp, "--jsonl", "-q", "--jobs", str(j)],
                                  env=env, capture_output=True, text=True, timeout=1800)
            seconds = time.perf_counter() - t0
            if proc.returncode != 0:
                raise DataError(None, f"predict --jobs {j} failed: {proc.stderr[-500:]}")
            out[f"throughput_jobs{j}_per_s"] = _stats([n / seconds])
    return out


def _examples(cfg: RunConfig) -> Path:
    from ..paths import examples_dir

    root = Path(cfg.data.root) if cfg.data.root else examples_dir()
    if root is None or not (root / "speech.flac").is_file():
        raise DataError(root, "the examples folder (speech.flac, face.jpg, video.mp4, "
                        "sentence.txt) was not found")
    return root


class ProductLatency(Suite, name="product-latency", modality="fusion",
                     params={"model": ProductParams}):
    """Latency of the bundled models on CPU (one thread, warm) and cold start"""

    def body(self) -> dict[str, Any]:
        import torch

        from ..evaluate.results import build_result
        from ..inference import Recognizer, bundled_dir
        from ..media import load_audio, load_image

        cfg, p = self.cfg, self.p
        repeats = 3 if self.quick else p.repeats
        cold_runs = 1 if self.quick else p.cold_runs
        ex = _examples(cfg)
        torch.set_num_threads(1)
        try:    # numpy's BLAS too: its idle threads otherwise spin beside the one at work
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:  # pragma: no cover
            pass
        rec = Recognizer.load("default")
        clip = load_audio(ex / "speech.flac", sr=SPEECH_SR)[0][: 3 * SPEECH_SR]
        rgb = load_image(ex / "face.jpg")
        sentence = (ex / "sentence.txt").read_text(encoding="utf-8").strip()
        inputs: dict[str, Any] = {
            "speech_3s": lambda: rec.predict(clip, sr=SPEECH_SR),
            "image": lambda: rec.predict(rgb),
            "sentence": lambda: rec.predict_text(sentence),
            "video_file": lambda: rec.predict(ex / "video.mp4"),
        }
        metrics: dict[str, Any] = {}
        for name, fn in inputs.items():
            n = max(1, repeats // 5) if name == "video_file" else repeats
            for _ in range(2):
                fn()
            wall, cpu = [], []
            for _ in range(n):
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                wall.append(1000 * (time.perf_counter() - t0))
                cpu.append(1000 * (time.process_time() - c0))
            metrics[f"{name}_wall_ms"] = _stats(wall)
            metrics[f"{name}_cpu_ms"] = _stats(cpu)
        cold_inputs = {"speech": ("audio", str(ex / "speech.flac")),
                       "image": ("image", str(ex / "face.jpg")),
                       "text": ("text", sentence)}
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for name, (kind, x) in cold_inputs.items():
            loads, firsts, totals = [], [], []
            for _ in range(cold_runs):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _COLD, kind, x], env=env,
                                      capture_output=True, text=True, timeout=300)
                totals.append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    raise DataError(None, f"cold-start run failed: {proc.stderr[-500:]}")
                d = json.loads(proc.stdout.strip().splitlines()[-1])
                loads.append(d["load_s"])
                firsts.append(d["first_s"])
            metrics[f"cold_load_{name}_s"] = _stats(loads)
            metrics[f"cold_first_{name}_s"] = _stats(firsts)
            metrics[f"cold_process_{name}_s"] = _stats(totals)
        throughput = _throughput(ex, jobs=list(p.jobs), copies=2 if self.quick else p.copies,
                                 env=env)
        metrics.update(throughput)
        sizes = {d.name: sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
                 for d in sorted(bundled_dir().iterdir()) if d.is_dir()}
        return build_result(
            suite=cfg.suite, corpus="examples/", protocol="latency", classes=[],
            metrics=metrics, per_class={}, confusion=[], seeds=[0], started=self.timer.started,
            duration_s=self.timer.seconds, bundled_bytes=sizes,
            bundled_total_mb=round(sum(sizes.values()) / 2**20, 2),
            machine_note="2 shared CPU cores; wall times include contention, cpu_ms is the "
                         "process CPU time (one torch/OpenMP thread)",
            notes=("Warm latency: median over repeated predictions after two warm-up calls, one "
                   "thread (torch.set_num_threads(1), BLAS limited to one thread). speech_3s: "
                   "the first 3 s of examples/speech.flac as an array (decoding excluded; the "
                   "Silero VAD check, the Whisper encoder on onnxruntime and the linear head "
                   "included). image: examples/face.jpg as an array "
                   "(YuNet detection, alignment, mini-Xception with flip TTA). sentence: MiniLM "
                   "encoding + head. video_file: examples/video.mp4 end to end (decoding, frames "
                   "at 2 fps, faces, audio track, late fusion). Cold start: a fresh Python process "
                   "imports emofuse, loads the bundled models (cold_load) and returns its first "
                   "prediction (cold_first); cold_process adds interpreter start and exit. "
                   "throughput_jobsN: inputs per second of `emofuse predict FOLDER --jsonl --jobs "
                   "N` on a folder holding the four example files `copies` times (worker "
                   "processes with one thread each; process start and model loading included)."))


product_latency = ProductLatency.run
