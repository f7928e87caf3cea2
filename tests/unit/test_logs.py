"""Log lines as an operator's pipeline reads them (runwire.telemetry.logs), and the request id each HTTP
request carries into them."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from runwire.telemetry.logs import (
    JsonFormatter,
    bind_log_context,
    context_fields,
    log_context,
    logging_config,
)
from runwire.transport.request_id import RequestIdMiddleware

pytestmark = pytest.mark.unit


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A runwire logger writing JSON lines, through the handler `runwire serve` configures."""
    config = logging_config(json=True, level="debug", trace_id=lambda: None)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(trace_id=lambda: None))
    for name in config["handlers"]["default"]["filters"]:
        handler.addFilter(config["filters"][name]["()"]())
    logger = logging.getLogger("runwire.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_its_context(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = captured
    log.info("outside")
    with log_context(request_id="req_1", user_id="usr_1", run_id=None):
        with log_context(run_id="run_1"):
            log.warning("inside %s", "a run")
        log.info("after the run")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    log.info("where", stack_info=True)
    out = lines(stream)
    assert [line["message"] for line in out] == [
        "outside",
        "inside a run",
        "after the run",
        "failed",
        "where",
    ]
    assert "test_logs.py" in out[4]["stack"]
    assert out[0].keys() == {"time", "level", "logger", "message"}
    assert out[0]["logger"] == "runwire.test-logs" and out[0]["level"] == "info"
    assert out[0]["time"].endswith("Z") and out[0]["time"][10] == "T" and len(out[0]["time"]) == 24
    assert (out[1]["request_id"], out[1]["user_id"], out[1]["run_id"]) == (
        "req_1",
        "usr_1",
        "run_1",
    )
    assert "run_id" not in out[2] and out[2]["user_id"] == "usr_1"
    assert "ValueError: boom" in out[3]["exception"] and "request_id" not in out[3]


def test_secrets_in_a_librarys_line_are_masked(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = captured
    log.info('127.0.0.1:5 - "WebSocket /ws?ticket=%s" [accepted]', "tkt-SECRET1")
    log.info("< %s: %s", "Authorization", "Bearer eyJ.SECRET2.sig")
    log.info("GET /x?a=1&ticket=SECRET3&b=2")
    text = stream.getvalue()
    assert "SECRET" not in text
    assert [line["message"] for line in lines(stream)] == [
        '127.0.0.1:5 - "WebSocket /ws?ticket=***" [accepted]',
        "< Authorization: Bearer ***",
        "GET /x?a=1&ticket=***&b=2",
    ]


def test_a_trace_id_is_added_when_a_trace_is_recorded() -> None:
    record = logging.LogRecord("runwire.x", logging.INFO, __file__, 1, "hello", None, None)
    assert (
        json.loads(JsonFormatter(trace_id=lambda: "ab" * 16).format(record))["trace_id"]
        == "ab" * 16
    )
    assert "trace_id" not in json.loads(JsonFormatter().format(record))


def test_text_stays_the_default_and_libraries_stay_at_warning() -> None:
    config = logging_config(json=False, level="debug")
    assert config["formatters"]["text"]["()"] == "uvicorn.logging.DefaultFormatter"
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["runwire"]["level"] == "DEBUG"
    assert config["loggers"]["uvicorn.access"]["handlers"] == ["access"]


async def test_each_request_has_an_id_its_log_lines_and_response_carry() -> None:
    seen: list[dict[str, str]] = []

    async def endpoint(request: Request) -> PlainTextResponse:
        bind_log_context(user_id="usr_9")
        seen.append(dict(context_fields()))
        return PlainTextResponse("ok")

    app = RequestIdMiddleware(Starlette(routes=[Route("/", endpoint)]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        made = await http.get("/")
        kept = await http.get("/", headers={"X-Request-ID": "lb-7f3a.1:2"})
        odd = await http.get("/", headers={"X-Request-ID": "no spaces\tor tabs"})
    assert (
        made.headers["x-request-id"].startswith("req_") and len(made.headers["x-request-id"]) == 20
    )
    assert kept.headers["x-request-id"] == "lb-7f3a.1:2"
    assert odd.headers["x-request-id"].startswith("req_")
    assert [s["request_id"] for s in seen] == [r.headers["x-request-id"] for r in (made, kept, odd)]
    assert all(s["user_id"] == "usr_9" for s in seen)
    assert context_fields() == {}  # nothing leaks out of a request


def test_uvicorns_access_line_keeps_its_shape_when_a_ticket_is_masked() -> None:
    config = logging_config(json=False, level="info")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    formatter = config["formatters"]["access"]
    from uvicorn.logging import AccessFormatter

    handler.setFormatter(AccessFormatter(fmt=formatter["fmt"], use_colors=False))
    handler.addFilter(config["filters"]["redact"]["()"]())
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/ws?ticket=SECRET4", "1.1", 404),
        None,
    )
    handler.handle(record)
    assert (
        stream.getvalue() == 'INFO:     127.0.0.1:5 - "GET /ws?ticket=*** HTTP/1.1" 404 Not Found\n'
    )
    split = logging.LogRecord("x", logging.INFO, __file__, 1, "Bearer %s", ("SECRET5",), None)
    assert config["filters"]["redact"]["()"]().filter(split) and split.getMessage() == "Bearer ***"
