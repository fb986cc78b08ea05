"""The ``/stream`` WebSocket through FastAPI's TestClient: updates every hop from PCM chunks
and JPEG frames, malformed messages answered while the stream stays alive, backpressure
counted, the fifth stream refused, and a client going away releases its slot."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from .._tiny_models import make_bundle, speech_samples

pytest.importorskip("fastapi")
anyio = pytest.importorskip("anyio")
from fastapi.testclient import TestClient

from emofuse.serve import create_app


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    bundle = make_bundle(tmp_path_factory.mktemp("models"))
    return create_app([str(bundle)], workers=0, max_upload_mb=2)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def recv(ws, timeout: float = 20.0) -> dict:
    """The next message (JSON), or ``{"type": "closed", "code": ...}``; fails after
    ``timeout`` seconds instead of hanging."""

    async def get():
        with anyio.fail_after(timeout):
            return await ws._send_rx.receive()

    msg = ws.portal.call(get)
    if msg["type"] == "websocket.close":
        return {"type": "closed", "code": msg.get("code"), "reason": msg.get("reason")}
    return json.loads(msg["text"])


def until(ws, kind: str, timeout: float = 30.0) -> tuple[dict, list[dict]]:
    """Messages up to the first of type ``kind``: (that message, all before it)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        m = recv(ws, max(0.1, deadline - time.monotonic()))
        if m["type"] == kind:
            return m, seen
        if m["type"] == "closed":
            raise AssertionError(f"closed before {kind!r}: {m}; seen {seen[-3:]}")
        seen.append(m)


def pcm(seconds: float, rate: int = 48000) -> bytes:
    from emofuse.media import resample

    y = resample(speech_samples(int(seconds * 16000)), 16000, rate)
    return (np.clip(y, -1, 1) * 32767).astype("<i2").tobytes()


