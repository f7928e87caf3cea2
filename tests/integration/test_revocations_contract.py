"""The revocations contract (runwire/revocations/base.py), checked against each implementation:
MemoryRevocations, and RedisRevocations on a real Redis (``RUNWIRE_TEST_REDIS_URL``), on a
wall clock of the test's own (starting at the real time, so Redis's expiries are sane).

The Redis-only tests at the end are what several nodes add: a revocation reaches the other
nodes and their watchers, a node that starts later knows it, and neither a node cut off from
Redis nor a revocation made while Redis was away is lost once it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from runwire.revocations.base import Revocations
from runwire.revocations.memory import MemoryRevocations
from runwire.revocations.redis import RedisRevocations
from tests.clock import FakeClock
from tests.integration.test_limiter_contract import proxy_to_redis
from tests.redis_keys import fresh_prefix
from tests.services import redis_url
from tests.timing import unit

LIFE_S = 900.0  # how long a revocation matters here: an access token's lifetime


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(start=time.time())


@contextlib.asynccontextmanager
async def redis_nodes(
    count: int, wall: FakeClock, *, prefix: str | None = None, url: str | None = None
) -> AsyncIterator[list[RedisRevocations]]:
    """``count`` nodes on one Redis, under a key prefix of their own (or ``prefix``)."""
    async with contextlib.AsyncExitStack() as stack:
        if prefix is None:
            prefix = await stack.enter_async_context(fresh_prefix(redis_url()))
        yield [
            await stack.enter_async_context(
                RedisRevocations(
                    url or redis_url(), prefix=prefix, wall=wall, ping_interval_s=unit(0.5)
                ).running()
            )
            for _ in range(count)
        ]


@pytest.fixture(params=["memory", "redis"])
async def revocations(
    request: pytest.FixtureRequest, wall: FakeClock
) -> AsyncIterator[Revocations]:
    if request.param == "memory":
        yield MemoryRevocations(wall)
        return
    async with redis_nodes(1, wall) as (node,):
        yield node


class Calls:
    """A watcher that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def becomes(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds (another node learns through Redis; nothing announces when)."""
    async with asyncio.timeout(unit(2)):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_a_revoked_session_is_known_and_its_watchers_called_once(
    revocations: Revocations, wall: FakeClock
) -> None:
    mine, other, gone = Calls(), Calls(), Calls()
    revocations.watch("ses_a", mine)
    revocations.watch("ses_b", other)
    revocations.watch("ses_a", gone).close()
    assert revocations.watching == 2
    assert not revocations.is_revoked("ses_a")

    await revocations.revoke("ses_a", wall() + LIFE_S)
    assert revocations.is_revoked("ses_a")
    assert (mine.count, other.count, gone.count) == (1, 0, 0)
    assert not revocations.is_revoked("ses_b")
    assert revocations.watching == 1  # a session ends once: its watches are done

    await revocations.revoke("ses_a", wall() + LIFE_S)  # again: harmless, nobody called twice
    assert mine.count == 1
    # Watching a session that has ended already calls at once: checking then watching has no gap.
    late = Calls()
    revocations.watch("ses_a", late).close()
    assert late.count == 1
    assert revocations.watching == 1


async def test_a_revocation_is_forgotten_once_it_no_longer_matters(
    revocations: Revocations, wall: FakeClock
) -> None:
    await revocations.revoke("ses_short", wall() + 10)
    await revocations.revoke("ses_long", wall() + LIFE_S)
    await revocations.revoke("ses_past", wall() - 1)  # its tokens have expired anyway
    await revocations.revoke("ses_renewed", wall() + 10)
    await revocations.revoke("ses_renewed", wall() + 20)  # a later token: the later end wins
    await revocations.revoke("ses_renewed", wall() + 5)  # an earlier one changes nothing
    assert not revocations.is_revoked("ses_past")
    wall.advance(11)
    assert not revocations.is_revoked("ses_short")
    assert revocations.is_revoked("ses_long")
    assert revocations.is_revoked("ses_renewed")
    wall.advance(10)
    assert not revocations.is_revoked("ses_renewed")


async def test_a_watcher_that_raises_does_not_keep_the_others_from_being_called(
    revocations: Revocations, wall: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    after = Calls()
    revocations.watch("ses_x", broken)
    revocations.watch("ses_x", after)
    await revocations.revoke("ses_x", wall() + LIFE_S)
    assert after.count == 1
    assert "revocation handler failed" in caplog.text


# -- what several nodes add (Redis only) --


async def test_a_revocation_reaches_every_node_and_a_node_that_starts_later(
    wall: FakeClock,
) -> None:
    async with redis_nodes(2, wall) as (one, two):
        watcher = Calls()
        two.watch("ses_r", watcher)
        await one.revoke("ses_r", wall() + LIFE_S)
        await becomes(lambda: two.is_revoked("ses_r") and watcher.count == 1)
        await two.revoke("ses_r", wall() + 10)  # an earlier end does not shorten it in Redis
        wall.advance(11)
        async with redis_nodes(1, wall, prefix=one._key.removesuffix("revoked")) as (late,):
            assert late.is_revoked("ses_r")  # known as it starts, before anything is asked
            assert not late.is_revoked("ses_other")


async def test_nothing_is_lost_while_a_node_is_cut_off_from_redis(
    wall: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        proxy_to_redis() as (proxy, via_proxy),
        redis_nodes(1, wall) as (direct,),
        redis_nodes(1, wall, prefix=direct._key.removesuffix("revoked"), url=via_proxy) as (
            cut_off,
        ),
    ):
        missed, local = Calls(), Calls()
        cut_off.watch("ses_missed", missed)
        direct.watch("ses_local", local)
        proxy.cut()
        await direct.revoke("ses_missed", wall() + LIFE_S)  # announced while it cannot hear
        await cut_off.revoke("ses_local", wall() + LIFE_S)  # made while it cannot send
        assert cut_off.is_revoked("ses_local")  # this node knows at once
        assert "known on this node only" in caplog.text
        await asyncio.sleep(unit(0.2))
        assert not cut_off.is_revoked("ses_missed") and not direct.is_revoked("ses_local")
        proxy.restore()
        # Once it answers: the cut-off node reads what it missed, and sends what it made.
        await becomes(lambda: cut_off.is_revoked("ses_missed") and missed.count == 1)
        await becomes(lambda: direct.is_revoked("ses_local") and local.count == 1)
