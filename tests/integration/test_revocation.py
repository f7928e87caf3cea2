"""Ending a session on one node (in memory: one process), on the real app served by uvicorn in
this process and both socket adapters: the session's sockets close with 4010 and its SSE
streams end, at once; the user's other sessions and runs go on. (tests/e2e/test_revocation.py
does it across two nodes through Redis.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from runwire.protocol.inbound import UserMessage
from runwire.transport.ws_protocol import RunwireWebSocketProtocol
from tests.conftest import test_settings
from tests.integration.test_event_stream import serving, until
from tests.timing import unit

EMAIL, PASSWORD = "ada@example.com", "correct horse battery"
ADAPTERS: dict[str, dict[str, Any]] = {"direct": {"ws": RunwireWebSocketProtocol}, "asgi": {}}


async def sign_in(client: httpx.AsyncClient, password: str = PASSWORD) -> dict[str, Any]:
    answer = await client.post("/auth/login", json={"email": EMAIL, "password": password})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    body["auth"] = {"Authorization": f"Bearer {body['access_token']}"}
    return body


async def open_socket(client: httpx.AsyncClient, session: dict[str, Any]) -> ClientConnection:
    ticket = (await client.post("/api/ws-ticket", headers=session["auth"])).json()["ticket"]
    url = str(client.base_url).replace("http://", "ws://") + f"/ws?ticket={ticket}"
    ws = await connect(url, open_timeout=unit(5), max_queue=None)
    assert json.loads(await ws.recv())["type"] == "connection_established"
    return ws


async def closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes ``ws`` (within 2 s); its close code and reason."""
    async with asyncio.timeout(unit(2)):
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def still_open(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping", "request_id": "p"}))
    async with asyncio.timeout(unit(2)):
        while (frame := json.loads(await ws.recv()))["type"] != "pong":
            assert frame.get("type") != "error", frame


@pytest.mark.parametrize("adapter", list(ADAPTERS))
async def test_logout_closes_its_sockets_and_streams_and_nothing_else(
    tmp_path: Path, adapter: str
) -> None:
    settings = test_settings(tmp_path, offline_delay_ms=100)
    async with serving(settings, **ADAPTERS[adapter]) as (client, services):
        creds = {"email": EMAIL, "password": PASSWORD}
        assert (await client.post("/auth/register", json=creds)).status_code == 201
        laptop, phone = await sign_in(client), await sign_in(client)
        user_id = laptop["user"]["id"]
        laptop_ws, phone_ws = await open_socket(client, laptop), await open_socket(client, phone)
        run = await services.chat.submit(user_id, UserMessage(content="hello"))
        stream_lines: list[str] = []

        async def follow() -> None:
            headers = {**laptop["auth"], "Accept": "text/event-stream"}
            async with client.stream(
                "GET", f"/api/runs/{run.run_id}/events", headers=headers
            ) as response:
                assert response.status_code == 200
                async for line in response.aiter_lines():
                    stream_lines.append(line)

        streaming = asyncio.create_task(follow())
        await until(lambda: any(line.startswith("data: ") for line in stream_lines), unit(5))
        assert services.revocations.watching == 3  # two sockets and the stream

        assert (await client.post("/auth/logout", headers=laptop["auth"])).status_code == 204
        assert await closed_with(laptop_ws) == (4010, "session ended; sign in again")
        async with asyncio.timeout(unit(2)):
            await streaming  # the stream ended, before the run did
        assert services.executor.is_active(run.run_id)  # the user's run goes on
        await still_open(phone_ws)  # and so does the user's other session
        assert (await client.get("/api/me", headers=laptop["auth"])).status_code == 401
        assert (await client.get("/api/me", headers=phone["auth"])).status_code == 200
        assert services.revocations.watching == 1
        await services.chat.stop(user_id, run.run_id)
        await phone_ws.close()


async def test_reuse_and_a_password_change_close_the_sessions_they_end(tmp_path: Path) -> None:
    async with serving(test_settings(tmp_path), ws=RunwireWebSocketProtocol) as (client, _):
        creds = {"email": EMAIL, "password": PASSWORD}
        assert (await client.post("/auth/register", json=creds)).status_code == 201

        # A refresh token presented twice ends its session: the holder's socket closes too.
        stolen = await sign_in(client)
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": stolen["refresh_token"]}
        )
        holder = refreshed.json()
        holder["auth"] = {"Authorization": f"Bearer {holder['access_token']}"}
        holder_ws = await open_socket(client, holder)
        again = await client.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
        assert again.status_code == 401
        assert (await closed_with(holder_ws))[0] == 4010

        # A password change ends every other session, and keeps the caller's.
        here, other = await sign_in(client), await sign_in(client)
        here_ws, other_ws = await open_socket(client, here), await open_socket(client, other)
        change = {"current_password": PASSWORD, "new_password": "a new passphrase"}
        wrong = await client.post(
            "/auth/password", headers=here["auth"], json={**change, "current_password": "nope"}
        )
        assert (wrong.status_code, wrong.json()["code"]) == (403, "wrong_password")
        await still_open(other_ws)
        changed = await client.post("/auth/password", headers=here["auth"], json=change)
        assert changed.status_code == 204
        assert (await closed_with(other_ws))[0] == 4010
        await still_open(here_ws)
        assert (await client.get("/api/me", headers=other["auth"])).status_code == 401
        assert (await client.get("/api/me", headers=here["auth"])).status_code == 200
        await sign_in(client, "a new passphrase")
        await here_ws.close()
