"""A thin, quiet wrapper over Lightning: seeding, early stopping, checkpoints and resuming.

>>> result = fit(module, train_loader, val_loader, max_epochs=50, patience=5,
...              out_dir="runs/x/fold0/seed0", seed=0)            # doctest: +SKIP
>>> result.best_score, result.epochs_run                          # doctest: +SKIP

``out_dir`` holds ``best.ckpt`` (best ``monitor`` so far), ``last.ckpt`` (end of the latest
epoch) and ``result.json`` (written when a fit ends). Calling :func:`fit` again with the same
``out_dir`` resumes an interrupted run from ``last.ckpt`` at the next epoch, continues a run
that ended at ``max_epochs`` when given more epochs, and returns a finished run at once. These
checkpoints are our own training-state files (Lightning's format, which uses pickle); never
point ``out_dir`` at files from elsewhere. Models to share are exported with
:func:`emofuse.models.checkpoint.save_model` (safetensors, no pickle).

The validation loader must come from inside the training fold: early stopping on test data
would leak the test set into model selection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import random
import time
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint, RichProgressBar

from ..errors import DataError

__all__ = ["FitResult", "fit", "seed_everything", "checkpoint_complete", "BEST", "LAST", "RESULT"]

log = logging.getLogger(__name__)

BEST = "best.ckpt"
LAST = "last.ckpt"
RESULT = "result.json"


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    best_path
        Checkpoint with the best ``monitor`` value (``None`` if no validation epoch ran).
    best_score
        That value.
    epochs_run
        Epochs completed in total, including those before a resume.
    start_epoch
        Epoch this call started at (``0`` for a fresh run, ``> 0`` after a resume).
    stopped_early
        Whether early stopping ended the run before ``max_epochs``.
    seconds
        Wall time of this call.
    history
        One dict of logged scalar metrics per epoch (``epoch`` included).
    """

    best_path: Path | None
    best_score: float | None
    epochs_run: int
    start_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    monitor: str = "val_loss"
    mode: str = "min"
    max_epochs: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def resumed(self) -> bool:
        return self.start_epoch > 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["best_path"] = None if self.best_path is None else str(self.best_path)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        d = dict(d)
        d["best_path"] = None if d.get("best_path") is None else Path(d["best_path"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def seed_everything(seed: int, deterministic: bool = True) -> int:
    """Seed Python, NumPy and torch (and dataloader workers); optionally ask for deterministic
    kernels (warning, not failing, where an op has none). Returns ``seed``."""
    os.environ["PYTHONHASHSEED"] = str(seed)  # inherited by worker/DDP child processes
    pl.seed_everything(seed, workers=True, verbose=False)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return seed


def fit(module: Any, train_loader: Any, val_loader: Any, *, max_epochs: int, patience: int,
        out_dir: str | os.PathLike, seed: int, monitor: str = "val_loss",
        mode: Literal["min", "max"] = "min", accelerator: str = "cpu",
        devices: int | list[int] | str = 1, strategy: str = "auto", num_nodes: int = 1,
        resume: bool = True,
        progress: bool = True, deterministic: bool = True, num_threads: int | None = None,
        min_delta: float = 0.0, gradient_clip_val: float | None = None,
        restore_best: bool = True, callbacks: Sequence[Any] = ()) -> FitResult:
    """Train ``module`` with early stopping on ``val_loader`` and checkpoints in ``out_dir``.

    Parameters
    ----------
    module
        A ``LightningModule`` that logs ``monitor`` in its validation step (in DDP, log it with
        ``sync_dist=True``).
    train_loader, val_loader
        Data loaders; the validation data must be part of the training fold.
    max_epochs, patience
        Upper bound of epochs; epochs without improvement of ``monitor`` (by more than
        ``min_delta``) before stopping.
    out_dir
        Folder of this run's checkpoints; reused for resuming (see module docstring).
    seed, deterministic
        Passed to :func:`seed_everything` before the module is trained.
    accelerator, devices, strategy, num_nodes
        Lightning's hardware settings (``strategy="ddp"``/``"ddp_spawn"`` with ``devices=2``
        trains two processes, on CPU through gloo; ``num_nodes`` machines, each with
        ``devices``, under a cluster launcher).
    resume
        Continue from ``out_dir/last.ckpt`` when present; ``False`` starts afresh and replaces
        this folder's earlier checkpoints.
    progress
        Show a rich progress bar; otherwise train silently.
    num_threads
        Cap torch's CPU threads in this process (``None``: leave as is).
    restore_best
        Load the best checkpoint's weights into ``module`` when done.
    callbacks
        Extra Lightning callbacks.
    """
    if max_epochs < 1 or patience < 1:
        raise ValueError(f"max_epochs and patience must be >= 1, got {max_epochs}, {patience}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if num_threads:
        torch.set_num_threads(num_threads)

    if resume and (done := _finished(out, max_epochs)) is not None:
        if restore_best:
            _restore(module, done.best_path or out / LAST)
        done.start_epoch, done.seconds = done.epochs_run, time.perf_counter() - started
        return done
    ckpt_path = _resume_point(out) if resume else None
    if _is_launching_rank():  # a result.json of an earlier call must not outlive this one
        _remove_own_files(out, keep_checkpoints=ckpt_path is not None)

    seed_everything(seed, deterministic)
    early = EarlyStopping(monitor=monitor, mode=mode, patience=patience, min_delta=min_delta,
                          check_finite=True, strict=True)
    # Lightning's own ``save_last`` only saves when the best checkpoint is saved; resuming
    # needs every epoch, hence a second, unmonitored checkpoint saved when an epoch ends (after
    # its validation, so it holds the early-stopping and best-tracking state of that epoch).
    best = ModelCheckpoint(dirpath=out, filename=Path(BEST).stem, monitor=monitor, mode=mode,
                           save_top_k=1, auto_insert_metric_name=False,
                           enable_version_counter=False)
    last = ModelCheckpoint(dirpath=out, filename=Path(LAST).stem, monitor=None, save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False,
                           save_on_train_epoch_end=True)
    recorder = _Recorder(out, max_epochs, monitor, mode)
    cbs: list[Any] = [early, recorder, best, last, *callbacks]
    if progress:
        cbs.append(RichProgressBar(leave=True))
    with _quiet():
        trainer = pl.Trainer(
            max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
            num_nodes=num_nodes, callbacks=cbs, logger=False, default_root_dir=out, enable_progress_bar=progress,
            enable_model_summary=False, deterministic="warn" if deterministic else False,
            gradient_clip_val=gradient_clip_val)
        trainer.fit(module, train_loader, val_loader,
                    ckpt_path=str(ckpt_path) if ckpt_path else None)
    result = _read_result(out)
    if result is None:  # e.g. a strategy that did not run our callback in this process
        raise RuntimeError(f"{out / RESULT}: training ended without writing its result")
    if restore_best and result.best_path is not None and result.best_path.is_file():
        _restore(module, result.best_path)
    result.seconds = time.perf_counter() - started
    return result


class _Recorder(Callback):
    """Per-epoch metric history (kept in checkpoints) and ``result.json`` at the end."""

    def __init__(self, out: Path, max_epochs: int, monitor: str, mode: str) -> None:
        self.out, self.max_epochs, self.monitor, self.mode = out, max_epochs, monitor, mode
        self.history: list[dict[str, float]] = []
        self.start_epoch = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_epoch = trainer.current_epoch
        self.history = [h for h in self.history if h["epoch"] < self.start_epoch]

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # by now this epoch's validation ran and its training metrics are reduced; this runs
        # before the checkpoint callbacks (Lightning runs those last), so last.ckpt holds it
        self.history.append({"epoch": trainer.current_epoch,
                             **_scalars(trainer.callback_metrics)})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            cb, early = trainer.checkpoint_callback, trainer.early_stopping_callback
            best = cb.best_model_path if cb is not None else ""
            score = cb.best_model_score if cb is not None else None
            result = FitResult(
                best_path=Path(best) if best else None,
                best_score=None if score is None else float(score),
                epochs_run=trainer.current_epoch, start_epoch=self.start_epoch,
                stopped_early=bool(early is not None and early.stopped_epoch > 0),
                monitor=self.monitor, mode=self.mode, max_epochs=self.max_epochs,
                history=self.history)
            _write_json(self.out / RESULT, result.to_dict())
        trainer.strategy.barrier("emofuse_result_written")

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            out[k] = float(v)
        elif isinstance(v, (int, float)):
            out[k] = float(v)
    return out


def _is_launching_rank() -> bool:
    """False in the extra processes that Lightning's ``ddp`` launcher starts (rank > 0)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def _resume_point(out: Path) -> Path | None:
    """``last.ckpt`` when it is a complete checkpoint; a truncated one is set aside."""
    last = out / LAST
    if not last.is_file():
        return None
    if checkpoint_complete(last):
        return last
    log.warning("%s is incomplete (interrupted while saving?); training from scratch", last)
    return None


def checkpoint_complete(ckpt: Path) -> bool:
    """A checkpoint file that torch.save finished: a zip whose index (written last) reads."""
    try:
        with zipfile.ZipFile(ckpt) as z:
            return z.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


def _finished(out: Path, max_epochs: int) -> FitResult | None:
    """The stored result when the run in ``out`` needs no more epochs."""
    result = _read_result(out)
    if result is None or not (out / LAST).is_file():
        return None
    if result.best_path is not None and not checkpoint_complete(result.best_path):
        log.warning("%s is missing or incomplete; training again", result.best_path)
        return None
    if not checkpoint_complete(out / LAST):
        return None
    if result.stopped_early or result.epochs_run >= max_epochs:
        return result
    return None


def _read_result(out: Path) -> FitResult | None:
    try:
        result = FitResult.from_dict(json.loads((out / RESULT).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if result.best_path is not None:  # our files live in ``out``, wherever it has moved
        result.best_path = out / result.best_path.name
    return result


def _remove_own_files(out: Path, keep_checkpoints: bool = False) -> None:
    for name in (RESULT,) if keep_checkpoints else (RESULT, BEST, LAST):
        (out / name).unlink(missing_ok=True)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=True), encoding="utf-8")
    os.replace(tmp, path)


def _restore(module: Any, ckpt: Path) -> None:
    """Load the weights of one of our own checkpoints (trusted: written by :func:`fit`)."""
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # never unpickle arbitrary objects
        raise DataError(ckpt, "checkpoint holds objects other than tensors and plain data "
                        "(save only plain hyper-parameters in the module)") from exc
    module.load_state_dict(state["state_dict"])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's informational logs and advisory warnings during a fit."""
    names = ("lightning", "lightning.pytorch", "lightning.fabric", "lightning_utilities")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PossibleUserWarning)
            for pattern in (r".*does not have many workers.*",
                            r".*exists and is not empty.*",
                            r".*smaller than the logging interval.*",
                            r".*GPU available but not used.*",
                            r".*isinstance\(treespec, LeafSpec\).*"):  # torch>=2.10 vs Lightning
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
