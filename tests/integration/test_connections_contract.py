"""The connection registry contract (runwire/connections/base.py), checked against each
implementation: MemoryConnections, and RedisConnections on a real Redis
(``RUNWIRE_TEST_REDIS_URL``) on a fake clock, so nothing sleeps.

The Redis-only tests at the end are what several nodes add: the cap holds over two nodes, racing
claims cannot overshoot it, a release reaches the other nodes, a node that stops renewing (died)
stops counting after the TTL, a node that stops cleanly takes its seats with it, and a node whose
Redis does not answer caps its own seats until it does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from runwire.connections.base import ConnectionRegistry, Seat
from runwire.connections.memory import MemoryConnections
from runwire.connections.redis import RedisConnections
from tests.clock import FakeClock
from tests.integration.test_limiter_contract import proxy_to_redis
from tests.redis_keys import fresh_prefix
from tests.services import redis_url
from tests.timing import unit

CAP = 3
TTL_S = 30.0


@contextlib.asynccontextmanager
async def redis_registries(
    count: int, clock: FakeClock, *, url: str | None = None, cap: int = CAP
) -> AsyncIterator[list[RedisConnections]]:
    """``count`` registries (nodes) on one Redis, under a key prefix of their own."""
    real = redis_url()
    async with fresh_prefix(real) as prefix, contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                RedisConnections(
                    url or real, cap, prefix=prefix, clock=clock, ttl_s=TTL_S, renew_every_s=10.0
                ).running()
            )
            for _ in range(count)
        ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture(params=["memory", "redis"])
async def registry(
    request: pytest.FixtureRequest, clock: FakeClock
) -> AsyncIterator[ConnectionRegistry]:
    if request.param == "memory":
        yield MemoryConnections(CAP)
        return
    async with redis_registries(1, clock) as (node,):
        yield node


async def seats(registry: ConnectionRegistry, user_id: str, times: int) -> list[Seat | None]:
    return [await registry.claim(user_id) for _ in range(times)]


async def count_becomes(registry: ConnectionRegistry, user_id: str, expected: int) -> None:
    """Wait until ``user_id`` holds ``expected`` seats (a release reaches Redis in the
    background; nothing announces when)."""
    async with asyncio.timeout(unit(5)):
        while await registry.count(user_id) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_a_user_gets_cap_seats_then_none_until_one_is_released(
    registry: ConnectionRegistry,
) -> None:
    held = await seats(registry, "usr_a", CAP + 1)
    assert [seat is not None for seat in held] == [True] * CAP + [False]
    assert await registry.count("usr_a") == CAP
    assert await registry.claim("usr_b") is not None  # another user's seats are their own
    first = held[0]
    assert first is not None
    first.release()
    first.release()  # idempotent: frees one seat, not two
    await count_becomes(registry, "usr_a", CAP - 1)
    assert [seat is not None for seat in await seats(registry, "usr_a", 2)] == [True, False]


# -- what several nodes add (Redis only) --


async def test_the_cap_counts_seats_on_every_node_and_racing_claims_never_overshoot(
    clock: FakeClock,
) -> None:
    async with redis_registries(2, clock, cap=5) as (one, two):
        held = await asyncio.gather(*((one, two)[i % 2].claim("usr_r") for i in range(20)))
        assert sum(seat is not None for seat in held) == 5
        assert await one.count("usr_r") == await two.count("usr_r") == 5
        # A seat released on one node is free on the other within moments.
        next(seat for seat in held if seat is not None).release()
        await count_becomes(two, "usr_r", 4)
        assert await two.claim("usr_r") is not None
        assert await one.claim("usr_r") is None


async def test_a_node_that_stops_renewing_stops_counting_after_the_ttl(clock: FakeClock) -> None:
    async with redis_registries(2, clock) as (dead, alive):
        assert None not in await seats(dead, "usr_d", 2)
        assert None not in await seats(alive, "usr_d", 1)
        assert await alive.claim("usr_d") is None
        clock.advance(TTL_S * 2 / 3)
        await alive.renew()  # the live node renews; the dead one never does again
        clock.advance(TTL_S * 2 / 3)
        assert await alive.count("usr_d") == 1
        assert None not in await seats(alive, "usr_d", 2)
        assert await alive.claim("usr_d") is None


async def test_a_node_that_stops_cleanly_takes_its_seats_with_it(clock: FakeClock) -> None:
    async with redis_registries(1, clock) as (other,):
        async with RedisConnections(
            redis_url(), CAP, prefix=other._prefix, clock=clock
        ).running() as leaving:
            assert None not in await seats(leaving, "usr_s", CAP)
            assert await other.claim("usr_s") is None
        assert await other.count("usr_s") == 0


async def test_a_node_whose_redis_does_not_answer_caps_its_own_seats_until_it_does(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        proxy_to_redis() as (proxy, via_proxy),
        redis_registries(1, clock) as (direct,),
        RedisConnections(via_proxy, CAP, prefix=direct._prefix, clock=clock).running() as cut_off,
    ):
        assert await direct.claim("usr_o") is not None
        proxy.cut()
        # Neither refusing everyone nor unlimited: this node's own seats, up to the cap.
        held = await seats(cut_off, "usr_o", CAP + 1)
        assert [seat is not None for seat in held] == [True] * CAP + [False]
        assert "counting this node's sockets only" in caplog.text
        proxy.restore()
        await cut_off.renew()  # its seats reach Redis at the next renewal
        assert await direct.count("usr_o") == CAP + 1
        assert await direct.claim("usr_o") is None
