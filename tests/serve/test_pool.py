"""The service's worker processes under a real uvicorn server: two workers predicting at once, a
prediction over the time limit killed and its worker replaced, 503 when the queue is full, text
answered while every worker is busy, temporary files removed on every path, slow clients cut
off without holding a worker."""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from .._tiny_models import make_bundle, write_wav
from ._server import running

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

from emofuse.errors import EmofuseError
from emofuse.serve import create_app

FAULTS = __name__.rsplit(".", 1)[0] + "._faults"  # imported by the worker processes only
TIMEOUT_S = 4.0


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> bytes:
    return write_wav(tmp_path_factory.mktemp("wav") / "tone.wav", 0.5).read_bytes()


@pytest.fixture(scope="module")
def system_tmp(tmp_path_factory):
    """The service's (and its workers') system temporary folder for this module: a folder of
    its own, so that files other processes on the machine create in /tmp are not counted."""
    folder = tmp_path_factory.mktemp("system-tmp")
    saved_env, saved_dir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = str(folder), str(folder)
    yield folder
    tempfile.tempdir = saved_dir
    if saved_env is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved_env


@pytest.fixture(scope="module")
def app(tmp_path_factory, system_tmp):
    bundle = make_bundle(tmp_path_factory.mktemp("models"))
    return create_app([str(bundle)], workers=2, queue=1, timeout_s=TIMEOUT_S,
                      read_timeout_s=0.5, worker_imports=[FAULTS],
                      tmp_dir=tmp_path_factory.mktemp("service-tmp"))


@pytest.fixture(scope="module")
def base(app):
    with running(app) as url:
        yield url


def _health(base: str) -> dict:
    return httpx.get(f"{base}/health", timeout=10).json()


def _wait_for(base: str, ok, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        h = _health(base)
        if ok(h):
            return h
        assert time.monotonic() < deadline, h
        time.sleep(0.1)


def _all_workers_up(base: str) -> dict:
    return _wait_for(base, lambda h: h["workers"]["alive"] == 2 and h["workers"]["busy"] == 0)


def _pid(body: dict) -> int:
    return int(next(w for w in body["warnings"] if w.startswith("worker pid")).split()[-1])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def _post(client, name: str, data: bytes):
    return await client.post("/predict", files={"file": (name, data)})


def test_two_workers_predict_at_once(base, app, wav):
    _all_workers_up(base)

    async def main():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            t0 = time.perf_counter()
            rs = await asyncio.gather(*(_post(c, "sleep-1.5.wav", wav) for _ in range(2)))
            return rs, time.perf_counter() - t0

    rs, wall = asyncio.run(main())
    assert [r.status_code for r in rs] == [200, 200], [r.text for r in rs]
    assert wall < 2.9, wall  # side by side, not one after the other
    pids = {_pid(r.json()) for r in rs}
    assert len(pids) == 2 and pids <= set(app.state.media.pids())
    assert os.getpid() not in pids


def test_timeout_kills_the_worker_and_a_new_one_takes_its_place(base, app, wav):
    before = _all_workers_up(base)["workers"]
    old = set(app.state.media.pids())
    t0 = time.perf_counter()
    r = httpx.post(f"{base}/predict", files={"file": ("sleep-60.wav", wav)}, timeout=30)
    assert r.status_code == 504 and r.json()["error"] == "Timeout"
    assert f"longer than {TIMEOUT_S:g} s" in r.json()["detail"]
    assert time.perf_counter() - t0 < TIMEOUT_S + 2
    killed = old - set(app.state.media.pids())
    assert len(killed) == 1
    (pid,) = killed
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # really stopped, not left running
        os.kill(pid, 0)
    # the other worker still answers while the new one loads its models
    assert httpx.post(f"{base}/predict", files={"file": ("tone.wav", wav)},
                      timeout=30).status_code == 200
    after = _all_workers_up(base)["workers"]
    assert after["killed"] == before["killed"] + 1
    assert after["restarts"] == before["restarts"] + 1
    assert len(set(app.state.media.pids()) - old) == 1

    async def main():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            return await asyncio.gather(*(_post(c, "pid.wav", wav) for _ in range(3)))  # 2 + queue 1

    assert all(r.status_code == 200 for r in asyncio.run(main()))


def test_queue_full_is_503_with_retry_after_and_text_is_not_stuck(base, wav):
    _all_workers_up(base)

    async def main():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            busy = [asyncio.create_task(_post(c, "sleep-2.5.wav", wav)) for _ in range(2)]
            await asyncio.to_thread(_wait_for, base, lambda h: h["workers"]["busy"] == 2, 10)
            queued = asyncio.create_task(_post(c, "tone.wav", wav))
            await asyncio.to_thread(_wait_for, base, lambda h: h["workers"]["waiting"] == 1, 10)
            refused = await _post(c, "tone.wav", wav)
            t0 = time.perf_counter()
            text = await c.post("/predict", json={"text": "What a lovely day!"})
            text_s = time.perf_counter() - t0
            return await asyncio.gather(*busy), await queued, refused, text, text_s

    busy, queued, refused, text, text_s = asyncio.run(main())
    assert refused.status_code == 503 and refused.json()["error"] == "Busy"
    assert int(refused.headers["retry-after"]) >= 1
    assert [r.status_code for r in busy] == [200, 200] and queued.status_code == 200
    assert text.status_code == 200 and text_s < 1.0, text_s  # not behind the files


def _reply(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    reply = b""
    while data := s.recv(65536):
        reply += data
    return reply


def _send_and_leave(port: int, name: str, data: bytes, wait_s: float) -> None:
    """A multipart upload whose client hangs up after ``wait_s`` without reading the answer."""
    boundary = b"xyz"
    body = (b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n%s\r\n--xyz--\r\n"
            % (name.encode(), data))
    head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            b"boundary=%s\r\nContent-Length: %d\r\n\r\n" % (boundary, len(body)))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head + body)
        time.sleep(wait_s)


