"""Logs: one line per record, as text for a terminal or as one JSON object for a log pipeline.

Each record carries what it belongs to, where that is known: ``request_id`` (an HTTP request,
or a WebSocket message's own ``request_id``), ``user_id``, ``connection_id``, ``run_id``, and
``trace_id`` while a trace is recorded. The edges set them (:func:`log_context`): the HTTP
middleware per request, the WebSocket session per message, the run executor per run. They live
in a context variable, so each request's, message's or run's task sees its own, and a run started
by a message inherits the message's.

No secret reaches a line: runwire logs none, and every handler configured here masks the two
shapes a secret can take in a library's line (a ``ticket=`` query value in a logged URL, and
``Bearer <token>``). Third-party loggers stay at WARNING whatever ``RUNWIRE_LOG_LEVEL`` says:
their debug lines print SQL parameters, frames and headers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

import orjson

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "Redactor",
    "bind_log_context",
    "context_fields",
    "log_context",
    "logging_config",
]

FIELDS = ("request_id", "user_id", "connection_id", "run_id", "trace_id")
"""The context fields a JSON line may carry, in the order they are written."""

# A context variable is a key, not state: each task reads the value its own context holds.
_context: ContextVar[Mapping[str, str] | None] = ContextVar("runwire_log_context", default=None)
_NONE: Mapping[str, str] = {}

TraceId = Callable[[], str | None]


def context_fields() -> Mapping[str, str]:
    """The context fields set for the running task (see :func:`log_context`)."""
    return _context.get() or _NONE


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Within the block, records carry ``fields`` (None values are left out) on top of the
    fields already set; afterwards the earlier ones again."""
    given = {name: value for name, value in fields.items() if value is not None}
    token = _context.set({**context_fields(), **given})
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**fields: str) -> None:
    """From here to the end of the enclosing :func:`log_context` (or of the task), records carry
    ``fields`` too: for what is learnt midway, such as the user a request's token names."""
    _context.set({**context_fields(), **fields})


_SECRETS = re.compile(r"((?:[?&]ticket=)|(?:\bBearer\s+))[^\s&\"',;]+", re.IGNORECASE)


class Redactor(logging.Filter):
    """Masks ticket query values and bearer tokens in a record's message (it lets every record
    through, rewritten)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            # Each argument on its own first: formatters such as uvicorn's access line read the
            # arguments themselves, so they must stay a tuple.
            record.args = tuple(_mask(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = _mask(record.msg)
        message = record.getMessage()
        masked = _mask(message)
        if masked != message:  # a secret made of the message and an argument together
            record.msg, record.args = masked, None
        return True


def _mask(text: str) -> str:
    return _SECRETS.sub(r"\1***", text)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601, ms), ``level``, ``logger``, ``message``,
    the context fields that are set, and ``exception`` (the traceback) when there is one."""

    def __init__(self, trace_id: TraceId | None = None) -> None:
        super().__init__()
        self._trace_id = trace_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = context_fields()
        for name in FIELDS:
            value = fields.get(name)
            if value is not None:
                line[name] = value
        if self._trace_id is not None and "trace_id" not in line:
            trace = self._trace_id()
            if trace is not None:
                line["trace_id"] = trace
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line).decode()


def _iso(created: float) -> str:
    seconds = int(created)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{int((created - seconds) * 1000):03d}Z"


def logging_config(*, json: bool, level: str, trace_id: TraceId | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the server: runwire's and uvicorn's loggers at
    ``level``, everything else at WARNING; as JSON on standard error, or as uvicorn's text
    (its access lines on standard output, the rest on standard error)."""
    upper = level.upper()
    redact = {"redact": {"()": Redactor}}
    if json:
        handlers: dict[str, Any] = {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        }
        formatters: dict[str, Any] = {"json": {"()": JsonFormatter, "trace_id": trace_id}}
        access = "default"
    else:
        handlers = {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "text",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["redact"],
                "stream": "ext://sys.stdout",
            },
        }
        formatters = {
            "text": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(levelprefix)s %(message)s",
                "use_colors": None,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            },
        }
        access = "access"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": redact,
        "formatters": formatters,
        "handlers": handlers,
        "root": {"handlers": ["default"], "level": "WARNING"},
        "loggers": {
            "runwire": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [access], "level": upper, "propagate": False},
        },
    }
