"""Shared fixtures: the real-data root (tests needing it skip with a reason when absent), one
feature cache per test, and the order and threads of a parallel run (``make test``: xdist)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_OMP_GIVEN = "OMP_NUM_THREADS" in os.environ


def pytest_configure(config: pytest.Config) -> None:
    """Two BLAS/torch threads in a serial run, one per worker in a parallel one (workers
    inherit the controller's setting); an ``OMP_NUM_THREADS`` given by the caller is kept."""
    if not _OMP_GIVEN:
        parallel = getattr(config.option, "numprocesses", None) or \
            os.environ.get("PYTEST_XDIST_WORKER")
        os.environ["OMP_NUM_THREADS"] = "1" if parallel else "2"


#: Modules whose tests share a session feature cache (``shared_cache``) with another module's:
#: a parallel run keeps them on that module's worker (module -> the module it goes with).
SAME_WORKER = {
    "tests/test_configs.py": "tests/recipes/test_speech.py",                 # "speech-quick"
    "tests/recipes/test_fusion_whisper.py": "tests/recipes/test_fusion.py",  # "av-ravdess-quick"
    "tests/recipes/test_xcorpus_align.py": "tests/recipes/test_xcorpus.py",  # "xcorpus-speech-quick"
    "tests/recipes/test_xcorpus_model.py": "tests/recipes/test_xcorpus.py",
}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` (pyproject.toml): a module's tests run on one worker, one after the
    other, so that its module-scoped fixtures are set up once, and the modules of
    :data:`SAME_WORKER` go with their partner. Modules are handed out in collection order."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SAME_WORKER.get(module, module)

    return ModuleScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In a parallel run, tests marked ``slow`` first (otherwise in file order), so that the
    modules holding them are handed out first: the workers start on the long ones and finish
    together on the many quick ones. A serial run keeps file order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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


@pytest.fixture(scope="session")
def _whisper_dir(tmp_path_factory) -> Path:
    """One ``whisper-base`` folder (model.bin joined from the wheels, ~1.5 s, and the ONNX
    encoder exports, ~5 s each) for the whole session."""
    return tmp_path_factory.mktemp("whisper-base")


def _link_shared(cache: Path, text_encoder: Path, whisper: Path) -> Path:
    (cache / "text-encoder").symlink_to(text_encoder, target_is_directory=True)
    (cache / "whisper-base").symlink_to(whisper, target_is_directory=True)
    return cache


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory, _text_encoder_dir, _whisper_dir) -> Callable[[str], Path]:
    """``shared_cache(name)``: a feature cache that every test asking for ``name`` gets in this
    session (the first one extracts the features, the others read them), for tests that run
    the same quick subset of a real corpus. Tests of different modules sharing one need their
    modules in :data:`SAME_WORKER` (each worker of a parallel run has its own caches)."""
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = _link_shared(tmp_path_factory.mktemp(f"{name}-cache"), _text_encoder_dir,
                                      _whisper_dir)
        return made[name]

    return get


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, _text_encoder_dir, _whisper_dir):
    """Keep every test's feature cache out of the user's home; the ONNX text encoder built
    from the installed package and the Whisper model folder are shared by all tests (tests
    of their building and caching use a cache of their own)."""
    cache = _link_shared(tmp_path_factory.mktemp("cache"), _text_encoder_dir, _whisper_dir)
    monkeypatch.setenv("EMOFUSE_CACHE", str(cache))
