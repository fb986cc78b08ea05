"""Shared fixtures: the real-data root (tests needing it skip with a reason when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$EMOFUSE_DATA``); skips the test when the folder is absent."""
    from emofuse.paths import data_root

    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real corpora not found at {root} (set EMOFUSE_DATA to run this test)")
    return root


@pytest.fixture(scope="session")
def _text_encoder_dir(tmp_path_factory) -> Path:
    """One folder for the ONNX text encoder (90 MB, ~10 s to build) for the whole session."""
    return tmp_path_factory.mktemp("text-encoder")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _text_encoder_dir):
    """Keep every test's feature cache out of the user's home; the ONNX text encoder built
    from the installed package is shared by all tests (tests of its caching use their own)."""
    cache = tmp_path_factory.mktemp("cache")
    (cache / "text-encoder").symlink_to(_text_encoder_dir, target_is_directory=True)
    monkeypatch.setenv("EMOFUSE_CACHE", str(cache))
