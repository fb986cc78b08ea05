"""The web service: every endpoint, every bad input of the issue, and the service staying up."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from .._tiny_models import make_bundle, write_image, write_video, write_wav
from ._server import running

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from emofuse.serve import create_app  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("uploads")
    write_wav(d / "tone.wav", 1.0)
    write_image(d / "face.png")
    write_image(d / "flat.png", flat=True)
    write_video(d / "clip.mp4")
    write_video(d / "silent.mp4", audio=False)
    return d


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    bundle = make_bundle(tmp_path_factory.mktemp("models"))
    return create_app([str(bundle)], max_upload_mb=2, timeout_s=20)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _upload(client, name: str, data: bytes, **params):
    return client.post("/predict", files={"file": (name, data)}, params=params)


def test_health_and_models(client):
    h = client.get("/health").json()
    assert h["status"] == "ok" and set(h["models"]) == {"speech", "face", "text", "fusion"}
    assert h["limits"]["max_upload_bytes"] == 2_000_000
    models = {m["modality"]: m for m in client.get("/models").json()["models"]}
    assert models["speech"]["labels"][0] == "neutral"
    assert {"data", "protocol", "metrics", "licence"} <= set(models["face"])


@pytest.mark.parametrize("name, kind, modalities", [
    ("tone.wav", "audio", {"speech"}), ("face.png", "image", {"face"}),
    ("clip.mp4", "video", {"face", "speech"})])
def test_predict_each_file_type(client, files, name, kind, modalities):
    r = _upload(client, name, (files / name).read_bytes())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["kind"] == kind and set(body["modalities"]) == modalities
    assert body["source"] == name and body["label"] in body["probabilities"]
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4


def test_predict_example_files(client):
    for name in ("speech.flac", "face.jpg", "video.mp4", "sentence.txt"):
        r = _upload(client, name, (EXAMPLES / name).read_bytes())
        assert r.status_code == 200, (name, r.text)


def test_predict_text_three_ways(client):
    for r in (client.post("/predict", json={"text": "What a lovely day!"}),
              client.post("/predict", data={"text": "What a lovely day!"}),
              client.post("/predict", content="What a lovely day!",
                          headers={"content-type": "text/plain"})):
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "text" and r.json()["weights"] == {"text": 1.0}


def test_timeline_query(client, files):
    r = _upload(client, "clip.mp4", (files / "clip.mp4").read_bytes(), timeline="true")
    segs = r.json()["timeline"]
    assert {s["modality"] for s in segs} == {"face", "speech"}


def test_video_without_audio_is_predicted_with_a_warning(client, files):
    r = _upload(client, "silent.mp4", (files / "silent.mp4").read_bytes())
    assert r.status_code == 200
    assert "no audio track" in " ".join(r.json()["warnings"])


@pytest.mark.parametrize("name, data, status, message", [
    ("empty.wav", b"", 400, "empty upload"),
    ("noise.xyz", bytes(range(256)) * 40, 415, "unsupported file type"),
    ("page.mp4", b"<html><body>404 Not Found</body></html>\n", 415, "holds text"),
    ("broken.flac", (EXAMPLES / "speech.flac").read_bytes()[:300], 422, "cannot decode audio"),
    ("cut.mp4", (EXAMPLES / "video.mp4").read_bytes()[:3000], 422, "cannot decode this video"),
    ("cut.jpg", (EXAMPLES / "face.jpg").read_bytes()[:2000], 422, "truncated image"),
])
def test_bad_uploads_get_clear_errors(client, name, data, status, message):
    r = _upload(client, name, data)
    assert r.status_code == status, r.text
    body = r.json()
    assert message in body["detail"] and body["status"] == status
    assert "/tmp" not in body["detail"]  # the user's file name, not the server's temp file


def test_image_without_face_is_422(client, files):
    r = _upload(client, "wall.png", (files / "flat.png").read_bytes())
    assert r.status_code == 422 and "no face found" in r.json()["detail"]
    assert r.json()["error"] == "NoFaceError"


def test_lying_extension_is_read_by_content(client, files):
    r = _upload(client, "photo.jpg", (files / "tone.wav").read_bytes())
    assert r.status_code == 200 and r.json()["kind"] == "audio"
    assert "content is audio" in r.json()["warnings"][0]


def test_bad_requests(client):
    assert client.post("/predict", json={"nope": 1}).status_code == 400
    assert client.post("/predict", json={"text": "   "}).status_code == 400
    assert client.post("/predict", content=b"{", headers={"content-type": "application/json"}
                       ).status_code == 400
    r = client.post("/predict", content=b"\x00" * 10,
                    headers={"content-type": "application/octet-stream"})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["detail"]
    assert client.post("/predict", data={"other": "x"}).status_code == 400
    assert client.post("/predict", json={"text": "x" * 20_001}).status_code == 413
    assert client.get("/nowhere").status_code == 404


def test_upload_over_limit_by_header_and_by_count(client):
    r = client.post("/predict", content=b"x", headers={
        "content-type": "multipart/form-data; boundary=b", "content-length": "500000000"})
    assert r.status_code == 413 and "500.0 MB exceeds the 2 MB limit" in r.json()["detail"]
    r = _upload(client, "big.wav", b"\x00" * 2_500_000)
    assert r.status_code == 413
    assert client.get("/health").status_code == 200


def test_internal_errors_are_500_and_the_service_stays_up(app, client, files, monkeypatch):
    rec = app.state.recognizer

    def boom(*a, **k):
        raise RuntimeError("kaputt")

    monkeypatch.setattr(rec, "predict", boom)
    r = _upload(client, "tone.wav", (files / "tone.wav").read_bytes())
    assert r.status_code == 500 and "kaputt" in r.json()["detail"]
    monkeypatch.undo()
    assert _upload(client, "tone.wav", (files / "tone.wav").read_bytes()).status_code == 200


def test_timeout_is_504(tmp_path, files):
    bundle = make_bundle(tmp_path / "m")
    app = create_app([str(bundle)], timeout_s=0.2)
    rec = app.state.recognizer
    original = rec.predict
    rec.predict = lambda *a, **k: (time.sleep(1.0), original(*a, **k))[1]
    with TestClient(app) as c:
        r = _upload(c, "tone.wav", (files / "tone.wav").read_bytes())
        assert r.status_code == 504 and "longer than 0.2 s" in r.json()["detail"]


def _raw(port: int, head: bytes, body_chunks=(), *, pause: float = 0.0) -> tuple[bytes, int]:
    """Send a raw HTTP request; returns (response bytes, body bytes sent before the reply)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        s.settimeout(0.05)
        reply = b""
        for chunk in body_chunks:
            try:
                reply += s.recv(65536)
            except (TimeoutError, BlockingIOError):
                pass
            if reply:
                break
            try:
                s.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        s.settimeout(10)
        try:
            while b"\r\n\r\n" not in reply:
                data = s.recv(65536)
                if not data:
                    break
                reply += data
            reply += s.recv(65536)
        except (TimeoutError, ConnectionResetError):
            pass
    return reply, sent


def test_500_mb_upload_is_refused_before_it_is_read(app):
    with running(app) as base:
        port = int(base.rsplit(":", 1)[1])
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                b"boundary=b\r\nContent-Length: 524288000\r\n\r\n")
        reply, _ = _raw(port, head)
        assert reply.startswith(b"HTTP/1.1 413") and b"exceeds the 2 MB limit" in reply
        # no Content-Length: chunked upload counted as it arrives, cut off near the limit
        head = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                b"boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n")
        part = (b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n'
                b"Content-Type: audio/wav\r\n\r\n")
        chunk = b"10000\r\n" + b"\x00" * 0x10000 + b"\r\n"
        chunks = [b"%x\r\n%s\r\n" % (len(part), part)] + [chunk] * 8000  # 500 MB offered
        reply, sent = _raw(port, head, iter(chunks))
        assert b" 413 " in reply.split(b"\r\n", 1)[0]
        assert sent < 40_000_000  # refused long before 500 MB were sent
        import httpx

        assert httpx.get(f"{base}/health").json()["status"] == "ok"
