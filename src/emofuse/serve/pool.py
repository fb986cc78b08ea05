"""Where the service's predictions run: a pool of worker processes for media, a thread lane for
text.

:class:`WorkerPool` starts ``size`` processes (``forkserver``: forked from a clean process, safe
whatever threads the server process runs), each loading the models once. A request waits for a free worker in a bounded queue
(:class:`QueueFull` when ``queue`` requests are already waiting), is sent to the worker over a
pipe and answered from it. A worker that overruns the time limit is killed (SIGKILL) and a new
one started in its slot: the time limit really stops the work. Each worker has its own
temporary folder (``TMPDIR``), removed with the worker, so nothing a killed decoder left behind
survives it.

:class:`ThreadLane` runs short jobs (text: milliseconds, bounded by the text length limit) in
threads of the server process, so that they never wait behind a long video.

This module imports no web framework and no model code at import time: worker processes
import it first.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import itertools
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "JobFailed",
    "JobTimeout",
    "QueueFull",
    "ServiceError",
    "ThreadLane",
    "WorkerCrashed",
    "WorkerPool",
    "WorkerSpec",
    "cores",
    "default_workers",
    "model_folders",
    "registered_modules",
    "scrub",
    "status_of",
]

from ..media.limits import SPEECH_SR
from .errors import (JobFailed, JobTimeout, QueueFull, ServiceError, WorkerCrashed, scrub,
                     status_of)

log = logging.getLogger("emofuse.serve")


def registered_modules() -> list[str]:
    """Modules outside emofuse that registered features, models or adapters in this process
    (a worker imports them too, so that models using them load there)."""
    found: set[str] = set()
    try:
        from ..features import _REGISTRY as features
        from ..inference import _ADAPTERS as adapters
        from ..models import _REGISTRY as models
    except ImportError:  # pragma: no cover - registries renamed
        return []
    objs: list[Any] = [getattr(f, "fn", f) for f in features.values()]
    objs += list(models.values())
    objs += [getattr(a, "__self__", a) for a in adapters.values()]
    for obj in objs:
        mod = getattr(obj, "__module__", None)
        if mod and mod not in ("__main__", "__mp_main__") and mod.split(".")[0] != "emofuse":
            found.add(mod)
    return sorted(found)


# -- the worker process -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process loads: model folders, prediction options, modules to import
    first (plug-ins registering features or adapters), CPU threads and the environment."""

    models: tuple[str, ...]
    options: Any = None
    imports: tuple[str, ...] = ()
    threads: int = 1
    warmup: bool = True
    env: tuple[tuple[str, str], ...] = ()


def _worker_main(conn: Any, spec: WorkerSpec, tmpdir: str) -> None:
    """Entry point of a worker process: load the models, answer ``ready``, then one reply per
    job until the pipe closes or ``None`` arrives."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    os.environ.update(dict(spec.env))  # the server's, not the fork server's, environment
    os.environ["TMPDIR"] = tmpdir
    tempfile.tempdir = None
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(spec.threads)
    try:
        for name in spec.imports:
            importlib.import_module(name)
        from ..inference import Recognizer

        _limit_threads(spec.threads)  # before the models load: onnxruntime sessions follow torch
        rec = Recognizer.load(*spec.models, options=spec.options).warmup()
        _limit_threads(spec.threads)
        if spec.warmup:
            _warm(rec)
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which gives up
        with contextlib.suppress(Exception):
            conn.send(("fatal", scrub(f"{type(exc).__name__}: {exc}")))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if job is None:
            return
        conn.send(_run_job(rec, job))


def _limit_threads(n: int) -> None:
    """``n`` threads for torch and the BLAS libraries (numpy was imported by the fork server,
    before ``OMP_NUM_THREADS`` was set)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)


def _warm(rec: Any) -> None:
    """One throw-away prediction per media modality: the first one imports the decoders and
    feature code (seconds), which should happen before the first request, not during it."""
    import numpy as np

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "speech" in rec.modalities:
            y = (0.1 * rng.standard_normal(32_000)).astype(np.float32)
            with contextlib.suppress(Exception):
                rec.predict(y, sr=SPEECH_SR, timeline=True)
        if "face" in rec.modalities:
            with contextlib.suppress(Exception):
                rec.predict(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8))
        with contextlib.suppress(Exception):
            import av  # noqa: F401 - video decoding
            import PIL.Image  # noqa: F401


