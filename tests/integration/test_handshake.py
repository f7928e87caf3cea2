"""The WebSocket handshake's deadline for authentication, on the real app and its own /ws
protocol served by uvicorn in this process (so the database can be held busy on purpose)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from runwire.transport.ws_protocol import RunwireWebSocketProtocol
from tests.conftest import test_settings
from tests.integration.test_event_stream import logged_in, serving
from tests.timing import unit


async def test_authentication_past_its_deadline_is_refused_with_503(tmp_path: Path) -> None:
    settings = test_settings(tmp_path, ws_auth_timeout_s=0.2)
    async with serving(settings, ws=RunwireWebSocketProtocol) as (client, services):
        ws_url = str(client.base_url).rstrip("/").replace("http://", "ws://") + "/ws"
        _, auth = await logged_in(client)
        ticket = (await client.post("/api/ws-ticket", headers=auth)).json()["ticket"]
        # Redeeming a ticket writes to the database; hold its write lock past the deadline.
        async with services.store.db.begin():
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"{ws_url}?ticket={ticket}", open_timeout=unit(5))
        assert refused.value.response.status_code == 503
        body = json.loads(bytes(refused.value.response.body))
        assert body["code"] == "auth_timeout" and "0.2 s" in body["detail"]
        # With the database free again, a new ticket opens the socket.
        ticket = (await client.post("/api/ws-ticket", headers=auth)).json()["ticket"]
        async with connect(f"{ws_url}?ticket={ticket}", open_timeout=unit(5)) as ws:
            hello = json.loads(await ws.recv())
            assert hello["type"] == "connection_established"


async def test_a_handshake_that_fails_inside_the_server_is_answered_500(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    async with serving(settings, ws=RunwireWebSocketProtocol) as (client, _services):
        ws_url = str(client.base_url).rstrip("/").replace("http://", "ws://") + "/ws"
        _, auth = await logged_in(client)
        # The database loses the table that says whether a login is still valid: checking the
        # token fails with an error no code path expects.
        with sqlite3.connect(tmp_path / "runwire.db") as side:
            side.execute("ALTER TABLE token_families RENAME TO token_families_gone")
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url, additional_headers=auth, open_timeout=unit(5))
        assert refused.value.response.status_code == 500
        assert json.loads(bytes(refused.value.response.body))["code"] == "internal"
