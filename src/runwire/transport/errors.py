"""Error mapping at the edge: runwire errors → HTTP statuses and JSON bodies, and close codes.

Bodies are ``{"detail": <readable message>, "code": <stable code>}``, plus the error's own
machine-readable fields when it has any (``reload_required`` adds ``run_id``, ``reason``, ``epoch``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runwire import errors
from runwire.metrics import Metrics

__all__ = ["CLOSE_CODES", "http_status", "install_error_handlers"]

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[errors.RunwireError], int]] = [
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.InputError, 422),
    (errors.AuthError, 401),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.InvalidTransition, 409),
    (errors.ReloadRequired, 409),
    (errors.RateLimited, 429),
    (errors.DependencyUnavailable, 503),
]

CLOSE_CODES = {
    "normal": 1000,
    "going_away": 1001,
    "policy": 1008,
    "too_big": 1009,
    "internal": 1011,
    "service_restart": 1012,
    "try_again_later": 1013,
    "idle": 4000,
    "slow_consumer": 4008,
    "resync": 4009,
}
"""WebSocket close codes the server uses (documented in docs/protocol.md)."""


def http_status(exc: errors.RunwireError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 500


_Answer = tuple[int, dict[str, Any], Mapping[str, str] | None]  # status, body, headers


def _runwire_error(exc: Exception) -> _Answer:
    assert isinstance(exc, errors.RunwireError)
    headers: dict[str, str] | None = None
    if isinstance(exc, errors.AuthError):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after_whole_s)}
    body = {"detail": exc.message, "code": exc.code, **exc.wire_fields()}
    return http_status(exc), body, headers


def _validation_error(exc: Exception) -> _Answer:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return 422, {"detail": "; ".join(problems) or "invalid request", "code": "invalid_input"}, None


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


def _http_error(exc: Exception) -> _Answer:
    assert isinstance(exc, StarletteHTTPException)
    body = {"detail": str(exc.detail), "code": _HTTP_CODES.get(exc.status_code, "http_error")}
    return exc.status_code, body, exc.headers


def _unexpected(exc: Exception) -> _Answer:
    # The traceback goes to the log (ServerErrorMiddleware); the client gets no internals.
    log.error("unhandled error", exc_info=exc)
    body = {"detail": "the server failed to handle this request; it was logged", "code": "internal"}
    return 500, body, None


def install_error_handlers(app: FastAPI, metrics: Metrics | None = None) -> None:
    """Answer errors as ``{"detail", "code"}`` bodies, each counted in ``metrics`` by its code."""

    def handler(answer: Callable[[Exception], _Answer]) -> Callable[..., Awaitable[JSONResponse]]:
        async def handle(_request: Request, exc: Exception) -> JSONResponse:
            status, body, headers = answer(exc)
            if metrics is not None:
                metrics.errors.labels(body["code"]).inc()
            return JSONResponse(body, status_code=status, headers=headers)

        return handle

    app.add_exception_handler(errors.RunwireError, handler(_runwire_error))
    app.add_exception_handler(RequestValidationError, handler(_validation_error))
    app.add_exception_handler(StarletteHTTPException, handler(_http_error))
    app.add_exception_handler(Exception, handler(_unexpected))
