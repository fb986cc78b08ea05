"""Training harness: learning, early stopping, resuming, determinism and 2-process CPU DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pl = pytest.importorskip("lightning.pytorch")

from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from emofuse.paths import repo_root  # noqa: E402
from emofuse.train import FitResult, fit, seed_everything  # noqa: E402
from emofuse.train.trainer import LAST, RESULT  # noqa: E402

N_IN, N_CLASSES = 8, 3


class TinyMLP(pl.LightningModule):
    """Two-layer MLP that records the epochs it trained and the ranks it ran on."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(N_IN, 16), nn.ReLU(), nn.Linear(16, N_CLASSES))
        self.epochs_seen: list[int] = []
        self.samples_seen = 0
        self.ranks: set[tuple[int, int]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        self.epochs_seen.append(self.current_epoch)
        self.ranks.add((self.global_rank, self.trainer.world_size))

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.samples_seen += len(y)
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), sync_dist=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), sync_dist=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def blobs(n: int, seed: int) -> TensorDataset:
    """Three well separated Gaussian blobs in 8 dimensions."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % N_CLASSES
    centres = torch.eye(N_CLASSES, N_IN) * 4.0
    x = centres[y] + torch.randn(n, N_IN, generator=g)
    return TensorDataset(x, y)


def loaders(n_train: int = 240, batch_size: int = 32) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(blobs(n_train, 1), batch_size=batch_size, shuffle=True)
    val = DataLoader(blobs(60, 2), batch_size=60)
    return train, val


def accuracy(module: TinyMLP, data: TensorDataset) -> float:
    x, y = data.tensors
    with torch.no_grad():
        return (module(x).argmax(1) == y).float().mean().item()


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(module: TinyMLP, out: Path, **kw) -> FitResult:
    kw = {"max_epochs": 10, "patience": 3, "seed": 0, "progress": False, **kw}
    return fit(module, *loaders(), out_dir=out, **kw)


def test_tiny_mlp_learns(tmp_path: Path) -> None:
    seed_everything(0)
    module = TinyMLP()
    t0 = time.perf_counter()
    result = run(module, tmp_path / "run", max_epochs=8)
    assert time.perf_counter() - t0 < 20
    assert accuracy(module, blobs(300, 3)) > 0.95  # best weights restored into the module
    assert result.best_path is not None and result.best_path.name == "best.ckpt"
    assert result.best_path.is_file() and (tmp_path / "run" / LAST).is_file()
    assert result.best_score == pytest.approx(min(h["val_loss"] for h in result.history))
    assert result.epochs_run == len(result.history) == len(module.epochs_seen)
    assert [h["epoch"] for h in result.history] == list(range(result.epochs_run))
    assert {"train_loss", "val_loss", "val_acc"} <= set(result.history[-1])
    train_losses = [h["train_loss"] for h in result.history]
    assert len(set(train_losses)) == len(train_losses) and train_losses[-1] < train_losses[0]
    assert result.history[-1]["val_acc"] > 0.9 and result.seconds > 0
    assert json.loads((tmp_path / "run" / RESULT).read_text())["epochs_run"] == result.epochs_run


def test_early_stopping_stops(tmp_path: Path) -> None:
    module = TinyMLP(lr=0.0)  # nothing changes, so val_loss never improves after epoch 0
    result = run(module, tmp_path, max_epochs=50, patience=2)
    assert result.stopped_early
    assert result.epochs_run == 3 and module.epochs_seen == [0, 1, 2]
    # monitoring a score to maximise works too
    result = run(TinyMLP(lr=0.0), tmp_path / "max", max_epochs=50, patience=1,
                 monitor="val_acc", mode="max")
    assert result.stopped_early and result.epochs_run == 2 and result.mode == "max"


class Crash(pl.Callback):
    """Simulates an interruption (crash, pre-empted job) at the start of an epoch."""

    def __init__(self, at_epoch: int) -> None:
        self.at_epoch = at_epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.at_epoch:
            raise RuntimeError("simulated interruption")


def test_interrupted_run_resumes_at_the_right_epoch(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run(TinyMLP(), tmp_path, max_epochs=5, patience=10, callbacks=[Crash(3)])
    assert (tmp_path / LAST).is_file() and not (tmp_path / RESULT).exists()
    module = TinyMLP()
    result = run(module, tmp_path, max_epochs=5, patience=10)
    assert module.epochs_seen == [3, 4]
    assert result.start_epoch == 3 and result.resumed and result.epochs_run == 5
    # the history of the epochs before the interruption travelled in last.ckpt
    assert [h["epoch"] for h in result.history] == [0, 1, 2, 3, 4]
    train_losses = [h["train_loss"] for h in result.history]
    assert len(set(train_losses)) == 5


def test_more_epochs_continue_and_finished_runs_return_at_once(tmp_path: Path) -> None:
    first = run(TinyMLP(), tmp_path, max_epochs=2, patience=10)
    assert first.epochs_run == 2 and not first.stopped_early
    again = TinyMLP()
    same = run(again, tmp_path, max_epochs=2, patience=10)
    assert again.epochs_seen == [] and same.epochs_run == 2  # nothing left to do
    assert same.best_score == first.best_score
    assert accuracy(again, blobs(300, 3)) > 0.9  # best weights restored all the same
    more = TinyMLP()
    result = run(more, tmp_path, max_epochs=4, patience=10)
    assert more.epochs_seen == [2, 3] and result.epochs_run == 4
    fresh = TinyMLP()
    run(fresh, tmp_path, max_epochs=2, patience=10, resume=False)
    assert fresh.epochs_seen == [0, 1]


def test_truncated_last_checkpoint_starts_afresh(tmp_path: Path) -> None:
    run(TinyMLP(), tmp_path, max_epochs=1, patience=10)
    (tmp_path / RESULT).unlink()
    last = tmp_path / LAST
    last.write_bytes(last.read_bytes()[:200])
    module = TinyMLP()
    result = run(module, tmp_path, max_epochs=2, patience=10)
    assert module.epochs_seen == [0, 1] and result.start_epoch == 0


def test_same_seed_same_weights(tmp_path: Path) -> None:
    weights = []
    for name in ("a", "b"):
        seed_everything(7)
        module = TinyMLP()
        run(module, tmp_path / name, max_epochs=2, seed=7)
        weights.append(module.state_dict())
    for k in weights[0]:
        assert torch.equal(weights[0][k], weights[1][k]), k


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_epochs"):
        fit(TinyMLP(), None, None, max_epochs=0, patience=1, out_dir="unused", seed=0)
    with pytest.raises(ValueError, match="mode"):
        fit(TinyMLP(), None, None, max_epochs=1, patience=1, out_dir="unused", seed=0,
            mode="best")


DDP_SCRIPT = textwrap.dedent("""
    import json, sys
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, {repo!r})
    from safetensors.torch import save_file
    from tests.train.test_trainer import TinyMLP, loaders
    from emofuse.train import fit, seed_everything

    out = sys.argv[1]
    seed_everything(0)
    module = TinyMLP()
    result = fit(module, *loaders(), max_epochs=3, patience=10, out_dir=out + "/run", seed=0,
                 accelerator="cpu", devices=2, strategy="ddp", progress=False,
                 restore_best=False)
    [(rank, world)] = module.ranks
    save_file({{k: v.contiguous() for k, v in module.state_dict().items()}},
              f"{{out}}/rank{{rank}}.safetensors")
    with open(f"{{out}}/rank{{rank}}.json", "w") as f:
        json.dump({{"world": world, "samples": module.samples_seen,
                   "epochs": module.epochs_seen, "epochs_run": result.epochs_run}}, f)
""")


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(repo=str(repo_root())))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for info in infos:
        assert info["world"] == 2 and info["epochs"] == [0, 1, 2] and info["epochs_run"] == 3
        assert info["samples"] == 3 * 120  # the distributed sampler gave each rank half
    w0, w1 = (load_file(str(tmp_path / f"rank{r}.safetensors")) for r in (0, 1))
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    assert not torch.equal(w0["net.0.weight"], TinyMLP().net[0].weight.detach())
    assert elapsed < 60, f"DDP test took {elapsed:.1f} s"