def test_temporary_files_are_removed_on_every_path(base, app, wav, system_tmp):
    root = app.state.tmp_root
    _all_workers_up(base)
    before = _files(root)
    assert tempfile.gettempdir() == str(system_tmp)
    before_tmp = set(os.listdir(system_tmp))
    assert not list((root / "uploads").iterdir())
    post = lambda name, data=wav: httpx.post(
        f"{base}/predict", files={"file": (name, data)}, timeout=30)
    assert post("tone.wav").status_code == 200                       # success
    assert post("boom.wav").status_code == 500                       # a bug in the worker
    assert post("noise.wav", os.urandom(3000)).status_code in (415, 422)  # bad media
    assert post("litter-60.wav").status_code == 504                  # killed on timeout
    assert post("crash.wav").status_code == 500                      # the worker died
    port = int(base.rsplit(":", 1)[1])
    killed = _all_workers_up(base)["workers"]["killed"]
    _send_and_leave(port, "sleep-30.wav", wav, 0.8)                  # client gone
    _wait_for(base, lambda h: h["workers"]["killed"] == killed + 1, 10)
    _all_workers_up(base)
    assert not list((root / "uploads").iterdir())
    after = _files(root)
    assert not [f for f in after if "litter" in f or "upload" in f], after
    assert len(after) == len(before), (before, after)  # each new worker as many as the old
    new = set(os.listdir(system_tmp)) - before_tmp
    assert not [n for n in new if n.startswith(("upload-", "litter-", "emofuse-"))], new


def test_slow_headers_and_slow_bodies_get_408_without_holding_a_worker(base, wav):
    port = int(base.rsplit(":", 1)[1])
    _all_workers_up(base)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        t0 = time.perf_counter()
        reply = _reply(s)
        assert time.perf_counter() - t0 < 3
    assert reply.startswith(b"HTTP/1.1 408") and b'"RequestTimeout"' in reply
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                  b"boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n")  # body stalls
        assert _health(base)["workers"]["busy"] == 0
        reply = _reply(s)
    assert b" 408 " in reply.split(b"\r\n", 1)[0] and b"stalled" in reply
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GARBAGE\r\n\r\n")
        reply = _reply(s)
    assert reply.startswith(b"HTTP/1.1 400") and b'"BadRequest"' in reply
    assert httpx.post(f"{base}/predict", files={"file": ("tone.wav", wav)},
                      timeout=30).status_code == 200


def test_worker_that_cannot_load_stops_the_start(tmp_path):
    bundle = make_bundle(tmp_path / "m")
    with pytest.raises(EmofuseError, match="could not load the models.*no_such_plugin"):
        create_app([str(bundle)], workers=1, worker_imports=["no_such_plugin"],
                   tmp_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # its temporary folder removed


def test_shutdown_stops_the_workers_and_removes_the_temporary_folder(tmp_path, wav):
    app = create_app([str(make_bundle(tmp_path / "m"))], workers=1, warmup=False,
                     tmp_dir=tmp_path)
    pids = app.state.media.pids()
    with running(app) as url:
        assert httpx.post(f"{url}/predict", files={"file": ("tone.wav", wav)},
                          timeout=30).status_code == 200
    assert not app.state.tmp_root.exists()
    time.sleep(0.2)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
