"""A socket's inbox (transport/ws_inbox.py) on a real loopback connection: messages handled one
at a time in order, the socket's reading paused while too many wait and resumed once few do, a
handler's unexpected error not stopping the rest, and what waits dropped when the socket goes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from runwire.transport.ws_inbox import PAUSE_AT, RESUME_AT, Inbox, InboxPhase

pytestmark = pytest.mark.integration


@pytest.fixture
async def transport() -> AsyncIterator[asyncio.Transport]:
    """The server side of a real loopback TCP connection."""
    accepted: asyncio.Future[asyncio.Transport] = asyncio.get_running_loop().create_future()

    class _Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            accepted.set_result(transport)

    server = await asyncio.get_running_loop().create_server(_Accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield await accepted
    finally:
        writer.close()
        (await accepted).close()
        server.close()
        await server.wait_closed()


async def test_messages_are_handled_in_order_and_a_flood_pauses_reading_until_few_wait(
    transport: asyncio.Transport, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[str | bytes] = []
    gate = asyncio.Event()
    resumed_at: list[int] = []

    async def handle(message: str | bytes) -> None:
        await gate.wait()
        if handled and not resumed_at and inbox.phase.state is InboxPhase.HANDLING:
            resumed_at.append(len(handled))  # reading resumed after this many were handled
        handled.append(message)
        if message == "boom":
            raise RuntimeError("a bug in a handler")  # logged; the next ones still handled

    inbox = Inbox(asyncio.get_running_loop(), handle, transport)
    assert inbox.phase.state is InboxPhase.IDLE
    messages: list[str | bytes] = ["boom", *(f"m{i}" for i in range(PAUSE_AT))]
    for message in messages:
        inbox.put(message)
    # The first is being handled (so does not wait); PAUSE_AT more wait: reading stops.
    assert inbox.phase.state is InboxPhase.PAUSED
    assert not transport.is_reading()
    gate.set()
    for _ in range(200):
        if inbox.phase.state is InboxPhase.IDLE:
            break
        await asyncio.sleep(0)
    assert handled == messages
    assert inbox.phase.state is InboxPhase.IDLE
    assert transport.is_reading()
    # Reading resumed once RESUME_AT waited, not only at the end.
    assert resumed_at == [len(messages) - RESUME_AT]
    assert [r.getMessage() for r in caplog.records] == ["handling a frame failed"]


async def test_when_the_socket_goes_what_waits_is_dropped(transport: asyncio.Transport) -> None:
    handled: list[str | bytes] = []
    gate = asyncio.Event()

    async def handle(message: str | bytes) -> None:
        await gate.wait()
        handled.append(message)

    inbox = Inbox(asyncio.get_running_loop(), handle, transport)
    inbox.put("first")
    inbox.put("second")
    await asyncio.sleep(0)  # the first is being handled
    inbox.close()
    inbox.close()  # idempotent
    inbox.put("after")
    gate.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert handled == ["first"]
    assert inbox.phase.state is InboxPhase.CLOSED