def _run_job(rec: Any, job: dict[str, Any]) -> tuple:
    path, name = job["path"], job["name"]
    try:
        pred = rec.predict(path, timeline=job.get("timeline"), source=name)
        pred.warnings = [scrub(w, path, name) for w in pred.warnings]
        return ("ok", pred.model_dump(mode="json"))
    except Exception as exc:  # noqa: BLE001 - every failure is an answer
        status = status_of(exc)
        if status == 500:
            traceback.print_exc()
            return ("error", 500, "InternalError",
                    scrub(f"internal error ({type(exc).__name__}: {exc})", path, name))
        return ("error", status, type(exc).__name__, scrub(str(exc), path, name))


# -- the pool, seen from the server -------------------------------------------------------------


class _Worker:
    """One worker process and the server's end of its pipe."""

    def __init__(self, ctx: Any, spec: WorkerSpec, slot: int, tmp_root: Path, gen: int) -> None:
        self.slot = slot
        self.tmpdir = tmp_root / f"worker-{slot}-{gen}"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, spec, str(self.tmpdir)),
                                name=f"emofuse-worker-{slot}", daemon=True)
        self.proc.start()
        child.close()
        self.pid = self.proc.pid
        self.jobs = 0
        self.ready = False
        self.reaped = False

    def _crashed(self) -> WorkerCrashed:
        code = self.proc.exitcode
        why = (f"killed by signal {-code}" if code is not None and code < 0
               else f"exit code {code}" if code is not None else "pipe closed")
        return WorkerCrashed(f"the prediction worker died ({why}); it has been replaced, "
                             "try again")

    async def recv(self, timeout: float | None) -> Any:
        """The next message from the worker; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            if fut.done():
                return
            try:
                fut.set_result(self.conn.recv())
            except (EOFError, OSError):
                self.proc.join(0.1)
                fut.set_exception(self._crashed())
            except Exception as exc:  # noqa: BLE001 - an unreadable reply
                fut.set_exception(WorkerCrashed(f"unreadable reply from the worker ({exc})"))

        loop.add_reader(fd, readable)
        try:
            return await asyncio.wait_for(fut, timeout)
        finally:
            loop.remove_reader(fd)

    def send(self, job: Any) -> None:
        try:
            self.conn.send(job)
        except (OSError, ValueError):
            raise self._crashed() from None

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.is_alive():
                self.proc.kill()

    def reap(self, grace: float = 0.0) -> None:
        """Stop the process (asked nicely for ``grace`` seconds, then killed), close the pipe
        and remove the worker's temporary folder. Blocking: call it in a thread."""
        if self.reaped:
            return
        if grace > 0 and self.proc.is_alive():
            with contextlib.suppress(Exception):
                self.conn.send(None)
            self.proc.join(grace)
        self.kill()
        self.proc.join(10)
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.proc.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        self.reaped = True


