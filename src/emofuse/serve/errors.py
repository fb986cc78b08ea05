"""The service's answers other than a prediction (:class:`ServiceError` and its kinds), the HTTP
status of a prediction's exception, and server paths scrubbed from messages."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["ServiceError", "QueueFull", "JobTimeout", "WorkerCrashed", "JobFailed",
           "status_of", "scrub"]


class ServiceError(Exception):
    """An answer other than a prediction: ``status``, ``kind`` and a message for the client."""

    status = 500
    kind = "InternalError"

    def __init__(self, message: str, *, status: int | None = None, kind: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.headers = headers or {}


class QueueFull(ServiceError):
    """Every worker is busy and the queue is full (503, with ``Retry-After``)."""

    status = 503
    kind = "Busy"


class JobTimeout(ServiceError):
    """The prediction overran the time limit and was stopped (504)."""

    status = 504
    kind = "Timeout"


class WorkerCrashed(ServiceError):
    """The worker process died during the prediction (500); a new one takes its place."""

    status = 500
    kind = "WorkerCrashed"


class JobFailed(ServiceError):
    """The prediction raised (status and kind as the worker decided)."""


def status_of(exc: BaseException) -> int:
    """HTTP status of an exception raised by a prediction."""
    from ..errors import DataError, EmofuseError
    from ..inference import ModelUnavailableError, UnsupportedMediaError

    if isinstance(exc, UnsupportedMediaError):
        return 415
    if isinstance(exc, (ModelUnavailableError, DataError)):  # MediaError, NoFaceError included
        return 422
    if isinstance(exc, EmofuseError):
        return 400
    return 500


# An absolute path of two or more parts (not part of a URL, a fraction or a word).
_ABS_PATH = re.compile(r"(?<![\w:/.~\-])(?:/[^\s/'\"`<>|:;,()\[\]{}]+){2,}/?")


def scrub(message: str, path: str | os.PathLike | None = None, name: str | None = None) -> str:
    """``message`` with the server's paths taken out: the temporary file ``path`` becomes the
    upload's ``name``, any other absolute path its last part."""
    if path is not None and name:
        p = str(path)
        message = message.replace(p, name).replace(Path(p).name, name)
    return _ABS_PATH.sub(lambda m: Path(m.group(0).rstrip("/")).name or "/", message)
