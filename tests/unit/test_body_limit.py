"""The body cap as an ASGI layer: what the app behind it is handed, and what the client is told."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from runwire.transport.body_limit import BodyLimit

pytestmark = pytest.mark.unit

LIMIT = 100


class Exchange:
    """One request through ``BodyLimit``: the messages the client sends, what the app behind it
    receives, and what goes back."""

    def __init__(self, *messages: dict[str, Any], headers: list[tuple[bytes, bytes]]) -> None:
        self._incoming: Iterator[dict[str, Any]] = iter(messages)
        self.scope = {"type": "http", "path": "/auth/login", "headers": headers}
        self.app_received: list[dict[str, Any]] | None = None
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return next(self._incoming)

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        self.app_received = [await receive(), await receive()]

    async def run(self) -> None:
        await BodyLimit(self.app, limit=LIMIT, exempt=())(self.scope, self.receive, self.send)


def part(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_a_body_in_parts_reaches_the_app_whole_then_the_disconnect() -> None:
    exchange = Exchange(
        part(b"a" * 60, True), part(b"b" * 40, False), {"type": "http.disconnect"}, headers=[]
    )
    await exchange.run()
    assert exchange.app_received == [
        part(b"a" * 60 + b"b" * 40, False),
        {"type": "http.disconnect"},
    ]


async def test_a_streamed_body_past_the_cap_is_refused_and_the_app_never_runs() -> None:
    exchange = Exchange(part(b"a" * 60, True), part(b"b" * 41, True), headers=[])
    await exchange.run()
    assert exchange.app_received is None
    start, body = exchange.sent
    assert start["status"] == 413 and (b"connection", b"close") in start["headers"]
    assert json.loads(body["body"]) == {
        "detail": f"the body is larger than {LIMIT} bytes",
        "code": "too_large",
    }


async def test_a_client_gone_mid_body_gets_nothing_and_the_app_never_runs() -> None:
    exchange = Exchange(part(b"a" * 10, True), {"type": "http.disconnect"}, headers=[])
    await exchange.run()
    assert exchange.app_received is None and exchange.sent == []


async def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    exchange = Exchange(headers=[(b"content-length", b"101")])  # nothing to read: not read
    await exchange.run()
    assert exchange.app_received is None and exchange.sent[0]["status"] == 413


async def test_a_prefix_with_a_cap_of_its_own_is_held_to_that_one() -> None:
    async def run(path: str, size: int) -> Exchange:
        exchange = Exchange(part(b"a" * size, False), {"type": "http.disconnect"}, headers=[])
        exchange.scope["path"] = path
        await BodyLimit(exchange.app, limit=LIMIT, exempt=(), prefixes={"/internal/": 200})(
            exchange.scope, exchange.receive, exchange.send
        )
        return exchange

    assert (await run("/internal/users/u/threads", 150)).app_received is not None
    refused = await run("/internal/users/u/threads", 201)
    assert refused.app_received is None
    assert json.loads(refused.sent[1]["body"])["detail"] == "the body is larger than 200 bytes"
    assert (await run("/auth/login", 150)).app_received is None