class WorkerPool:
    """``size`` worker processes loading ``spec``'s models; see the module docstring.

    :meth:`start` blocks until every worker has loaded its models (raising
    :class:`~emofuse.errors.EmofuseError` with the worker's message when one cannot);
    :meth:`run` is a coroutine; :meth:`aclose` (or :meth:`close` outside an event loop) stops
    everything and removes ``tmp_root``.
    """

    def __init__(self, spec: WorkerSpec, size: int, *, queue: int, tmp_root: Path,
                 start_timeout: float = 600.0) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.spec = spec
        self.size = int(size)
        self.queue = max(0, int(queue))
        self.tmp_root = Path(tmp_root)
        self.start_timeout = start_timeout
        self._ctx = _context()
        self._gen = itertools.count()
        self._live: set[_Worker] = set()
        self._idle: list[_Worker] = []
        self._waiters: collections.deque[asyncio.Future] = collections.deque()
        self._tasks: set[asyncio.Task] = set()
        self.waiting = 0
        self.busy = 0
        self.restarts = 0
        self.completed = 0
        self.killed = 0
        self._mean_s = 1.0
        self.closed = False

    # -- life

    def _spawn(self, slot: int) -> _Worker:
        w = _Worker(self._ctx, self.spec, slot, self.tmp_root, next(self._gen))
        self._live.add(w)
        return w

    def start(self) -> WorkerPool:
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        starting = [self._spawn(slot) for slot in range(self.size)]
        deadline = time.monotonic() + self.start_timeout
        try:
            for w in starting:
                msg = w.conn.recv() if w.conn.poll(max(0.0, deadline - time.monotonic())) \
                    else ("fatal", f"no answer within {self.start_timeout:g} s")
                if msg[0] != "ready":
                    raise _start_error(msg)
                w.ready = True
                self._idle.append(w)
        except EOFError:
            self.close()
            raise _start_error(("fatal", "the worker process exited while loading the models")
                               ) from None
        except BaseException:
            self.close()
            raise
        return self

    async def aclose(self) -> None:
        """Stop every worker (idle ones asked to finish, busy ones killed) and remove
        ``tmp_root``."""
        self.closed = True
        for t in list(self._tasks):
            t.cancel()
        for fut in self._waiters:
            if not fut.done():
                fut.set_exception(QueueFull("the service is shutting down",
                                            headers={"Retry-After": "5"}))
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    def close(self) -> None:
        """Blocking :meth:`aclose` (for use outside the event loop, and at exit)."""
        self.closed = True
        idle = set(self._idle)
        for w in list(self._live):
            w.reap(grace=2.0 if w in idle else 0.0)
        self._live.clear()
        self._idle.clear()
        shutil.rmtree(self.tmp_root, ignore_errors=True)

    # -- scheduling

    def stats(self) -> dict[str, Any]:
        ready = [w for w in self._live if w.ready]
        return {"size": self.size, "alive": sum(1 for w in ready if w.proc.is_alive()),
                "starting": len(self._live) - len(ready), "busy": self.busy, "waiting": self.waiting, "queue": self.queue,
                "completed": self.completed, "killed": self.killed, "restarts": self.restarts}

    def pids(self) -> list[int]:
        return sorted(w.pid for w in self._live if w.pid)

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the queue ahead, at the recent job time."""
        return max(1, min(60, math.ceil(self._mean_s * (self.waiting + 1) / self.size)))

    def _release(self, w: _Worker) -> None:
        if self.closed or w not in self._live:
            return
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(w)
                return
        self._idle.append(w)

    async def _acquire(self, timeout: float) -> _Worker:
        if self._idle and not self._waiters:
            return self._idle.pop()
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, timeout)
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self._release(fut.result())  # handed a worker while being cancelled
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(fut)

    def _retire(self, w: _Worker) -> None:
        """Kill ``w`` now and start a new worker in its slot."""
        w.kill()
        self._live.discard(w)
        self.killed += 1
        if not self.closed:
            task = asyncio.get_running_loop().create_task(self._replace(w))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _replace(self, old: _Worker) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, old.reap)
        for attempt in range(6):
            if self.closed:
                return
            w = self._spawn(old.slot)
            try:
                msg = await w.recv(self.start_timeout)
                if msg[0] == "ready":
                    w.ready = True
                    self.restarts += 1
                    self._release(w)
                    return
                log.error("worker %d could not load the models: %s", old.slot, msg[1:])
            except asyncio.CancelledError:
                self._live.discard(w)
                w.kill()
                await loop.run_in_executor(None, w.reap)
                raise
            except Exception as exc:  # noqa: BLE001
                log.error("worker %d did not start: %s", old.slot, exc)
            self._live.discard(w)
            await loop.run_in_executor(None, w.reap)
            await asyncio.sleep(min(30.0, 2.0 ** attempt))
        log.error("worker slot %d given up after repeated start failures", old.slot)

    async def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run ``job`` (``{"path", "name", "timeline"}``) on a free worker; the prediction as a
        dict. Raises :class:`QueueFull`, :class:`JobTimeout`, :class:`WorkerCrashed` or
        :class:`JobFailed`. ``timeout`` covers the wait for a worker and the prediction."""
        if self.closed:
            raise QueueFull("the service is shutting down", headers={"Retry-After": "5"})
        if not self._idle and self.waiting >= self.queue:
            raise QueueFull(f"the service is busy: {self.busy} predictions running and "
                            f"{self.waiting} waiting; try again shortly",
                            headers={"Retry-After": str(self.retry_after())})
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.waiting += 1
        try:
            w = await self._acquire(timeout)
            while not w.proc.is_alive():  # died while idle (killed from outside): replace it
                self._retire(w)
                w = await self._acquire(max(0.0, timeout - (loop.time() - start)))
        except TimeoutError:
            raise QueueFull(f"no prediction worker became free within {timeout:g} s; try "
                            "again shortly", headers={"Retry-After": str(self.retry_after())}
                            ) from None
        finally:
            self.waiting -= 1
        self.busy += 1
        t0 = loop.time()
        try:
            w.send(job)
            reply = await w.recv(max(0.0, timeout - (t0 - start)))
        except TimeoutError:
            self._retire(w)
            raise JobTimeout(f"prediction took longer than {timeout:g} s and was stopped; "
                             "send a shorter file") from None
        except BaseException:  # crashed, or the request was cancelled: the worker's state
            self._retire(w)    # is unknown, so it is replaced
            raise
        else:
            w.jobs += 1
            self.completed += 1
            self._mean_s = 0.8 * self._mean_s + 0.2 * (loop.time() - t0)
            self._release(w)
        finally:
            self.busy -= 1
        if reply[0] == "ok":
            return reply[1]
        _, status, kind, message = reply
        raise JobFailed(message, status=status, kind=kind)


