#!/usr/bin/env python3
"""Load test for ``emofuse serve`` (httpx + asyncio).

Starts ``emofuse serve`` on a free port (or uses ``--url URL --pid PID`` for one already
running) and measures:

1. two rounds of ``--requests`` small requests (text, a face image, a 3-second speech clip) at
   ``--concurrency``: errors by status, p50 / p95 / max latency, and the resident memory (RSS)
   of the server and of its worker processes before and after each round;
2. a text request sent while a 10-minute WAV is being predicted: must be answered within 2 s;
3. three tiny WAV files whose headers declare 1 Hz: each must be refused within 1 s.

Targets: no errors, p95 <= 5 s, RSS growth <= 10 % over the second round. Exit code 0 when all
are met, 1 otherwise.

    python scripts/load-test.py                          # bundled models, default options
    python scripts/load-test.py --serve-args "--workers 2 --queue 32"
    python scripts/load-test.py --url http://127.0.0.1:8000 --pid 12345
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
SENTENCES = [
    "I can't believe we finally won the championship!",
    "This is the worst day of my life.",
    "I'm so scared of what the results will show.",
    "Thank you so much, I love it.",
    "Why would you do that to me? I'm furious.",
    "Oh wow, I did not expect that at all.",
    "The meeting has been moved to Thursday.",
    "I miss her every single day.",
]


# -- memory -------------------------------------------------------------------------------------


def _ppid_and_rss(pid: int) -> tuple[int, float, str] | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kb = float(fields.get("VmRSS", "0 kB").split()[0])
    return int(fields["PPid"]), rss_kb / 1024, cmd


def process_tree(root: int) -> dict[int, tuple[float, str]]:
    """``pid -> (RSS in MiB, role)`` for ``root`` and all its descendants (Linux /proc)."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            info = _ppid_and_rss(int(d))
            if info:
                procs[int(d)] = info
    tree, todo = {}, [(root, 0)]
    while todo:
        pid, depth = todo.pop()
        if pid not in procs:
            continue
        _, rss, cmd = procs[pid]
        # workers are forked from the fork server, so they share its command line
        role = ("server" if depth == 0 else "worker" if depth >= 2
                else "forkserver" if "forkserver" in cmd
                else "resource-tracker" if "resource_tracker" in cmd else "other")
        tree[pid] = (rss, role)
        todo += [(p, depth + 1) for p, (ppid, _, _) in procs.items() if ppid == pid]
    return tree


def memory(root: int | None) -> dict[str, float]:
    """RSS in MiB of the server, its workers (and their number) and the whole tree."""
    if root is None:
        return {}
    tree = process_tree(root)
    out = {"server": sum(r for r, role in tree.values() if role == "server"),
           "workers": sum(r for r, role in tree.values() if role == "worker"),
           "n_workers": sum(1 for _, role in tree.values() if role == "worker")}
    out["total"] = sum(r for r, _ in tree.values())
    return out


def cpu_seconds(root: int | None) -> dict[str, float]:
    """CPU time (user + system) used so far by ``root`` and by its live descendants."""
    if root is None:
        return {"server": float("nan"), "workers": float("nan")}
    tick = os.sysconf("SC_CLK_TCK")
    out = {"server": 0.0, "workers": 0.0}
    for pid, (_, role) in process_tree(root).items():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out["server" if role == "server" else "workers"] += \
            (int(fields[11]) + int(fields[12])) / tick
    return out


# -- payloads -----------------------------------------------------------------------------------


def wav_bytes(y: np.ndarray, sr: int) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.asarray(y, np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def one_hz_wav(samples: int = 2000) -> bytes:
    data = b"\x10\x00" * samples
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16) + b"data"
            + struct.pack("<I", len(data)) + data)


def long_wav(seconds: float) -> bytes:
    """``seconds`` of the example speech clip repeated (16 kHz, 16-bit)."""
    import soundfile as sf

    y, sr = sf.read(str(EXAMPLES / "speech.flac"), dtype="float32", always_2d=False)
    if y.ndim > 1:
        y = y.mean(axis=1)
    return wav_bytes(np.resize(y, int(seconds * sr)), sr)


def small_requests(n: int, mix: dict[str, int], seed: int = 0) -> list[tuple[str, dict]]:
    face = (EXAMPLES / "face.jpg").read_bytes()
    speech = (EXAMPLES / "speech.flac").read_bytes()
    kinds = [k for k, w in mix.items() for _ in range(w)]
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.choice(kinds)
        if kind == "text":
            out.append((kind, {"json": {"text": rng.choice(SENTENCES)}}))
        elif kind == "image":
            out.append((kind, {"files": {"file": ("face.jpg", face, "image/jpeg")}}))
        else:
            out.append((kind, {"files": {"file": ("speech.flac", speech, "audio/flac")}}))
    return out


