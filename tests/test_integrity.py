"""Checksums of cached artefacts: a damaged file is noticed and rebuilt, never used."""

from __future__ import annotations

import os
import zipfile

import pytest

from emofuse.integrity import atomic_write, digest_path, record_digest, verify_digest


def test_digest_roundtrip_and_tampering(tmp_path):
    f = tmp_path / "model.onnx"
    sha = atomic_write(f, b"x" * 10_000)
    assert not verify_digest(f)  # no record yet
    assert record_digest(f) == sha and digest_path(f).is_file()
    assert verify_digest(f) and verify_digest(f, expected=sha)
    assert not verify_digest(f, expected="0" * 64)
    st = f.stat()
    data = bytearray(f.read_bytes())
    data[5000:5050] = b"y" * 50  # 50 flipped bytes, same size
    f.write_bytes(bytes(data))
    assert not verify_digest(f)
    f.write_bytes(b"x" * 10_000)  # restored content, new mtime: rehashed, record refreshed
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10))
    assert verify_digest(f)
    f.write_bytes(b"x" * 9_999)
    assert not verify_digest(f)


def test_truncated_checkpoint_is_not_complete(tmp_path):
    from emofuse.train.trainer import checkpoint_complete

    ck = tmp_path / "best.ckpt"
    with zipfile.ZipFile(ck, "w") as z:
        z.writestr("data.pkl", b"0" * 100_000)
    assert checkpoint_complete(ck)
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])
    assert not checkpoint_complete(ck)
    assert not checkpoint_complete(tmp_path / "missing.ckpt")


@pytest.mark.slow
def test_damaged_onnx_text_encoder_is_rebuilt(tmp_path, monkeypatch, caplog):
    from emofuse.features import text as T

    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path))
    path = T.prepare_fast_encoder()
    assert verify_digest(path)
    data = bytearray(path.read_bytes())
    for i in range(50):
        data[len(data) // 2 + i * 97] ^= 0xFF
    path.write_bytes(bytes(data))
    T._FAST.clear()
    with caplog.at_level("WARNING"):
        enc = T.fast_encoder()
    assert enc is not None and "rebuilding" in caplog.text
    assert verify_digest(path)
