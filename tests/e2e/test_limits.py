"""Limits a client can run into: frame size and the idle timeout, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator

import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit

IDLE_S = 2.0


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_WS_IDLE_TIMEOUT_S": str(IDLE_S),
        "RUNWIRE_WS_PING_INTERVAL_S": "0.5",
        "RUNWIRE_WS_PING_TIMEOUT_S": "0.5",
        "RUNWIRE_RUN_TIMEOUT_S": "1.5",
        "RUNWIRE_TOOL_TIMEOUT_S": "1",
        "RUNWIRE_LLM_TIMEOUT_S": "1",
    }
    proc = ServerProcess(tmp_path_factory.mktemp("strict"), env)
    yield proc
    proc.stop()


async def test_a_frame_over_the_limit_closes_with_1009(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    sock = await session.connect()
    await sock.ws.send('{"type":"ping","pad":"' + "x" * (70 * 1024) + '"}')
    with pytest.raises(ConnectionClosed) as closed:
        await sock.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_silent_socket_is_closed_with_4000_and_a_pinging_one_is_not(
    strict_server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(strict_server.url)
    silent = await session.connect()
    talker = await session.connect()
    for _ in range(3):
        await asyncio.sleep(IDLE_S / 2)
        await talker.send(type="ping")
        assert (await talker.recv())["type"] == "pong"
    with pytest.raises(ConnectionClosed) as closed:
        await silent.recv(timeout=unit(5))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    assert closed.value.rcvd.reason == "idle timeout"
