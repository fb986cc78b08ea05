"""SIGKILL in the middle of feature extraction, training and model saving: a rerun completes,
every output is whole, and nothing half-written is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _kill_after(code: str, env: dict[str, str], wait_for: Path, timeout: float = 120) -> None:
    """Start ``code`` in a new interpreter, SIGKILL it once ``wait_for`` exists."""
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env)
    t0 = time.monotonic()
    while not wait_for.exists():
        if p.poll() is not None:
            pytest.fail(f"the child ended (rc {p.returncode}) before it could be killed")
        if time.monotonic() - t0 > timeout:
            p.kill()
            pytest.fail("the child never reached the point to kill it at")
        time.sleep(0.01)
    time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


def test_kill_during_feature_extraction_then_rerun(tmp_path):
    env = {**os.environ, "EMOFUSE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    started = tmp_path / "started"
    code = f"""
        import numpy as np
        from pathlib import Path
        from emofuse.features.cache import FeatureCache
        c = FeatureCache()
        rng = np.random.default_rng(0)
        for i in range(100000):
            c.get_or_compute(str(i).encode(), {{"feature": "kill-test"}},
                             lambda b: rng.normal(size=(200, 200)))
            if i == 50:
                Path({str(started)!r}).touch()
    """
    _kill_after(code, env, started)
    from emofuse.features.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache" / "features")
    # the rerun: every entry readable (a half-written one was never renamed into place)
    n = 0
    for i in range(60):
        v = cache.get_or_compute(str(i).encode(), {"feature": "kill-test"},
                                 lambda b: np.zeros((200, 200)))
        assert v.shape == (200, 200)
        n += 1
    assert n == 60 and not _temps(tmp_path / "cache"), _temps(tmp_path / "cache")


def test_kill_during_model_save_leaves_old_model_or_new_one(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = tmp_path / "started"
    out = tmp_path / "model"
    code = f"""
        import torch
        from pathlib import Path
        from emofuse.train import save_model
        card = {{"task": "speech", "labels": ["a", "b"], "features": {{}}, "model": {{"name": "x"}},
                 "data": {{}}, "protocol": {{}}, "metrics": {{}}}}
        big = {{"w": torch.randn(4096, 4096)}}
        for i in range(1000):
            save_model({str(out)!r}, big, card)
            if i == 1:
                Path({str(started)!r}).touch()
    """
    _kill_after(code, env, started)
    from emofuse.train import load_model, save_model

    state, card = load_model(out)  # the last complete save: weights match the card's checksum
    assert state["w"].shape == (4096, 4096)
    save_model(out, state, card)  # a rerun writes over it and sweeps what the kill left
    assert not _temps(out), _temps(out)


@pytest.mark.slow
def test_kill_during_training_then_rerun_resumes(tmp_path):
    """Lightning writes last.ckpt every epoch; a run killed mid-training resumes from it."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    pytest.importorskip("lightning")
    code = f"""
        import time, torch
        from torch import nn
        from torch.utils.data import DataLoader, TensorDataset
        import lightning.pytorch as pl
        from emofuse.train import fit

        class M(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(8, 2)
            def training_step(self, b, i):
                time.sleep(0.02)
                return nn.functional.cross_entropy(self.net(b[0]), b[1])
            def validation_step(self, b, i):
                self.log("val_loss", nn.functional.cross_entropy(self.net(b[0]), b[1]))
            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g)
        dl = DataLoader(TensorDataset(x, y), batch_size=8)
        fit(M(), dl, dl, max_epochs=400, patience=1000, out_dir={str(out)!r}, seed=0,
            monitor="val_loss", mode="min", progress=False)
    """
    _kill_after(code, env, out / "last.ckpt", timeout=240)
    from emofuse.train.trainer import checkpoint_complete

    assert checkpoint_complete(out / "last.ckpt")
