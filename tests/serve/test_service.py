"""The web service: every endpoint, every bad input of the issue, one JSON format for every
error, and the service staying up."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import pytest

from .._tiny_models import make_bundle, write_image, write_video, write_wav
from ._server import running

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from emofuse.serve import create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAULTS = __name__.rsplit(".", 1)[0] + "._faults"  # imported by the worker processes only


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
    return create_app([str(bundle)], max_upload_mb=2, timeout_s=20, workers=1,
                      worker_imports=[FAULTS])


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
    # a file and a text in one form: refused, not one of them silently dropped
    r = client.post("/predict", data={"text": "I am happy"},
                    files={"file": ("a.wav", b"RIFF0000WAVE", "audio/wav")})
    assert r.status_code == 400 and "not both" in r.json()["detail"]
    assert client.post("/predict", json={"text": "x" * 20_001}).status_code == 413
    assert client.get("/nowhere").status_code == 404


def test_upload_over_limit_by_header_and_by_count(client):
    r = client.post("/predict", content=b"x", headers={
        "content-type": "multipart/form-data; boundary=b", "content-length": "500000000"})
    assert r.status_code == 413 and "500.0 MB exceeds the 2 MB limit" in r.json()["detail"]
    r = _upload(client, "big.wav", b"\x00" * 2_500_000)
    assert r.status_code == 413
    assert client.get("/health").status_code == 200


def test_internal_errors_are_500_and_the_service_stays_up(client, files):
    # the fault raises RuntimeError naming the server's temporary file
    r = _upload(client, "boom.wav", (files / "tone.wav").read_bytes())
    assert r.status_code == 500 and r.json()["error"] == "InternalError"
    detail = r.json()["detail"]
    assert "kaputt while reading boom.wav" in detail and "/tmp" not in detail, detail
    assert _upload(client, "tone.wav", (files / "tone.wav").read_bytes()).status_code == 200


def _assert_error(r, status: int, kind: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json", r.headers
    body = r.json()
    assert set(body) == {"detail", "error", "status"} and body["status"] == status, body
    assert kind is None or body["error"] == kind, body
    return body


def test_every_error_is_json(client):
    assert "/nowhere" in _assert_error(client.get("/nowhere"), 404, "NotFound")["detail"]
    _assert_error(client.get("/static/nothing.css"), 404, "NotFound")
    _assert_error(client.get("/redoc"), 404)
    r = client.delete("/predict")
    assert "POST" in _assert_error(r, 405, "MethodNotAllowed")["detail"]
    assert r.headers["allow"] == "POST"
    _assert_error(client.put("/health"), 405)
    body = _assert_error(client.post("/predict?timeline=maybe", json={"text": "hi"}), 422,
                         "ValidationError")
    assert "timeline" in body["detail"]
    json_ct = {"content-type": "application/json"}
    assert "invalid JSON" in _assert_error(client.post("/predict", content=b'{"text": ',
                                                       headers=json_ct), 400)["detail"]
    deep = b'{"text": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"  # 400 kB: over the text limit
    _assert_error(client.post("/predict", content=deep, headers=json_ct), 413, "TextTooLong")
    deep = b"[" * 50_000 + b"]" * 50_000
    assert "nested too deeply" in _assert_error(
        client.post("/predict", content=deep, headers=json_ct), 400)["detail"]
    huge = b'{"text": "hi", "n": ' + b"9" * 10_000 + b"}"
    assert "number is too long" in _assert_error(
        client.post("/predict", content=huge, headers=json_ct), 400)["detail"]
    big = b'{"text": "hi", "n": 1e999999}'  # a float overflowing to inf is no error
    assert client.post("/predict", content=big, headers=json_ct).status_code == 200
    _assert_error(client.post("/predict", content=b"\xff\xfe{", headers=json_ct), 400)
    _assert_error(client.post("/predict", content=b"x", headers={
        "content-type": "multipart/form-data; boundary=b"}), 400)


def test_docs_are_served_offline_and_favicon(client, tmp_path):
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "http://" not in page.text.replace("http://HOST", "") and "https://" not in page.text
    api = client.get("/openapi.json").json()
    assert "/predict" in api["paths"]
    index = client.get("/").text
    assert "https://" not in index and 'rel="icon"' in index
    ico = client.get("/favicon.ico")
    assert ico.status_code == 200 and ico.headers["content-type"] == "image/x-icon"
    assert ico.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    svg = client.get("/static/favicon.svg")
    assert svg.status_code == 200 and b"<svg" in svg.content
    bundle = make_bundle(tmp_path / "m")
    with TestClient(create_app([str(bundle)], workers=0, docs=False)) as c:
        _assert_error(c.get("/docs"), 404)
        _assert_error(c.get("/openapi.json"), 404)
        assert c.get("/favicon.ico").status_code == 200


def _wav_header(rate: int, samples: int = 2000) -> bytes:
    data = b"\x10\x00" * samples
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data"
            + struct.pack("<I", len(data)) + data)


def test_tiny_files_declaring_1_hz_are_refused_at_once(client):
    for i in range(3):
        t0 = time.perf_counter()
        r = _upload(client, f"tiny{i}.wav", _wav_header(1))
        assert time.perf_counter() - t0 < 1.0
        assert "sample rate of 1 Hz" in _assert_error(r, 422, "MediaError")["detail"]
    assert _upload(client, "ok.wav", _wav_header(16000, 16000)).status_code == 200


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


def test_messages_lose_server_paths_but_keep_the_rest():
    from emofuse.serve.pool import scrub

    tmp = "/tmp/emofuse-serve-x1/uploads/upload-ab12.wav"
    assert scrub(f"{tmp}: cannot decode audio", tmp, "my song.wav") == \
        "my song.wav: cannot decode audio"
    assert scrub("upload-ab12.wav is odd", tmp, "a.wav") == "a.wav is odd"
    assert scrub("error in /work/main/.venv/lib/python3.11/site-packages/av/x.py, line 3") == \
        "error in x.py, line 3"
    kept = ("send multipart/form-data or see https://example.org/a/b; ratio 3/4 and/or 48000/1 "
            "at /tmp")
    assert scrub(kept) == kept
