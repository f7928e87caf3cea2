"""The SSE endpoint on the real app served by uvicorn in this process, so its bus can be seen."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from runwire.app import create_app
from runwire.config import Settings
from runwire.domain.ids import new_epoch, new_id
from runwire.events import EventType, RunEvent
from runwire.protocol.inbound import UserMessage
from runwire.transport.event_stream import sse_frame
from runwire.transport.services import Services
from tests.conftest import test_settings
from tests.ports import loopback_listener
from tests.timing import unit


async def until(condition: Callable[[], bool], timeout: float) -> None:
    """Wait for a state of another part (the server, the bus) that announces no event."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - there is no event to wait on
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, *, send_buffer: int | None = None, **config: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    """The app behind a real listening socket (``config``: more uvicorn options, such as the
    WebSocket protocol); yields an HTTP client for it and its services. ``send_buffer`` fixes
    the kernel's send buffer of every connection (loopback's grows to megabytes by itself)."""
    app = create_app(settings)
    listener = loopback_listener()
    if send_buffer is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)  # accepts inherit it
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=1, **config)
    )
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await until(lambda: server.started, unit(10))
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=unit(10)
        ) as client:
            yield client, app.state.services
    finally:
        server.should_exit = True
        await task
        listener.close()


def is_terminal(event: dict[str, object]) -> bool:
    return event["parent_agent"] is None and event["type"] in (
        "agent_completed",
        "agent_error",
        "agent_stopped",
    )


async def logged_in(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    creds = {"email": "ada@example.com", "password": "correct horse battery"}
    assert (await client.post("/auth/register", json=creds)).status_code == 201
    body = (await client.post("/auth/login", json=creds)).json()
    return body["user"]["id"], {"Authorization": f"Bearer {body['access_token']}"}


async def test_a_stream_keeps_alive_and_releases_its_subscription_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    # Chunks every 300 ms, keep-alive every 50 ms: quiet gaps get comments.
    settings = test_settings(tmp_path, offline_delay_ms=300, sse_keepalive_s=0.05)
    async with serving(settings) as (client, services):
        user_id, auth = await logged_in(client)
        accepted = await services.chat.submit(user_id, UserMessage(content="hello"))
        bus = services.bus
        assert bus.subscriber_count(user_id) == 0
        seqs: list[int] = []
        keepalives = 0
        async with client.stream(
            "GET",
            f"/api/runs/{accepted.run_id}/events",
            headers={**auth, "Accept": "text/event-stream"},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-store"
            async for line in response.aiter_lines():
                if line == ": keep-alive":
                    keepalives += 1
                elif line.startswith("data: "):
                    seqs.append(json.loads(line.removeprefix("data: "))["seq"])
                if keepalives >= 2 and seqs:
                    break
            assert bus.subscriber_count(user_id) == 1  # the stream's own subscription
        # The client hung up mid-run: the server ends the stream and lets go of the bus.
        await until(lambda: bus.subscriber_count(user_id) == 0, unit(5))
        assert seqs == list(range(1, len(seqs) + 1))
        assert services.executor.is_active(accepted.run_id)  # the run itself goes on
        await services.chat.stop(user_id, accepted.run_id)


async def test_a_stream_of_a_run_recorded_as_ended_without_a_last_event_still_ends(
    tmp_path: Path,
) -> None:
    async with serving(test_settings(tmp_path)) as (client, services):
        user_id, auth = await logged_in(client)
        store = services.store
        run_id, epoch = new_id("run"), new_epoch()
        thread, _ = await store.conversations.accept(
            user_id=user_id, thread=None, content="q", run_id=run_id, epoch=epoch
        )
        # What a run task leaves when it dies before closing the run: events, no terminal one.
        started = RunEvent(
            EventType.AGENT_STARTED, run_id, thread.id, 1, "supervisor", "ts", epoch=epoch
        )
        thinking = dataclasses.replace(started, type=EventType.AGENT_THINKING, seq=2)
        await store.runs.append_events([started, thinking])
        await store.runs.finish(run_id, "cancelled", last_seq=2, started_at=None)
        path = f"/api/runs/{run_id}/events"
        headers = {**auth, "Accept": "text/event-stream"}
        async with asyncio.timeout(unit(5)):
            response = await client.get(path, headers=headers)
        assert response.status_code == 200
        assert response.text == sse_frame(started) + sse_frame(thinking)
        assert services.bus.subscriber_count(user_id) == 0
        done = await client.get(path, headers={**headers, "Last-Event-ID": f"{epoch}:2"})
        assert done.status_code == 204


async def test_a_client_that_falls_behind_loses_its_stream_but_no_event(tmp_path: Path) -> None:
    # A backlog of one byte: every live event overflows a stream that has not sent it yet, so
    # each stream ends after its replay and the client continues with Last-Event-ID.
    settings = test_settings(tmp_path, offline_delay_ms=20, outbound_buffer_bytes=1)
    async with serving(settings) as (client, services):
        user_id, auth = await logged_in(client)
        accepted = await services.chat.submit(user_id, UserMessage(content="hello"))
        path = f"/api/runs/{accepted.run_id}/events"
        received: list[dict[str, object]] = []
        last_id: str | None = None
        streams = 0
        async with asyncio.timeout(unit(30)):
            while not (received and is_terminal(received[-1])):
                headers = {**auth, "Accept": "text/event-stream"}
                if last_id is not None:
                    headers["Last-Event-ID"] = last_id
                response = await client.get(path, headers=headers)
                if response.status_code == 204:
                    break
                assert response.status_code == 200
                streams += 1
                for message in response.text.split("\n\n"):
                    if message:
                        id_line, data_line = message.split("\n")
                        last_id = id_line.removeprefix("id: ")
                        received.append(json.loads(data_line.removeprefix("data: ")))
        assert streams > 1  # it did fall behind
        assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
        assert received[-1]["type"] == "agent_completed" and received[-1]["parent_agent"] is None
        assert services.bus.subscriber_count(user_id) == 0
