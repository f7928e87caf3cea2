"""What `runwire serve` hands uvicorn."""

from __future__ import annotations

import httpx
import pytest

from runwire.cli.serve import server_options
from runwire.config import Settings, WebSocketPath
from runwire.transport.http_protocol import RunwireHttpProtocol
from runwire.transport.ws_coalescing import CoalescingWebSocketProtocol
from runwire.transport.ws_protocol import RunwireWebSocketProtocol

pytestmark = pytest.mark.unit


def test_an_idle_connection_outlives_the_clients_pool() -> None:
    # A client reuses a pooled connection until its own expiry; a server that closes first races
    # the next request, which then fails with "Server disconnected without sending a response".
    options = server_options(Settings())
    assert options["timeout_keep_alive"] > httpx.Limits().keepalive_expiry
    assert server_options(Settings(http_keep_alive_s=90))["timeout_keep_alive"] == 90


def test_every_connection_is_served_with_the_head_deadline() -> None:
    assert server_options(Settings())["http"] is RunwireHttpProtocol


def test_the_websocket_path_picks_the_protocol() -> None:
    assert server_options(Settings())["ws"] is RunwireWebSocketProtocol
    asgi = Settings(ws_path=WebSocketPath.ASGI)
    assert server_options(asgi)["ws"] is CoalescingWebSocketProtocol