# -- measurements -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def load_round(client: httpx.AsyncClient, requests: list[tuple[str, dict]],
                     concurrency: int) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    latencies: list[float] = []
    by_kind: dict[str, list[float]] = {}
    errors: dict[str, int] = {}

    async def user() -> None:
        while True:
            try:
                kind, kwargs = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            try:
                r = await client.post("/predict", **kwargs)
                status = str(r.status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            dt = time.perf_counter() - t0
            latencies.append(dt)
            by_kind.setdefault(kind, []).append(dt)
            if status != "200":
                errors[status] = errors.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {"requests": len(requests), "errors": sum(errors.values()), "errors_by_status": errors,
            "p50_s": pct(latencies, 50), "p95_s": pct(latencies, 95),
            "max_s": max(latencies), "wall_s": wall, "per_s": len(requests) / wall,
            "p95_by_kind_s": {k: round(pct(v, 95), 3) for k, v in sorted(by_kind.items())}}


async def text_during_long_wav(client: httpx.AsyncClient, minutes: float) -> dict:
    data = long_wav(60 * minutes)
    t_wav = time.perf_counter()
    wav_task = asyncio.create_task(client.post(
        "/predict", files={"file": ("ten-minutes.wav", data, "audio/wav")}, timeout=600))
    # wait until the WAV is being predicted (uploaded and on a worker)
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:
        h = (await client.get("/health")).json()
        if h.get("workers", {}).get("busy", 0) >= 1 or wav_task.done():
            break
        await asyncio.sleep(0.05)
    started = not wav_task.done()
    await asyncio.sleep(0.5)
    t0 = time.perf_counter()
    r = await client.post("/predict", json={"text": "I am so happy to see you again!"})
    text_s = time.perf_counter() - t0
    wav_r = await wav_task
    return {"wav_mb": round(len(data) / 1e6, 1), "wav_busy_when_text_sent": started,
            "text_status": r.status_code, "text_s": text_s, "wav_status": wav_r.status_code,
            "wav_s": time.perf_counter() - t_wav,
            "wav_answer": wav_r.json().get("label") or wav_r.json().get("detail")}


async def one_hz(client: httpx.AsyncClient) -> dict:
    out = []
    for i in range(3):
        t0 = time.perf_counter()
        r = await client.post("/predict", files={"file": (f"tiny-{i}.wav", one_hz_wav(),
                                                          "audio/wav")})
        out.append({"status": r.status_code, "s": time.perf_counter() - t0,
                    "detail": r.json().get("detail")})
    t0 = time.perf_counter()
    r = await client.post("/predict", files={"file": ("face.jpg",
                                                      (EXAMPLES / "face.jpg").read_bytes())})
    return {"files": out, "next_request_status": r.status_code,
            "next_request_s": time.perf_counter() - t0}


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(serve_args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).with_name("emofuse")
    cmd = [str(exe) if exe.exists() else "emofuse", "serve", "--port", str(port),
           *shlex.split(serve_args)]
    print("starting:", " ".join(cmd), flush=True)
    log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - open as long as the server runs
        "w+", prefix="emofuse-load-test-", suffix=".log", delete=False)
    print("server log:", log.name, flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"emofuse serve exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("emofuse serve did not start within 300 s")


def fmt_mem(m: dict) -> str:
    if not m:
        return "n/a (no --pid)"
    return (f"server {m['server']:.0f} MiB + {m['n_workers']:.0f} workers {m['workers']:.0f} MiB"
            f" = {m['total']:.0f} MiB")


async def main_async(args: argparse.Namespace, url: str, pid: int | None) -> dict:
    mix = {k: int(v) for k, v in (p.split("=") for p in args.mix.split(","))}
    limits = httpx.Limits(max_connections=args.concurrency + 4,
                          max_keepalive_connections=args.concurrency + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        health = (await client.get("/health")).json()
        print(f"server: {health.get('version')} models {health.get('models')} "
              f"workers {health.get('limits', {}).get('workers')} "
              f"queue {health.get('limits', {}).get('queue')}", flush=True)
        report: dict = {"url": url, "concurrency": args.concurrency, "mix": mix, "rounds": []}
        for i in range(args.rounds):
            before = memory(pid)
            cpu0, load0 = cpu_seconds(pid), os.getloadavg()[0]
            res = await load_round(client, small_requests(args.requests, mix, seed=i),
                                   args.concurrency)
            cpu1 = cpu_seconds(pid)
            res["cpu_s"] = {k: round(cpu1[k] - cpu0[k], 2) for k in cpu1}
            res["load_avg_1min"] = [round(load0, 1), round(os.getloadavg()[0], 1)]
            res["cores"] = len(os.sched_getaffinity(0))
            await asyncio.sleep(1.0)
            after = memory(pid)
            res["rss_before_mib"], res["rss_after_mib"] = before, after
            if before:
                res["rss_growth"] = (after["total"] - before["total"]) / before["total"]
            report["rounds"].append(res)
            print(f"round {i + 1}: {res['requests']} requests, {res['errors']} errors "
                  f"{res['errors_by_status'] or ''}, p50 {res['p50_s']:.2f} s, p95 "
                  f"{res['p95_s']:.2f} s, max {res['max_s']:.2f} s, {res['per_s']:.1f} req/s "
                  f"(p95 by kind {res['p95_by_kind_s']})", flush=True)
            used = sum(res["cpu_s"].values())
            share, per = used / res["wall_s"], 1000 * used / res["requests"]
            print(f"  CPU used: server {res['cpu_s']['server']:.1f} s + workers "
                  f"{res['cpu_s']['workers']:.1f} s in {res['wall_s']:.1f} s wall ({share:.2f} "
                  f"of {res['cores']} cores, {per:.0f} ms a request); machine load average "
                  f"{res['load_avg_1min'][0]} -> {res['load_avg_1min'][1]}", flush=True)
            print(f"  RSS before {fmt_mem(before)}; after {fmt_mem(after)}"
                  + (f"; growth {100 * res['rss_growth']:+.1f} %" if before else ""),
                  flush=True)
        if args.long_minutes > 0:
            lw = await text_during_long_wav(client, args.long_minutes)
            report["text_during_long_wav"] = lw
            print(f"text during a {args.long_minutes:g}-minute WAV ({lw['wav_mb']} MB): "
                  f"{lw['text_status']} in {lw['text_s']:.2f} s (WAV busy: "
                  f"{lw['wav_busy_when_text_sent']}); the WAV: {lw['wav_status']} in "
                  f"{lw['wav_s']:.1f} s ({lw['wav_answer']})", flush=True)
        hz = await one_hz(client)
        report["one_hz"] = hz
        print("three 1 Hz WAVs: " + ", ".join(f"{f['status']} in {f['s']:.2f} s"
                                              for f in hz["files"])
              + f"; next request {hz['next_request_status']} in {hz['next_request_s']:.2f} s",
              flush=True)
        report["memory_end_mib"] = memory(pid)
    return report


def verdict(report: dict) -> list[str]:
    failed = []
    for i, r in enumerate(report["rounds"], 1):
        if r["errors"]:
            failed.append(f"round {i}: {r['errors']} errors")
        if r["p95_s"] > 5:
            failed.append(f"round {i}: p95 {r['p95_s']:.2f} s > 5 s")
    if len(report["rounds"]) >= 2 and report["rounds"][1].get("rss_growth", 0) > 0.10:
        failed.append(f"RSS grew {100 * report['rounds'][1]['rss_growth']:.1f} % > 10 % over "
                      "round 2")
    lw = report.get("text_during_long_wav")
    if lw and (lw["text_status"] != 200 or lw["text_s"] > 2):
        failed.append(f"text during the long WAV: {lw['text_status']} in {lw['text_s']:.2f} s")
    for f in report["one_hz"]["files"]:
        if f["status"] < 400 or f["s"] >= 1:
            failed.append(f"1 Hz WAV: {f['status']} in {f['s']:.2f} s")
    return failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server (default: start one)")
    ap.add_argument("--pid", type=int, help="its process id (for RSS; default: the one started)")
    ap.add_argument("--serve-args", default="", help="options for the server started")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mix", default="text=2,image=1,audio=1",
                    help="relative shares of text, image and audio requests")
    ap.add_argument("--long-minutes", type=float, default=10.0,
                    help="length of the long WAV (0: skip that test)")
    ap.add_argument("--json", type=Path, help="write the report here")
    args = ap.parse_args()
    proc = None
    if args.url:
        url, pid = args.url.rstrip("/"), args.pid
    else:
        t0 = time.perf_counter()
        proc, url = start_server(args.serve_args)
        pid = proc.pid
        print(f"server up in {time.perf_counter() - t0:.1f} s at {url}", flush=True)
    try:
        report = asyncio.run(main_async(args, url, pid))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    failed = verdict(report)
    report["failed"] = failed
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("targets met" if not failed else "targets missed: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
