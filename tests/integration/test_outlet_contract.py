"""The Outlet contract (runwire/transport/session.py): what a Session relies on from the socket
adapter it writes to, checked against each outlet a server runs: the direct protocol's
(``RunwireWebSocketProtocol``, ``runwire serve``) and the ASGI endpoint's (under uvicorn's
``CoalescingWebSocketProtocol``).

Each test serves the app on a loopback port, opens a real WebSocket as a signed-in user, and
writes to the outlet of that socket's session directly; the client's side is what the test
checks. A client that "does not read" has small kernel buffers and reads one frame ahead at
most (as in test_slow_consumers.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from runwire.transport.outlet import Outlet
from runwire.transport.services import Services
from runwire.transport.session import Session
from tests.conftest import test_settings
from tests.integration.test_event_stream import logged_in, serving, until
from tests.integration.test_slow_consumers import ADAPTERS, KERNEL_BUFFER, open_socket
from tests.timing import unit

LIMIT = 8192  # bytes of earlier turns a client may leave unread
FRAME = 2048  # bytes of padding in the frames written while the client does not read


@dataclass
class Connected:
    """One open socket: the client's end, and the outlet its session writes to."""

    client: ClientConnection
    outlet: Outlet
    services: Services
    user_id: str


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request: pytest.FixtureRequest) -> Any:
    return ADAPTERS[request.param]


@contextlib.asynccontextmanager
async def connected(
    tmp_path: Path, adapter: Any, monkeypatch: pytest.MonkeyPatch, *, reading: bool
) -> AsyncIterator[Connected]:
    settings = test_settings(tmp_path, outbound_buffer_bytes=LIMIT)
    async with serving(settings, send_buffer=KERNEL_BUFFER, ws=adapter) as (http, services):
        user_id, auth = await logged_in(http)
        # The session is found as it subscribes to the user's runs (its handler is its own
        # bound method); the bus is the app's own, only watched.
        sessions: list[Session] = []
        subscribe = services.bus.subscribe

        async def watched(user: str, on_event: Any, *args: Any) -> Any:
            sessions.append(on_event.__self__)
            return await subscribe(user, on_event, *args)

        monkeypatch.setattr(services.bus, "subscribe", watched)
        client = await open_socket(http, auth, reading=reading)  # greeted already
        (session,) = sessions
        try:
            yield Connected(client, session._outlet, services, user_id)
        finally:
            await client.close()


def frame(i: int, pad: int = 0) -> str:
    # Random padding: the ASGI path compresses frames (permessage-deflate), and a frame of one
    # letter repeated would pile up in no buffer at all.
    return json.dumps({"n": i, "pad": secrets.token_urlsafe(pad)[:pad]})


async def received(client: ClientConnection) -> tuple[list[int], int | None, str | None]:
    """Every frame's number until the socket closes, and the close's code and reason."""
    numbers: list[int] = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            numbers.append(json.loads(await asyncio.wait_for(client.recv(), unit(10)))["n"])
    rcvd = closed.value.rcvd
    return numbers, rcvd.code if rcvd else None, rcvd.reason if rcvd else None


