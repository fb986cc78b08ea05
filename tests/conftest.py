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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep every test's feature cache out of the user's home."""
    monkeypatch.setenv("EMOFUSE_CACHE", str(tmp_path_factory.mktemp("cache")))