def jpeg(seed: int = 0, *, flat: bool = False) -> bytes:
    import cv2

    rng = np.random.default_rng(seed)
    img = np.full((120, 160, 3), 90, np.uint8) if flat else \
        rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def _stream(ws, seconds: float = 3.0, *, rate: int = 48000, frames: int = 10) -> None:
    ws.send_json({"type": "start", "rate": rate, "channels": 1, "format": "s16le"})
    ready, _ = until(ws, "ready")
    assert ready["modalities"] == ["speech", "face"] and ready["hop"] == 0.5
    audio = pcm(seconds, rate)
    step = rate // 10 * 2  # 0.1 s of int16
    per = max(1, len(audio) // step // max(1, frames))
    for k, i in enumerate(range(0, len(audio), step)):
        ws.send_bytes(audio[i: i + step])
        if frames and k % per == 0 and k // per < frames:
            ws.send_json({"type": "frame", "t": round((i + step) / 2 / rate, 3)})
            ws.send_bytes(jpeg(k))


def test_updates_every_hop_then_end(client):
    with client.websocket_connect("/stream") as ws:
        _stream(ws, 3.0)
        ws.send_json({"type": "stop"})
        end, msgs = until(ws, "end")
        assert recv(ws)["type"] == "closed"
    ups = [m for m in msgs if m["type"] == "update"]
    errors = [m for m in msgs if m["type"] == "error"]
    assert not errors, errors
    times = [u["time"] for u in ups]
    assert times == sorted(times) and abs(times[-1] - 3.0) < 0.05
    # every hop has its update, or stands merged in a later one (the stream fell behind, or
    # the client read slower than updates came)
    c = end["counters"]
    assert ups[-1]["index"] == 6 and c["updates"] + c["hops_merged"] == 6
    assert len(ups) + end["updates_merged"] == c["updates"]
    last = ups[-1]
    assert set(last["modalities"]) == {"speech", "face"} and last["label"]
    assert last["speech_active"] and last["face_frames"] >= 1
    assert abs(sum(last["probabilities"].values()) - 1) < 1e-3
    assert end["counters"]["frames_received"] == 10
    assert end["counters"]["audio_s"] == pytest.approx(3.0, abs=0.01)


def test_malformed_messages_are_answered_and_the_stream_lives_on(client):
    with client.websocket_connect("/stream") as ws:
        ws.send_bytes(b"\x00\x01" * 100)                   # audio before start
        assert "before audio" in until(ws, "error")[0]["detail"]
        ws.send_text("{not json")
        assert until(ws, "error")[0]["error"] == "BadMessage"
        ws.send_text("[1, 2]")
        assert "JSON object" in until(ws, "error")[0]["detail"]
        ws.send_json({"type": "dance"})
        assert "unknown message type" in until(ws, "error")[0]["detail"]
        ws.send_json({"type": "start", "rate": 12, "channels": 99, "format": "mp3"})
        e = until(ws, "error")[0]["detail"]
        assert '"rate"' in e and '"channels"' in e and '"format"' in e
        ws.send_json({"type": "start", "rate": 16000, "hop": -1})
        assert "hop" in until(ws, "error")[0]["detail"]
        ws.send_json({"type": "start", "rate": 16000})
        until(ws, "ready")
        ws.send_json({"type": "start", "rate": 16000})
        assert "already started" in until(ws, "error")[0]["detail"]
        ws.send_bytes(b"\x01\x02\x03")                     # half a sample
        assert "whole number" in until(ws, "error")[0]["detail"]
        ws.send_json({"type": "frame", "t": "soon"})
        assert '"t"' in until(ws, "error")[0]["detail"]
        broken = b"\xff\xd8\xff" + bytes(200) + b"\xff\xd9"  # looks like a JPEG, is not
        ws.send_bytes(broken)
        assert until(ws, "error")[0]["error"] == "BadFrame"
        ws.send_bytes(pcm(1.2, 16000))                     # still alive: updates come
        u, _ = until(ws, "update")
        assert u["time"] in (0.5, 1.0)
        ws.send_json({"type": "stop"})
        end, _ = until(ws, "end")
        assert end["counters"]["frames_bad"] == 1


class _Slow:
    """A predictor wrapper that takes ``delay`` seconds longer."""

    def __init__(self, inner, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def predict(self, *a, **k):
        time.sleep(self.delay)
        return self.inner.predict(*a, **k)


def test_backpressure_drops_frames_and_merges_hops(app, client, monkeypatch):
    rec = app.state.recognizer
    for m, delay in (("face", 0.05), ("speech", 0.3)):
        slow = _Slow(rec.predictor(m), delay)
        monkeypatch.setitem(rec._loaded, m, slow)
    with client.websocket_connect("/stream") as ws:
        ws.send_json({"type": "start", "rate": 16000})
        until(ws, "ready")
        for k in range(40):                       # 40 frames at once: far faster than 20/s
            ws.send_bytes(jpeg(k))
        ws.send_bytes(pcm(6.0, 16000))            # 6 s of audio in one go: 12 hops due
        ws.send_json({"type": "stop"})
        end, msgs = until(ws, "end", timeout=60)
    ups = [m for m in msgs if m["type"] == "update"]
    c = end["counters"]
    assert c["frames_received"] == 40 and c["frames_dropped"] > 0
    assert c["frames_processed"] + c["frames_dropped"] + c["frames_bad"] == 40
    assert c["hops_merged"] > 0 and any(u["merged"] for u in ups)
    assert ups[-1]["time"] == pytest.approx(6.0, abs=0.05)


def test_fifth_stream_is_refused_and_a_slot_frees_when_a_client_leaves(app, client):
    slots = app.state.streams
    assert slots.limit == 4
    opened = []
    try:
        for _ in range(4):
            ws = client.websocket_connect("/stream").__enter__()
            ws.send_json({"type": "start", "rate": 16000})
            until(ws, "ready")
            opened.append(ws)
        assert slots.active == 4
        with client.websocket_connect("/stream") as fifth:
            m = recv(fifth)
            assert m["type"] == "error" and m["error"] == "TooManyStreams"
            assert "4 live streams" in m["detail"]
            closed = recv(fifth)
            assert closed == {"type": "closed", "code": 1013, "reason": "too many streams"}
        # a client that goes away without a word: its slot and threads are freed
        opened[0].send_bytes(pcm(0.6, 16000))
        until(opened[0], "update")
        opened.pop(0).__exit__(None, None, None)
        deadline = time.monotonic() + 10
        while slots.active > 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert slots.active == 3
        with client.websocket_connect("/stream") as again:
            again.send_json({"type": "start", "rate": 16000})
            assert until(again, "ready")[0]["active"] == 4
    finally:
        for ws in opened:
            ws.__exit__(None, None, None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (slots.active or _stream_threads()):
        time.sleep(0.05)
    assert slots.active == 0 and _stream_threads() == []


def _stream_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("emofuse-stream")]
