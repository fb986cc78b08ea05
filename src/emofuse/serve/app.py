"""The emofuse web service (FastAPI): ``POST /predict``, ``GET /health``, ``GET /models`` and a
web page at ``/``.

>>> from emofuse.serve import create_app
>>> app = create_app(models=["default"])            # doctest: +SKIP
>>> # uvicorn.run(app, host="127.0.0.1", port=8000)

``POST /predict`` takes a multipart upload in the field ``file`` (audio, image, video or a text
file; the type is read from the content), or text: a form field ``text``, a JSON body
``{"text": "..."}`` or a ``text/plain`` body. ``?timeline=true`` adds per-segment results.
It answers a :class:`~emofuse.inference.Prediction` as JSON, or an error
``{"detail": message, "error": kind}`` with status 400 (empty or malformed request),
413 (upload over the limit: refused from its ``Content-Length`` before any byte is read, or as
soon as the bytes received pass the limit), 415 (unsupported type, or content that contradicts
its name), 422 (undecodable media, no face, no model for that input), 504 (prediction over the
time limit) or 500 (a bug: the service stays up).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import DataError, EmofuseError, MediaError
from ..inference import (ModelUnavailableError, NoFaceError, Recognizer, UnsupportedMediaError)

__all__ = ["create_app", "UploadTooLarge", "STATIC_DIR", "DEFAULT_MAX_UPLOAD_MB",
           "DEFAULT_TIMEOUT_S"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_TIMEOUT_S = 60.0
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


class UploadTooLarge(EmofuseError):
    """The request body is larger than the service accepts."""


def _status(exc: BaseException) -> int:
    if isinstance(exc, UploadTooLarge):
        return 413
    if isinstance(exc, UnsupportedMediaError):
        return 415
    if isinstance(exc, (NoFaceError, ModelUnavailableError, MediaError, DataError)):
        return 422
    if isinstance(exc, EmofuseError):
        return 400
    return 500


def _error_body(status: int, message: str, kind: str) -> bytes:
    return json.dumps({"detail": message, "error": kind, "status": status}).encode()


class BodyLimit:
    """ASGI middleware refusing request bodies over ``max_bytes``.

    A ``Content-Length`` over the limit is answered 413 at once, without reading the body;
    otherwise (chunked uploads, lying headers) the bytes are counted as they arrive and
    :class:`UploadTooLarge` is raised as soon as they pass the limit.
    """

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)

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

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise UploadTooLarge(f"upload exceeds the {limit_mb:g} MB limit")
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge as exc:
            if not started:
                await _send_json(send, 413, str(exc), "UploadTooLarge")


async def _send_json(send: Any, status: int, message: str, kind: str) -> None:
    body = _error_body(status, message, kind)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def create_app(models: Sequence[str | os.PathLike] | Recognizer = ("default",), *,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
               timeout_s: float = DEFAULT_TIMEOUT_S, workers: int = 1,
               max_text_chars: int = 20_000, warmup: bool = True) -> FastAPI:
    """Build the FastAPI application.

    Parameters
    ----------
    models
        Bundled names or model folders (see :meth:`Recognizer.load`), or a ready
        :class:`Recognizer`.
    max_upload_mb
        Largest request body accepted (files and text alike).
    timeout_s
        Longest a prediction may take (queueing included) before the answer is 504.
    workers
        Predictions run at the same time (threads); the rest wait their turn.
    max_text_chars
        Longest text accepted.
    warmup
        Load every model now rather than on the first request.
    """
    recognizer = models if isinstance(models, Recognizer) else Recognizer.load(*models)
    if warmup:
        recognizer.warmup()
    max_bytes = int(max_upload_mb * 1e6)
    executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="emofuse")
    started = time.time()
    limits = {"max_upload_bytes": max_bytes, "timeout_s": timeout_s,
              "max_text_chars": max_text_chars}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="emofuse", version=__version__, lifespan=lifespan,
                  description="Multimodal emotion recognition: speech, faces, text.")
    app.state.recognizer = recognizer
    app.state.limits = limits
    app.add_middleware(BodyLimit, max_bytes=max_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def error(status: int, message: str, kind: str) -> JSONResponse:
        return JSONResponse({"detail": message, "error": kind, "status": status},
                            status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), "HTTPException")

    @app.exception_handler(UploadTooLarge)
    async def _too_large(request: Request, exc: UploadTooLarge) -> JSONResponse:
        return error(413, str(exc), "UploadTooLarge")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: version, loaded models, uptime and request limits."""
        return {"status": "ok", "version": __version__,
                "models": {m: i.name for m, i in recognizer.models.items()},
                "uptime_s": round(time.time() - started, 1), "limits": limits}

    @app.get("/models")
    async def list_models() -> dict[str, Any]:
        """The loaded models and their cards (labels, training data, protocol, figures)."""
        return {"models": [i.describe() for i in recognizer.models.values()]}

    async def run(job: Any) -> JSONResponse:
        loop = asyncio.get_running_loop()
        try:
            pred = await asyncio.wait_for(loop.run_in_executor(executor, job), timeout_s)
        except TimeoutError:
            return error(504, f"prediction took longer than {timeout_s:g} s; send a shorter "
                         "file", "Timeout")
        except EmofuseError as exc:
            return error(_status(exc), str(exc), type(exc).__name__)
        except Exception as exc:  # a bug: answer 500, stay up
            return error(500, f"internal error ({type(exc).__name__}: {exc})", "InternalError")
        return JSONResponse(pred.model_dump(mode="json"))

    async def predict_text(text: str) -> JSONResponse:
        text = text.strip()
        if not text:
            return error(400, "empty text: nothing to predict", "EmptyInput")
        if len(text) > max_text_chars:
            return error(413, f"text of {len(text)} characters exceeds the {max_text_chars} "
                         "limit", "TextTooLong")
        return await run(lambda: recognizer.predict_text(text))

    @app.post("/predict")
    async def predict(request: Request, timeline: bool = False) -> JSONResponse:
        """Predict from an uploaded file (multipart field ``file``) or text."""
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if ctype == "application/json":
                try:
                    body = json.loads(await request.body() or b"null")
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    return error(400, f"invalid JSON body ({exc})", "BadRequest")
                if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                    return error(400, 'send a JSON object {"text": "..."}', "BadRequest")
                return await predict_text(body["text"])
            if ctype == "text/plain":
                raw = await request.body()
                return await predict_text(raw.decode("utf-8", errors="replace"))
            if ctype not in ("multipart/form-data", "application/x-www-form-urlencoded"):
                return error(415, "send multipart/form-data with a 'file' (or 'text') field, "
                             'or JSON {"text": "..."}', "UnsupportedMediaType")
            form = await request.form(max_files=1, max_fields=8,
                                      max_part_size=max(4 * max_text_chars, 1 << 16))
            try:
                upload = form.get("file")
                text = form.get("text")
                if isinstance(upload, UploadFile):
                    if upload.size == 0:
                        name = upload.filename or "upload"
                        return error(400, f"{name}: empty upload (0 bytes)", "EmptyInput")
                    path, name = await run_in_threadpool(_save_upload, upload)
                elif isinstance(text, str):
                    return await predict_text(text)
                else:
                    return error(400, "no 'file' or 'text' field in the form", "BadRequest")
            finally:
                await form.close()
        except UploadTooLarge as exc:
            return error(413, str(exc), "UploadTooLarge")

        def job() -> Any:
            try:
                return recognizer.predict(path, timeline=timeline, source=name)
            finally:
                path.unlink(missing_ok=True)

        return await run(job)

    return app


def _save_upload(upload: Any) -> tuple[Path, str]:
    """Copy an upload to a private temporary file that keeps its extension (for the check of
    names against content); returns ``(path, file name)``."""
    name = Path(upload.filename or "upload").name or "upload"
    suffix = Path(name).suffix
    fd, tmp = tempfile.mkstemp(prefix="emofuse-", suffix=suffix if _SUFFIX.match(suffix) else "")
    with os.fdopen(fd, "wb") as out:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return Path(tmp), name
