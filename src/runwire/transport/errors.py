"""Error mapping at the edge: runwire errors → HTTP statuses and JSON bodies, and close codes.

Bodies are ``{"detail": <readable message>, "code": <stable code>}``, plus the error's own
machine-readable fields when it has any (``reload_required`` adds ``run_id``, ``reason``, ``epoch``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runwire import errors

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


async def _runwire_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.RunwireError)
    headers: dict[str, str] | None = None
    if isinstance(exc, errors.AuthError):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after_whole_s)}
    return JSONResponse(
        {"detail": exc.message, "code": exc.code, **exc.wire_fields()},
        status_code=http_status(exc),
        headers=headers,
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return JSONResponse(
        {"detail": "; ".join(problems) or "invalid request", "code": "invalid_input"},
        status_code=422,
    )


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": str(exc.detail), "code": _HTTP_CODES.get(exc.status_code, "http_error")},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log (ServerErrorMiddleware); the client gets no internals.
    log.error("unhandled error", exc_info=exc)
    return JSONResponse(
        {"detail": "the server failed to handle this request; it was logged", "code": "internal"},
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.RunwireError, _runwire_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
