"""Error mapping at the edge: runwire errors → HTTP statuses and JSON bodies, and close codes.

Bodies are ``{"detail": <readable message>, "code": <stable code>}`` (:class:`ErrorBody`), plus
the error's own machine-readable fields when it has any (``reload_required`` adds ``run_id``,
``reason``, ``epoch``: :class:`ReloadRequiredBody`). Routes declare the statuses they can answer
with :func:`error_responses`, so the OpenAPI document lists each one with its body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from runwire import errors
from runwire.telemetry.metrics import Metrics

__all__ = [
    "CLOSE_CODES",
    "ErrorBody",
    "ReloadRequiredBody",
    "error_responses",
    "http_status",
    "install_error_handlers",
]


class ErrorBody(BaseModel):
    """The body of every error the HTTP API answers."""

    detail: str = Field(description="What went wrong, for a person to read.")
    code: str = Field(
        description="A stable, machine-readable code (docs/protocol.md, Error codes).",
        examples=["unauthorized", "not_found", "invalid_input"],
    )


class ReloadRequiredBody(ErrorBody):
    """A run's events cannot be served whole from the position asked for: reload instead."""

    code: Literal["reload_required"] = "reload_required"
    run_id: str
    reason: errors.ReloadReason
    epoch: str = Field(description="The run's current epoch: read it again from seq 0 under it.")


_DESCRIPTIONS = {
    401: "No bearer token, or one that is invalid, expired or of an ended session (`unauthorized`).",
    403: "The caller may not do this (`wrong_password`: the current password is wrong).",
    404: "Not found: it does not exist, or is not the caller's (the two look the same).",
    409: "Conflict (`conflict`).",
    413: "The body is larger than `RUNWIRE_MAX_IMPORT_BYTES` (`too_large`).",
    415: "A content type this endpoint does not read (`unsupported_media_type`).",
    422: "The request is invalid (`invalid_input`); `detail` names each field and why.",
    429: "Too many attempts (`rate_limited`); `Retry-After` says when to try again.",
    503: "A service the server depends on does not answer (`unavailable`).",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer`",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Whole seconds to wait (at least 1).",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


def error_responses(
    *statuses: int,
    descriptions: Mapping[int, str] | None = None,
    models: Mapping[int, type[ErrorBody]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can answer ``statuses``: each with its body model
    (:class:`ErrorBody` unless ``models`` names another), its description and its headers."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": (models or {}).get(status, ErrorBody),
            "description": (descriptions or {}).get(status, _DESCRIPTIONS[status]),
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        declared[status] = entry
    return declared


log = logging.getLogger(__name__)

_STATUS: list[tuple[type[errors.RunwireError], int]] = [
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.InputError, 422),
    (errors.AuthError, 401),
    (errors.WrongPassword, 403),
    (errors.InsufficientScope, 403),
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
    "session_ended": 4010,
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
    elif isinstance(exc, errors.InsufficientScope):
        # RFC 6750 section 3: which scope the resource needs.
        headers = {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{exc.scope}"'}
    elif isinstance(exc, errors.RateLimited):
        headers = {"Retry-After": str(exc.retry_after_whole_s)}
    body = {"detail": exc.message, "code": exc.code, **exc.wire_fields()}
    return http_status(exc), body, headers


def _validation_error(exc: Exception) -> _Answer:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":  # its loc is the character's position, not a field
            problems.append(f"body: not valid JSON: {err.get('ctx', {}).get('error', 'syntax')}")
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        problems.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return 422, {"detail": "; ".join(problems) or "invalid request", "code": "invalid_input"}, None


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}


_UNREADABLE = (
    (UnicodeDecodeError, "it is not UTF-8 text"),
    (RecursionError, "it nests too deeply"),
)


def _unreadable_body(exc: StarletteHTTPException) -> str | None:
    """Why a JSON body could not be read, when that is what ``exc`` says: FastAPI answers a body
    ``json.loads`` fails on with anything but a syntax error as a 400 of its own, raised from it."""
    if exc.status_code != 400 or exc.__cause__ is None:
        return None
    why = next(
        (text for kind, text in _UNREADABLE if isinstance(exc.__cause__, kind)), "unreadable"
    )
    return f"body: not valid JSON: {why}"


def _http_error(exc: Exception) -> _Answer:
    assert isinstance(exc, StarletteHTTPException)
    if (unreadable := _unreadable_body(exc)) is not None:
        # Malformed input like any other (a JSON syntax error is already 422 invalid_input).
        return 422, {"detail": unreadable, "code": "invalid_input"}, None
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

    async def client_gone(request: Request, _exc: Exception) -> Response:
        # The client left while its body was being read (it hung up, or its body stopped and
        # the connection was closed for it): nobody is there to answer, and nothing failed.
        log.debug("the client left before its request's body had arrived: %s", request.url.path)
        return Response(status_code=400)

    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(errors.RunwireError, handler(_runwire_error))
    app.add_exception_handler(RequestValidationError, handler(_validation_error))
    app.add_exception_handler(StarletteHTTPException, handler(_http_error))
    app.add_exception_handler(Exception, handler(_unexpected))