def _context() -> Any:
    """``forkserver`` where there is one (workers forked from a clean server process, not from
    this one with its threads; and, unlike ``spawn``, without running the main script again),
    else ``spawn``."""
    if "forkserver" not in multiprocessing.get_all_start_methods():  # pragma: no cover
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # imported once in the fork server, so a new worker (after a kill) starts in a second
    # rather than importing them again; modules that are missing are skipped
    ctx.set_forkserver_preload([__name__, "numpy", "emofuse.inference", "torch"])
    return ctx


def _start_error(msg: tuple) -> Exception:
    from ..errors import EmofuseError

    return EmofuseError(f"a prediction worker could not load the models: {msg[-1]}")


class ThreadLane:
    """Jobs run in ``threads`` threads of the server process, at most ``queue`` waiting.

    For short jobs only: a job over the time limit is answered 504 but runs to its end (a
    thread cannot be killed), still counted against the queue until then.
    """

    def __init__(self, threads: int, queue: int, *, name: str = "emofuse") -> None:
        self.threads = max(1, int(threads))
        self.queue = max(0, int(queue))
        self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=name)
        self.pending = 0
        self.completed = 0

    def stats(self) -> dict[str, Any]:
        return {"threads": self.threads, "pending": self.pending, "queue": self.queue,
                "completed": self.completed}

    def _done(self, _: Any) -> None:
        self.pending -= 1
        self.completed += 1

    async def run(self, fn: Callable[[], Any], timeout: float) -> Any:
        if self.pending >= self.threads + self.queue:
            raise QueueFull(f"the service is busy: {self.pending} requests ahead; try again "
                            "shortly", headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        self.pending += 1
        fut = loop.run_in_executor(self._executor, fn)
        fut.add_done_callback(self._done)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise JobTimeout(f"prediction took longer than {timeout:g} s; send a shorter "
                             "input") from None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def cores() -> int:
    """CPU cores this process may use (its affinity where the OS tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers() -> int:
    """``min(2, cores)``."""
    return min(2, cores())


def model_folders(infos: Sequence[Any]) -> tuple[str, ...]:
    """The folders of :class:`~emofuse.inference.ModelInfo` s (what a worker loads)."""
    return tuple(str(Path(i.path).resolve()) for i in infos)
