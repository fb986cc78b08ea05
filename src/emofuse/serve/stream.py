"""``/stream``: live emotion over a WebSocket (:class:`emofuse.inference.Stream` per connection).

The client speaks first, in JSON text messages, then sends media as binary messages:

``{"type": "start", "rate": 48000, "channels": 1, "format": "s16le"}``
    Opens the stream (``format``: ``s16le``, 16-bit little-endian PCM, or ``f32le``; optional
    ``hop`` and ``window`` in seconds). Answered ``{"type": "ready", "modalities": [...],
    "hop": ..., "limit": ...}``.
binary: audio
    Interleaved PCM at the announced rate (any rate; resampled to 16 kHz).
binary: a JPEG (or PNG) picture
    A video frame, told from audio by its first bytes; taken at the stream's current time, or
    at ``t`` of a ``{"type": "frame", "t": seconds}`` message sent just before it.
``{"type": "stop"}``
    Ends the stream: the last updates, then ``{"type": "end", "counters": {...}}`` and the
    socket is closed.

The server sends ``{"type": "update", ...}`` every hop (the fields of
:class:`~emofuse.inference.Update`, plus ``updates_merged``) and ``{"type": "error", "error":
kind, "detail": message}`` for a malformed message; the stream stays open. When the client
sends faster than the models keep up, frames waiting for the face model are dropped
(``counters.frames_dropped``), late hops are merged into one update (``merged``,
``counters.hops_merged``), and updates the client has not read yet are replaced by newer ones
(``updates_merged``). At most ``max_streams`` streams run at once: the next connection gets
an error ``TooManyStreams`` and is closed with code 1013 (try again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from ..errors import EmofuseError
from ..inference import Recognizer, Stream, StreamOptions, StreamSlots, TooManyStreams
from ..inference.stream_parts import STREAM_MODALITIES
from ..media.limits import SPEECH_SR

__all__ = ["mount_stream", "DEFAULT_MAX_STREAMS", "IDLE_TIMEOUT_S"]

#: Live streams served at once; the next is refused.
DEFAULT_MAX_STREAMS = 4
#: A stream that receives nothing for this long is closed.
IDLE_TIMEOUT_S = 60.0
_FORMATS = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
_MAX_CHANNELS = 8


def _is_image(data: bytes) -> bool:
    """A JPEG (SOI marker and EOI at the end) or PNG (signature)."""
    return (len(data) > 64 and data[:3] == b"\xff\xd8\xff" and data[-2:] == b"\xff\xd9") or \
        data[:8] == b"\x89PNG\r\n\x1a\n"


def mount_stream(app: FastAPI, recognizer: Recognizer, *,
                 max_streams: int = DEFAULT_MAX_STREAMS,
                 options: StreamOptions | None = None,
                 idle_timeout_s: float = IDLE_TIMEOUT_S) -> StreamSlots:
    """Add the ``/stream`` WebSocket to ``app``; returns its :class:`StreamSlots`."""
    slots = StreamSlots(max_streams)
    app.state.streams = slots
    base = options or StreamOptions()
    modalities = [m for m in STREAM_MODALITIES if m in recognizer.models]

    @app.websocket("/stream")
    async def stream_socket(ws: WebSocket) -> None:
        await ws.accept()
        try:
            slots.acquire()
        except TooManyStreams as exc:
            with contextlib.suppress(Exception):
                await ws.send_json({"type": "error", "error": "TooManyStreams",
                                    "detail": str(exc), "limit": slots.limit})
                await ws.close(code=1013, reason="too many streams")
            return
        try:
            await _Session(ws, recognizer, base, modalities, slots, idle_timeout_s).run()
        finally:
            slots.release()

    return slots


class _Session:
    """One WebSocket stream: reads messages, feeds the stream, sends its updates."""

    def __init__(self, ws: WebSocket, recognizer: Recognizer, options: StreamOptions,
                 modalities: Sequence[str], slots: StreamSlots, idle_timeout_s: float) -> None:
        self.ws = ws
        self.rec = recognizer
        self.options = options
        self.modalities = list(modalities)
        self.slots = slots
        self.idle = idle_timeout_s
        self.stream: Stream | None = None
        self.rate = SPEECH_SR
        self.channels = 1
        self.dtype = _FORMATS["s16le"]
        self.frame_t: float | None = None
        self.t0 = time.perf_counter()
        self.loop = asyncio.get_running_loop()
        self.outbox: deque[dict[str, Any]] = deque()  # messages to send, in order
        self.merged = 0  # updates replaced by a newer one before the client read them
        self.wake = asyncio.Event()
        self.closed = False

    # -- sending (one task; the stream's threads hand over through the event loop)

    def _post_update(self, u: Any) -> None:
        doc = {"type": "update", **u.model_dump(mode="json")}
        self.loop.call_soon_threadsafe(self._queue, doc)

    def _post_error(self, message: str) -> None:
        self.loop.call_soon_threadsafe(self._queue, {"type": "error", "error": "BadFrame",
                                                     "detail": message})

    def _queue(self, doc: dict[str, Any]) -> None:
        """Queue a message; an update replaces an update still waiting at the end of the
        queue (the client reads slower than the stream updates), errors are capped."""
        if doc["type"] == "update" and self.outbox and self.outbox[-1]["type"] == "update":
            self.outbox[-1] = doc
            self.merged += 1
        elif doc["type"] == "error" and sum(d["type"] == "error" for d in self.outbox) >= 50:
            return
        else:
            self.outbox.append(doc)
        self.wake.set()

    async def _sender(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                doc = self.outbox.popleft()
                if doc["type"] == "update":
                    doc["updates_merged"] = self.merged
                await self.ws.send_text(json.dumps(doc, ensure_ascii=False))
            if self.closed:
                return

    # -- receiving

    async def run(self) -> None:
        sender = asyncio.ensure_future(self._sender())
        try:
            while True:
                try:
                    msg = await asyncio.wait_for(self.ws.receive(), self.idle)
                except TimeoutError:
                    self._queue({"type": "error", "error": "IdleTimeout",
                                 "detail": f"nothing received for {self.idle:g} s: closing "
                                           "the stream"})
                    await self._drain(sender)
                    await self.ws.close(code=1000, reason="idle")
                    return
                if msg["type"] == "websocket.disconnect":
                    return
                if msg.get("text") is not None:
                    if await self._text(msg["text"], sender):
                        return
                elif msg.get("bytes") is not None:
                    self._binary(msg["bytes"])
        except (WebSocketDisconnect, RuntimeError):
            return  # the client went away
        finally:
            self.closed = True
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender
            if self.stream is not None:  # never awaited: a cancelled task still stops it
                stream, self.stream = self.stream, None
                stream.close()

    async def _drain(self, sender: asyncio.Task) -> None:
        """Send what is queued (the sender stops once it is sent)."""
        self.closed = True
        self.wake.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sender, 10)

    def _error(self, message: str, kind: str = "BadMessage") -> None:
        self._queue({"type": "error", "error": kind, "detail": message})

    async def _text(self, text: str, sender: asyncio.Task) -> bool:
        """Handle a JSON message; ``True`` when the stream is over."""
        try:
            msg = json.loads(text)
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            self._error(f"not JSON ({exc.__class__.__name__}): send "
                        '{"type": "start", "rate": 16000} first, then binary audio and JPEG '
                        "frames")
            return False
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            self._error('a message must be a JSON object with a "type" (start, frame, stop)')
            return False
        kind = msg["type"]
        if kind == "start":
            await self._start(msg)
        elif kind == "frame":
            t = msg.get("t")
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                    or t < 0:
                self._error(f'"frame" needs "t": seconds into the stream, not {t!r}')
            else:
                self.frame_t = float(t)
        elif kind == "stop":
            await self._stop(sender)
            return True
        else:
            self._error(f"unknown message type {kind!r} (start, frame, stop)")
        return False

    async def _start(self, msg: dict[str, Any]) -> None:
        if self.stream is not None:
            self._error("the stream has already started")
            return
        rate, channels = msg.get("rate", SPEECH_SR), msg.get("channels", 1)
        fmt = msg.get("format", "s16le")
        problems = []
        if isinstance(rate, bool) or not isinstance(rate, int) or not 2000 <= rate <= 768_000:
            problems.append(f'"rate" must be an integer from 2000 to 768000 Hz, not {rate!r}')
        if isinstance(channels, bool) or not isinstance(channels, int) \
                or not 1 <= channels <= _MAX_CHANNELS:
            problems.append(f'"channels" must be 1 to {_MAX_CHANNELS}, not {channels!r}')
        if fmt not in _FORMATS:
            problems.append(f'"format" must be s16le or f32le, not {fmt!r}')
        changes: dict[str, Any] = {}
        for key in ("hop", "window"):
            if key in msg:
                changes[key] = msg[key]
        try:
            opts = StreamOptions(**{**self.options.__dict__, **changes})
        except (EmofuseError, TypeError) as exc:
            problems.append(str(exc))
        if problems:
            self._error("; ".join(problems))
            return
        self.rate, self.channels, self.dtype = int(rate), int(channels), _FORMATS[fmt]
        try:
            stream = await run_in_threadpool(Stream, self.rec, opts, modalities=self.modalities)
        except EmofuseError as exc:
            self._error(str(exc), "StreamUnavailable")
            return
        self.stream = stream.start(self._post_update, on_error=self._post_error)
        self.t0 = time.perf_counter()
        self._queue({"type": "ready", "modalities": stream.modalities,
                                "hop": opts.hop, "window": opts.window, "rate": self.rate,
                                "limit": self.slots.limit, "active": self.slots.active})

    async def _stop(self, sender: asyncio.Task) -> None:
        stream, self.stream = self.stream, None
        counters: dict[str, Any] = {}
        if stream is not None:
            final = await run_in_threadpool(stream.stop)  # delivered through _post_update
            counters = dict(final[-1].counters) if final else dict(stream.counters)
        await asyncio.sleep(0)  # let the last call_soon_threadsafe run
        self._queue({"type": "end", "counters": counters, "updates_merged": self.merged})
        await self._drain(sender)
        with contextlib.suppress(Exception):
            await self.ws.close(code=1000)

    def _binary(self, data: bytes) -> None:
        if self.stream is None:
            self._error('send {"type": "start", "rate": ...} before audio or frames')
            return
        if _is_image(data):
            t = self.frame_t
            self.frame_t = None
            if t is None:
                t = self.stream.time if "speech" in self.stream.modalities and \
                    self.stream.counters["chunks"] else time.perf_counter() - self.t0
            self.stream.push_frame(bytes(data), t)
            return
        width = self.dtype.itemsize * self.channels
        if len(data) % width:
            self._error(f"an audio chunk of {len(data)} bytes is not a whole number of "
                        f"{self.channels}-channel {self.dtype.itemsize * 8}-bit samples")
            return
        if not data:
            return
        y = np.frombuffer(data, dtype=self.dtype)
        if self.channels > 1:
            y = y.reshape(-1, self.channels)
        try:
            self.stream.push_audio(y, self.rate)
        except EmofuseError as exc:
            self._error(str(exc))
