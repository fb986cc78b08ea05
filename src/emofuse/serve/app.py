"""The emofuse web service (FastAPI): ``POST /predict``, ``GET /health``, ``GET /models``, a web
page at ``/`` and the API's description at ``/docs`` (offline: no CDN).

>>> from emofuse.serve import create_app
>>> app = create_app(models=["default"])            # doctest: +SKIP
>>> # emofuse.serve.server.run(app, host="127.0.0.1", port=8000)

``POST /predict`` takes a multipart upload in the field ``file`` (audio, image, video or a text
file; the type is read from the content), or text: a form field ``text``, a JSON body
``{"text": "..."}`` or a ``text/plain`` body; one input per request (a form with both a file
and a text is a 400). ``?timeline=true`` adds per-segment results.

Files are predicted by a pool of worker processes (:class:`~emofuse.serve.pool.WorkerPool`),
each with its own copy of the models; a prediction over the time limit is stopped by killing
its worker, which is replaced. Text is predicted in threads of the server process (it takes
milliseconds), so it never waits behind a long video.

It answers a :class:`~emofuse.inference.Prediction` as JSON, or an error
``{"detail": message, "error": kind, "status": status}`` -- for every error, FastAPI's own
included -- with status 400 (empty or malformed request), 404 / 405 (no such page / method),
408 (headers or body too slow), 413 (upload over the limit: refused from its ``Content-Length``
before any byte is read, or as soon as the bytes received pass the limit), 415 (unsupported
type, or content that contradicts its name), 422 (undecodable media, no face, no model for
that input; invalid query parameters), 503 + ``Retry-After`` (every worker busy and the queue
full), 504 (prediction over the time limit) or 500 (a bug: the service stays up). Messages
name the upload's file name, never a path on the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import os
import re
import shutil
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from .. import __version__
from ..errors import EmofuseError
from ..inference import Recognizer
from .pool import (
    JobFailed,
    QueueFull,
    ServiceError,
    ThreadLane,
    WorkerPool,
    WorkerSpec,
    _run_job,
    cores,
    default_workers,
    model_folders,
    registered_modules,
    scrub,
    status_of,
)
from .server import error_body

__all__ = [
    "DEFAULT_MAX_UPLOAD_MB",
    "DEFAULT_QUEUE",
    "DEFAULT_READ_TIMEOUT_S",
    "DEFAULT_TIMEOUT_S",
    "STATIC_DIR",
    "BodyLimit",
    "BodyTimeout",
    "RequestGuard",
    "UploadTooLarge",
    "create_app",
]

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_QUEUE = 64
DEFAULT_READ_TIMEOUT_S = 10.0
DEFAULT_BODY_TIMEOUT_S = 300.0
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class UploadTooLarge(EmofuseError):
    """The request body is larger than the service accepts."""


class BodyTimeout(EmofuseError):
    """The request body arrives too slowly."""


def _kind_of(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase.title().replace(" ", "").replace("-", "")
    except ValueError:
        return "HTTPError"


class RequestGuard:
    """ASGI middleware limiting request bodies: size and speed.

    A ``Content-Length`` over ``max_bytes`` is answered 413 at once, without reading the body;
    otherwise (chunked uploads, lying headers) the bytes are counted as they arrive and the
    answer is 413 as soon as they pass the limit. A body that pauses for more than
    ``read_timeout_s`` between two pieces, or takes more than ``body_timeout_s`` in all, is
    answered 408.
    """

    def __init__(self, app: Any, max_bytes: int, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
                 body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.read_timeout_s = float(read_timeout_s)
        self.body_timeout_s = float(body_timeout_s)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        limit_mb = self.max_bytes / 1e6
        if length is not None:
            if not length.strip().isdigit():
                await _send_json(send, 400, "malformed Content-Length header", "BadRequest")
                return
            if int(length) > self.max_bytes:
                await _send_json(send, 413, f"upload of {int(length) / 1e6:.1f} MB exceeds the "
                                 f"{limit_mb:g} MB limit", "UploadTooLarge")
                return
        seen = 0
        started = False
        body_done = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s

        async def guarded_receive() -> dict:
            nonlocal seen, body_done
            if body_done:  # waiting for the client to go away: no time limit
                return await receive()
            left = deadline - loop.time()
            wait = min(self.read_timeout_s, left)
            try:
                message = await asyncio.wait_for(receive(), max(0.0, wait))
            except TimeoutError:
                if wait < self.read_timeout_s:
                    raise BodyTimeout(f"the request body did not arrive within "
                                      f"{self.body_timeout_s:g} s") from None
                raise BodyTimeout(f"the request body stalled for {self.read_timeout_s:g} s"
                                  ) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise UploadTooLarge(f"upload exceeds the {limit_mb:g} MB limit")
                if not message.get("more_body", False):
                    body_done = True
            else:
                body_done = True
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracking_send)
        except UploadTooLarge as exc:
            if not started:
                await _send_json(send, 413, str(exc), "UploadTooLarge")
        except BodyTimeout as exc:
            if not started:
                await _send_json(send, 408, str(exc), "RequestTimeout")


#: The former name of :class:`RequestGuard`.
BodyLimit = RequestGuard


async def _send_json(send: Any, status: int, message: str, kind: str) -> None:
    body = error_body(status, message, kind)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class _LocalMedia:
    """``workers=0``: files predicted in one thread of the server process (no kill on
    timeout; for debugging and embedding)."""

    def __init__(self, recognizer: Recognizer, queue: int) -> None:
        self.recognizer = recognizer
        self.lane = ThreadLane(1, queue, name="emofuse-media")

    async def run(self, job: dict[str, Any], timeout: float) -> dict[str, Any]:
        reply = await self.lane.run(lambda: _run_job(self.recognizer, job), timeout)
        if reply[0] == "ok":
            return reply[1]
        raise JobFailed(reply[3], status=reply[1], kind=reply[2])

    def stats(self) -> dict[str, Any]:
        return {"size": 0, "in_process": True, **self.lane.stats()}

    def pids(self) -> list[int]:
        return []

    async def aclose(self) -> None:
        self.lane.close()

    def close(self) -> None:
        self.lane.close()


def create_app(models: Sequence[str | os.PathLike] | Recognizer = ("default",), *,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               timeout_s: float = DEFAULT_TIMEOUT_S, workers: int | None = None,
               queue: int = DEFAULT_QUEUE, max_text_chars: int = 20_000, warmup: bool = True,
               docs: bool = True, read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
               body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S, threads: int | None = None,
               text_threads: int = 1, worker_imports: Sequence[str] = (),
               tmp_dir: str | os.PathLike | None = None) -> FastAPI:
    """Build the FastAPI application and start its worker processes (they have loaded their
    models when this returns).

    Parameters
    ----------
    models
        Bundled names or model folders (see :meth:`Recognizer.load`), or a ready
        :class:`Recognizer` (the workers load the same folders with its options).
    max_upload_mb
        Largest request body accepted (files and text alike).
    timeout_s
        Longest a request waits for its prediction, queueing included: 504 when the prediction
        overruns it (its worker is killed and replaced), 503 when no worker became free.
    workers
        Worker processes predicting files at once, each with its own models (default
        ``min(2, cores)``); 0 predicts in a thread of the server process (no kill on timeout).
    queue
        Requests that may wait for a busy worker; more are answered 503 with ``Retry-After``.
        Text has its own threads and a queue of the same length.
    max_text_chars
        Longest text accepted.
    warmup
        Load every model (and run one throw-away prediction) before the first request.
    docs
        Serve ``/docs`` (an offline page describing the API) and ``/openapi.json``.
    read_timeout_s
        Longest wait for a request's headers, and for each piece of its body (408).
    body_timeout_s
        Longest a whole request body may take to arrive (408).
    threads
        CPU threads per worker process (default: the cores shared out among the workers).
    text_threads
        Threads of the server process predicting text.
    worker_imports
        Modules each worker imports before loading the models (plug-ins registering features,
        models or adapters; those already imported here are found on their own).
    tmp_dir
        Where the service's temporary folder is made (default: the system's); it holds the
        uploads being predicted and each worker's ``TMPDIR``, and is removed at shutdown.
    """
    recognizer = models if isinstance(models, Recognizer) else Recognizer.load(*models)
    n_workers = default_workers() if workers is None else max(0, int(workers))
    max_bytes = int(max_upload_mb * 1e6)
    max_text_bytes = max(1 << 16, 16 * max_text_chars)  # JSON escapes take up to 12 bytes a char
    tmp_root = Path(tempfile.mkdtemp(prefix="emofuse-serve-", dir=tmp_dir))
    uploads = tmp_root / "uploads"
    uploads.mkdir()

    media: Any
    try:
        if n_workers == 0:
            media = _LocalMedia(recognizer, queue)
            if warmup:
                recognizer.warmup()
        else:
            spec = WorkerSpec(models=model_folders(recognizer.models.values()),
                              options=recognizer.options,
                              imports=tuple(dict.fromkeys([*registered_modules(),
                                                           *worker_imports])),
                              threads=int(threads or max(1, cores() // n_workers)),
                              warmup=warmup, env=tuple(os.environ.items()))
            media = WorkerPool(spec, n_workers, queue=queue, tmp_root=tmp_root).start()
        if warmup and "text" in recognizer.modalities:
            recognizer.predictor("text")
            recognizer.predict_text("warm up")
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    text_lane = ThreadLane(text_threads, queue, name="emofuse-text")
    started = time.time()
    limits = {"max_upload_bytes": max_bytes, "timeout_s": timeout_s,
              "max_text_chars": max_text_chars, "workers": n_workers, "queue": queue,
              "read_timeout_s": read_timeout_s, "body_timeout_s": body_timeout_s}
    users = 0
    # files being received, waiting or predicted: at most one per worker plus the queue, so
    # that the uploads stored on disk are bounded too
    admitted = 0
    capacity = max(1, n_workers) + queue

    def retry_after() -> int:
        return media.retry_after() if hasattr(media, "retry_after") else 1

    def shutdown() -> None:
        media.close()
        text_lane.close()
        shutil.rmtree(tmp_root, ignore_errors=True)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        nonlocal users
        users += 1
        try:
            yield
        finally:
            users -= 1
            if users == 0:  # the last server running this app stops
                await media.aclose()
                text_lane.close()
                shutil.rmtree(tmp_root, ignore_errors=True)

    app = FastAPI(title="emofuse", version=__version__, lifespan=lifespan,
                  description="Multimodal emotion recognition: speech, faces, text.",
                  docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.recognizer = recognizer
    app.state.limits = limits
    app.state.media = media
    app.state.text_lane = text_lane
    app.state.tmp_root = tmp_root
    weakref.finalize(app, shutdown)
    app.add_middleware(RequestGuard, max_bytes=max_bytes, read_timeout_s=read_timeout_s,
                       body_timeout_s=body_timeout_s)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def error(status: int, message: str, kind: str, headers: dict[str, str] | None = None, *,
              clean: bool = True) -> JSONResponse:
        return JSONResponse({"detail": scrub(message) if clean else message, "error": kind,
                             "status": status}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no page {request.url.path}"
        elif exc.status_code == 405:
            allow = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
            detail = f"{request.method} is not allowed on {request.url.path}" + (
                f" (use {allow})" if allow else "")
        return error(exc.status_code, detail, _kind_of(exc.status_code), exc.headers,
                     clean=exc.status_code not in (404, 405))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ())]
            where = f"{loc[0]} parameter {'.'.join(loc[1:])}" if len(loc) > 1 else \
                (loc[0] if loc else "request")
            parts.append(f"{where}: {e.get('msg', 'invalid')}")
        return error(422, "; ".join(parts) or "invalid request", "ValidationError")

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error(exc.status, exc.message, exc.kind, exc.headers)

    @app.exception_handler(UploadTooLarge)
    async def _too_large(request: Request, exc: UploadTooLarge) -> JSONResponse:
        return error(413, str(exc), "UploadTooLarge", {"connection": "close"})

    @app.exception_handler(BodyTimeout)
    async def _too_slow(request: Request, exc: BodyTimeout) -> JSONResponse:
        return error(408, str(exc), "RequestTimeout", {"connection": "close"})

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        return error(499, "the client closed the connection", "ClientClosedRequest")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        return error(500, f"internal error ({type(exc).__name__}: {exc})", "InternalError")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(STATIC_DIR / "favicon.ico", media_type="image/x-icon",
                            headers={"cache-control": "public, max-age=86400"})

    if docs:
        @app.get("/docs", include_in_schema=False)
        async def api_docs() -> FileResponse:
            return FileResponse(STATIC_DIR / "docs.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: version, loaded models, uptime, request limits and the workers' load."""
        stats = media.stats()
        degraded = n_workers > 0 and stats["alive"] < stats["size"]
        return {"status": "degraded" if degraded else "ok", "version": __version__,
                "models": {m: i.name for m, i in recognizer.models.items()},
                "uptime_s": round(time.time() - started, 1), "limits": limits,
                "workers": stats, "text": text_lane.stats()}

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        """The loaded models and their cards (labels, training data, protocol, figures)."""
        return {"models": [i.describe() for i in recognizer.models.values()]}

    async def predict_text(text: str) -> JSONResponse:
        text = text.strip()
        if not text:
            return error(400, "empty text: nothing to predict", "EmptyInput")
        if len(text) > max_text_chars:
            return error(413, f"text of {len(text)} characters exceeds the {max_text_chars} "
                         "limit", "TextTooLong")

        def job() -> dict[str, Any]:
            try:
                return recognizer.predict_text(text).model_dump(mode="json")
            except Exception as exc:
                status = status_of(exc)
                kind = type(exc).__name__ if status != 500 else "InternalError"
                msg = str(exc) if status != 500 else \
                    f"internal error ({type(exc).__name__}: {exc})"
                raise JobFailed(msg, status=status, kind=kind) from exc

        return JSONResponse(await text_lane.run(job, timeout_s))

    async def read_body(request: Request) -> bytes:
        chunks, n = [], 0
        async for chunk in request.stream():
            n += len(chunk)
            if n > max_text_bytes:
                raise ServiceError(f"a text body over {max_text_bytes // 1000} kB; send at most "
                                   f"{max_text_chars} characters", status=413,
                                   kind="TextTooLong")
            chunks.append(chunk)
        return b"".join(chunks)

    @app.post("/predict")
    async def predict(request: Request, timeline: bool = False) -> JSONResponse:
        """Predict from an uploaded file (multipart field ``file``) or a text, not both."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            raw = await read_body(request)
            try:
                body = json.loads(raw or b"null")
            except RecursionError:
                return error(400, "invalid JSON body: nested too deeply", "BadRequest")
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return error(400, f"invalid JSON body ({exc})", "BadRequest")
            except ValueError:  # e.g. an integer of thousands of digits
                return error(400, "invalid JSON body: a number is too long", "BadRequest")
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                return error(400, 'send a JSON object {"text": "..."}', "BadRequest")
            return await predict_text(body["text"])
        if ctype == "text/plain":
            raw = await read_body(request)
            return await predict_text(raw.decode("utf-8", errors="replace"))
        if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return error(415, "send multipart/form-data with a 'file' (or 'text') field, "
                         'or JSON {"text": "..."}', "UnsupportedMediaType")
        nonlocal admitted
        if admitted >= capacity:  # refused before its body is read and stored
            raise QueueFull(f"the service is busy: {admitted} files being received or "
                            "predicted; try again shortly",
                            headers={"Retry-After": str(retry_after())})
        admitted += 1
        try:
            return await predict_form(request, timeline)
        finally:
            admitted -= 1

    async def predict_form(request: Request, timeline: bool) -> JSONResponse:
        form = await request.form(max_files=1, max_fields=8,
                                  max_part_size=max(4 * max_text_chars, 1 << 16))
        try:
            upload = form.get("file")
            text = form.get("text")
            if isinstance(upload, UploadFile) and text is not None:
                return error(400, "send a 'file' or a 'text' field, not both (one input per "
                             "request)", "BadRequest")
            if isinstance(upload, UploadFile):
                name = _upload_name(upload.filename)
                if upload.size == 0:
                    return error(400, f"{name}: empty upload (0 bytes)", "EmptyInput")
                path = await run_in_threadpool(_save_upload, upload, name, uploads)
            elif isinstance(text, str):
                return await predict_text(text)
            else:
                return error(400, "no 'file' or 'text' field in the form", "BadRequest")
        finally:
            await form.close()
        try:
            job = {"path": str(path), "name": name, "timeline": timeline}
            pred = await _unless_client_leaves(request, media.run(job, timeout_s))
        finally:
            path.unlink(missing_ok=True)
        if pred is None:  # the client went away: nobody to answer
            return error(499, "the client closed the connection", "ClientClosedRequest")
        return JSONResponse(pred)

    from .stream import mount_stream

    mount_stream(app, recognizer)  # the /stream WebSocket (live updates)
    return app


async def _unless_client_leaves(request: Request, work: Any) -> Any:
    """Await ``work``; ``None`` if the client disconnects first (``work`` is then cancelled:
    a queued job never runs, a running one has its worker stopped)."""
    task = asyncio.ensure_future(work)

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None


def _upload_name(filename: str | None) -> str:
    """The upload's file name as the client gave it, without folders or control characters."""
    name = Path((filename or "").replace("\\", "/")).name
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:200]
    return name if name not in ("", ".", "..") else "upload"


def _save_upload(upload: Any, name: str, folder: Path) -> Path:
    """Copy an upload to a private temporary file in ``folder`` that keeps its extension (for
    the check of names against content)."""
    suffix = Path(name).suffix
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=suffix if _SUFFIX.match(suffix) else "",
                               dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)
