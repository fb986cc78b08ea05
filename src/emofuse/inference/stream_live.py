"""Running a :class:`~emofuse.inference.stream.Stream` live: the threads that make its updates
as the clock passes each hop, run the face model on the newest frames and the speech model on
the newest window (a mixin of :class:`~emofuse.inference.stream.Stream`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .stream_parts import Update

__all__ = ["LiveThreads"]


class LiveThreads:
    """Live mode of a stream: :meth:`start`, :meth:`stop`, :meth:`close` and their threads.

    The attributes it uses are the stream's (lock, condition, queues, counters, options).
    """

    _cond: threading.Condition
    _lock: Any
    _running: bool
    _closed: bool
    _threads: list[threading.Thread]

    def start(self, on_update: Callable[[Update], None] | None = None, *,
              on_error: Callable[[str], None] | None = None) -> LiveThreads:
        """Run live: a thread makes updates as the clock passes each hop (merging hops when it
        falls behind) and hands them to ``on_update``; another runs the face model on the
        newest frames (older waiting ones are dropped). Stop with :meth:`stop`."""
        if self._running:
            return self
        self._on_update, self._on_error = on_update, on_error
        self._running = True
        self._threads = [threading.Thread(target=self._update_loop, name="emofuse-stream",
                                          daemon=True)]
        if "face" in self.modalities:
            self._threads.append(threading.Thread(target=self._face_loop,
                                                  name="emofuse-stream-face", daemon=True))
        if "speech" in self.modalities:
            self._threads.append(threading.Thread(target=self._speech_loop,
                                                  name="emofuse-stream-speech", daemon=True))
        for th in self._threads:
            th.start()
        return self

    def stop(self, *, flush: bool = True) -> list[Update]:
        """Stop the live threads; with ``flush``, process the frames still waiting and return
        (and hand to ``on_update``) the last updates."""
        with self._cond:
            was = self._running
            self._running = False
            self._cond.notify_all()
        for th in self._threads:
            th.join(timeout=30)
        self._threads = []
        if not flush:
            with self._lock:
                self._closed = True
            return []
        if was:
            with self._lock:
                self.counters["frames_dropped"] += len(self._pending)
                self._pending.clear()
        final = self.flush(merge=was)
        if was and self._on_update is not None:
            for u in final:
                self._deliver(u)
        return final

    def close(self) -> None:
        """Stop at once without waiting: the threads end after the work in hand; no more
        updates are made (for a client that went away)."""
        with self._cond:
            self._running = False
            self._closed = True
            self._pending.clear()
            self._speech_job = None
            self._cond.notify_all()

    def _deliver(self, u: Update) -> None:
        try:
            self._on_update(u)  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - a callback never stops the stream
            self._error(f"update callback failed ({type(exc).__name__}: {exc})")

    def _face_loop(self) -> None:
        while True:
            with self._cond:
                while self._running and not self._pending:
                    self._cond.wait(0.1)
                if not self._running:
                    return
                t, frame = self._pending.popleft()
                self._busy_t = t
            try:
                self._process_frame(t, frame)
            except Exception as exc:  # noqa: BLE001 - a bad frame never stops the stream
                self._error(f"face model failed on a frame ({type(exc).__name__}: {exc})")
            finally:
                with self._cond:
                    self._busy_t = None
                    self._cond.notify_all()

    def _update_loop(self) -> None:
        while True:
            with self._cond:
                due = self._due()
                while self._running and not due:
                    self._cond.wait(0.05)
                    due = self._due()
                if not self._running:
                    return
            try:
                u = self._make_update(due[-1], merged=len(due) - 1)
            except Exception as exc:  # noqa: BLE001 - report, skip the hop, keep going
                with self._lock:
                    self._index = max(self._index, int(round(due[-1] / self.options.hop)))
                self._error(f"update failed ({type(exc).__name__}: {exc})")
                continue
            if self._on_update is not None and not self._closed:
                self._deliver(u)

    def __enter__(self) -> LiveThreads:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop(flush=False)

    def _speech_loop(self) -> None:
        """Live: run the speech model on the newest window handed over by the update thread."""
        while True:
            with self._cond:
                while self._running and self._speech_job is None:
                    self._cond.wait(0.1)
                if not self._running:
                    return
                t, seg, piece = self._speech_job
                self._speech_job = None
            try:
                p = self._run_speech(piece)
            except Exception as exc:  # noqa: BLE001 - report, keep the stream going
                self._error(f"speech model failed ({type(exc).__name__}: {exc})")
                p = None
            with self._cond:
                if p is not None and (self._speech_cache is None
                                      or self._speech_cache[2] < t):
                    self._speech_cache = (seg, p, t)
                self._cond.notify_all()

