"""Running the service with uvicorn, with the limits on slow clients that uvicorn lacks.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits forever for the
headers of a request that trickle in. :class:`GuardedH11Protocol` gives every request
``header_timeout`` seconds for its headers (a new connection, or the next request on a kept-alive
one), then answers 408 and closes; malformed requests get a JSON 400 like every other error.
Slow bodies are limited by :class:`emofuse.serve.app.RequestGuard` (a pause of
``read_timeout_s`` between two pieces, ``body_timeout_s`` for the whole body), and bodies are
read completely before a worker is taken, so a slow client never holds one.

>>> from emofuse.serve import create_app
>>> from emofuse.serve.server import run
>>> run(create_app(["default"]), host="127.0.0.1", port=8000)     # doctest: +SKIP
"""

from __future__ import annotations

import json
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["GuardedH11Protocol", "config", "error_body", "run"]

#: Largest request head (request line and headers) accepted.
MAX_HEAD_BYTES = 16 * 1024


def error_body(status: int, message: str, kind: str) -> bytes:
    """The service's error format: ``{"detail", "error", "status"}``."""
    return json.dumps({"detail": message, "error": kind, "status": status}).encode()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a time limit on request headers and JSON 400 answers."""

    header_timeout: float = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        self._header_timer = None
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None
                                                or self.cycle.response_complete):
            self._arm()  # the next request on this connection gets the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a request is being answered
        if self.conn.their_state is not h11.IDLE:  # the unread rest of an answered request
            self.transport.close()
            return
        body = error_body(408, f"the request headers did not arrive within "
                          f"{self.header_timeout:g} s", "RequestTimeout")
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json"
                             b"\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (len(body), body))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        body = error_body(400, f"malformed HTTP request ({msg.rstrip('.')})", "BadRequest")
        try:
            out = self.conn.send(h11.Response(status_code=400, reason=b"Bad Request", headers=[
                (b"content-type", b"application/json"), (b"connection", b"close"),
                (b"content-length", str(len(body)).encode())]))
            out += self.conn.send(h11.Data(data=body))
            out += self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            out = (b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                   b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        self.transport.write(out)
        self.transport.close()


def config(app: Any, *, host: str = "127.0.0.1", port: int = 8000,
           header_timeout_s: float | None = None, log_level: str = "info",
           **kwargs: Any) -> uvicorn.Config:
    """A uvicorn configuration for ``app`` (from :func:`~emofuse.serve.create_app`): the guarded
    h11 protocol (headers within the app's ``read_timeout_s``), 5 s keep-alive, 16 KiB heads."""
    limits = getattr(getattr(app, "state", None), "limits", {}) or {}
    timeout = float(header_timeout_s or limits.get("read_timeout_s") or 10.0)
    protocol = type("EmofuseH11Protocol", (GuardedH11Protocol,), {"header_timeout": timeout})
    kwargs.setdefault("timeout_keep_alive", 5)
    kwargs.setdefault("timeout_graceful_shutdown", 10)
    kwargs.setdefault("lifespan", "on")
    return uvicorn.Config(app, host=host, port=port, http=protocol, log_level=log_level,
                          h11_max_incomplete_event_size=MAX_HEAD_BYTES, **kwargs)


def run(app: Any, **kwargs: Any) -> None:
    """Serve ``app`` until interrupted (arguments as :func:`config`)."""
    uvicorn.Server(config(app, **kwargs)).run()