async def next_turn() -> None:
    """Let the event loop run a few turns: what this turn queued is handed to the socket."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_frames_leave_whole_and_in_the_order_queued_then_the_close(
    tmp_path: Path, adapter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(tmp_path, adapter, monkeypatch, reading=True) as c:
        sent = [frame(1), frame(2), frame(3), frame(4), frame(5, 70_000), frame(6), "é " + frame(7)]
        assert c.outlet.write(sent[0])
        assert c.outlet.write(sent[1].encode())  # bytes: already UTF-8
        assert c.outlet.write_many([sent[2].encode(), sent[3].encode()])
        await next_turn()
        assert c.outlet.write_many([sent[4].encode()])  # a long frame: a header of its own
        assert c.outlet.write(sent[5], keep=True)
        assert c.outlet.write(sent[6])  # not ASCII: sent as UTF-8, whole
        c.outlet.close(4001, "done here", drop=False)
        texts: list[str | bytes] = []
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                texts.append(await asyncio.wait_for(c.client.recv(), unit(10)))
        assert texts == sent  # text frames (str), each exactly as given, in order
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "done here")


async def test_a_keep_frame_in_the_closing_turn_goes_before_the_close_and_nothing_after_it(
    tmp_path: Path, adapter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(tmp_path, adapter, monkeypatch, reading=True) as c:
        assert c.outlet.write(frame(1))
        await next_turn()  # handed to the socket: a drop no longer reaches it
        assert c.outlet.write(frame(2))
        c.outlet.close(4002, "first", drop=True)
        c.outlet.close(4003, "second", drop=False)  # only the first close counts
        # Closing: a plain frame is not queued, and that is no sign of a client not reading.
        assert c.outlet.write(frame(3)) is True
        assert c.outlet.write_many([frame(4).encode()]) is True
        assert c.outlet.write(frame(5), keep=True) is True  # same turn: still queued
        await next_turn()
        assert c.outlet.write(frame(6), keep=True) is True  # a later turn: too late
        numbers, code, reason = await received(c.client)
        assert numbers == [1, 5]
        assert (code, reason) == (4002, "first")


async def test_a_client_not_reading_is_refused_frames_and_a_drop_keeps_only_kept_ones(
    tmp_path: Path, adapter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(tmp_path, adapter, monkeypatch, reading=False) as c:
        written: list[int] = []
        refused = None
        for i in range(1, 2000):  # at most 4 MB: a client that reads nothing is refused long before
            if not c.outlet.write(frame(i, FRAME)):
                refused = i
                break
            written.append(i)
            await next_turn()
        assert refused is not None, "a client that reads nothing was never refused a frame"
        assert len(written) * FRAME > LIMIT  # refused for earlier turns' bytes, not at once
        # Refused again in the same turn, the batch too, and a kept frame never.
        assert not c.outlet.write(frame(refused + 1, FRAME))
        assert not c.outlet.write_many([frame(refused + 2).encode()])
        assert c.outlet.write(frame(9001), keep=True)
        assert c.outlet.write(frame(9002)) is False
        c.outlet.close(4008, "not reading", drop=True)
        numbers, code, reason = await received(c.client)
        # Some of the frames written, from the first on and in order (the rest were dropped
        # unsent), then the kept one; never a refused frame.
        got = numbers[:-1]
        assert got == written[: len(got)], numbers
        assert numbers[-1] == 9001
        assert (code, reason) == (4008, "not reading")


async def test_a_batch_is_queued_whole_or_not_at_all(
    tmp_path: Path, adapter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(tmp_path, adapter, monkeypatch, reading=False) as c:
        batches: list[list[int]] = []
        refused: list[int] | None = None
        for b in range(500):
            batch = [b * 10 + k for k in range(3)]
            if not c.outlet.write_many([frame(n, FRAME).encode() for n in batch]):
                refused = batch
                break
            batches.append(batch)
            await next_turn()
        assert refused is not None, "a client that reads nothing was never refused a batch"
        c.outlet.close(4004, "", drop=False)  # after everything queued: the client reads it all
        numbers, code, _ = await received(c.client)
        assert numbers == [n for batch in batches for n in batch]
        assert code == 4004


async def test_writes_to_a_socket_that_is_gone_queue_nothing_and_are_no_refusal(
    tmp_path: Path, adapter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connected(tmp_path, adapter, monkeypatch, reading=True) as c:
        await c.client.close()
        await until(lambda: c.services.bus.subscriber_count(c.user_id) == 0, unit(5))
        assert c.outlet.write(frame(1)) is True
        assert c.outlet.write(frame(2), keep=True) is True
        assert c.outlet.write_many([frame(3).encode()]) is True
        c.outlet.close(4005, "late", drop=False)  # nothing to close: no error either
        await next_turn()
