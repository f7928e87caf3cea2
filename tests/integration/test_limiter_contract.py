"""The rate limiter contract (runwire/limits/base.py), checked against each implementation:
MemoryRateLimiter, and RedisRateLimiter on a real Redis (``RUNWIRE_TEST_REDIS_URL``), both on a
fake clock (Redis is handed the test's time instead of its own), so nothing sleeps.

The Redis-only tests at the end are what several nodes add: two limiters on one Redis share their
buckets, racing acquisitions cannot overshoot, Redis holds no e-mail and forgets full buckets,
and a node whose Redis does not answer counts on its own until it does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from runwire.limits.base import Limit, RateLimiter
from runwire.limits.buckets import Rate
from runwire.limits.memory import MemoryRateLimiter
from runwire.limits.redis import RedisRateLimiter
from tests.clock import FakeClock
from tests.integration.test_redis_bus import Proxy
from tests.redis_keys import fresh_prefix
from tests.services import redis_url

LOGIN = Limit("login-account", Rate.per_window(3, 60.0))  # a token back every 20 s
OTHER = Limit("login-address", Rate.per_window(3, 60.0))
ACCOUNT = "someone@example.com"


@contextlib.asynccontextmanager
async def redis_limiters(
    count: int, clock: FakeClock, url: str | None = None
) -> AsyncIterator[list[RedisRateLimiter]]:
    """``count`` limiters (nodes) on one Redis, under a key prefix of their own."""
    real = redis_url()
    async with fresh_prefix(real) as prefix, contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                RedisRateLimiter(
                    url or real, prefix=prefix, clock=clock, fallback_clock=clock
                ).running()
            )
            for _ in range(count)
        ]


@contextlib.asynccontextmanager
async def proxy_to_redis() -> AsyncIterator[tuple[Proxy, str]]:
    """A TCP proxy to the test Redis (``cut()`` it to make Redis unreachable) and its URL."""
    parts = urlsplit(redis_url())
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await proxy.start()
    netloc = parts.netloc.rpartition("@")[0]
    try:
        yield (
            proxy,
            urlunsplit(
                parts._replace(netloc=f"{netloc}{'@' if netloc else ''}127.0.0.1:{proxy.port}")
            ),
        )
    finally:
        await proxy.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)  # wall-clock sized, as Redis's TIME is


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter(clock)
        return
    async with redis_limiters(1, clock) as (node,):
        yield node


async def allowed(limiter: RateLimiter, limit: Limit, key: str, times: int) -> list[bool]:
    return [(await limiter.acquire(limit, key)).allowed for _ in range(times)]


async def test_a_burst_then_one_token_back_per_interval(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    assert await allowed(limiter, LOGIN, ACCOUNT, 3) == [True, True, True]
    refused = await limiter.acquire(LOGIN, ACCOUNT)
    assert not refused.allowed
    assert refused.retry_after_s == pytest.approx(20.0)
    clock.advance(5.0)
    assert (await limiter.acquire(LOGIN, ACCOUNT)).retry_after_s == pytest.approx(15.0)
    clock.advance(15.0)
    # Refused calls took nothing: exactly one token came back, after exactly one interval.
    assert await allowed(limiter, LOGIN, ACCOUNT, 2) == [True, False]
    clock.advance(60.0)
    assert await allowed(limiter, LOGIN, ACCOUNT, 4) == [True, True, True, False]


async def test_keys_and_limits_are_counted_apart(limiter: RateLimiter) -> None:
    assert await allowed(limiter, LOGIN, ACCOUNT, 4) == [True, True, True, False]
    assert await allowed(limiter, LOGIN, "other@example.com", 1) == [True]
    assert await allowed(limiter, OTHER, ACCOUNT, 1) == [True]


async def test_refund_gives_one_token_back_and_reset_fills_the_bucket(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    assert await allowed(limiter, LOGIN, ACCOUNT, 3) == [True, True, True]
    await limiter.refund(LOGIN, ACCOUNT)
    assert await allowed(limiter, LOGIN, ACCOUNT, 2) == [True, False]
    await limiter.reset(LOGIN, ACCOUNT)
    assert await allowed(limiter, LOGIN, ACCOUNT, 4) == [True, True, True, False]
    # Refunding more than was taken never gives more than a full bucket.
    clock.advance(60.0)
    for _ in range(5):
        await limiter.refund(LOGIN, ACCOUNT)
    await limiter.refund(LOGIN, "never-seen@example.com")
    assert await allowed(limiter, LOGIN, ACCOUNT, 4) == [True, True, True, False]


async def test_a_bucket_full_again_is_the_same_as_a_key_never_seen(
    limiter: RateLimiter, clock: FakeClock
) -> None:
    assert await allowed(limiter, LOGIN, ACCOUNT, 2) == [True, True]
    clock.advance(40.0)  # both tokens back
    assert await allowed(limiter, LOGIN, ACCOUNT, 4) == [True, True, True, False]


# -- what several nodes add (Redis only) --


async def test_two_nodes_count_against_the_same_bucket(clock: FakeClock) -> None:
    async with redis_limiters(2, clock) as (one, two):
        assert await allowed(one, LOGIN, ACCOUNT, 2) == [True, True]
        assert await allowed(two, LOGIN, ACCOUNT, 2) == [True, False]
        assert not (await one.acquire(LOGIN, ACCOUNT)).allowed
        await two.reset(LOGIN, ACCOUNT)
        assert await allowed(one, LOGIN, ACCOUNT, 1) == [True]


async def test_racing_acquisitions_on_two_nodes_never_overshoot(clock: FakeClock) -> None:
    burst = Limit("register-address", Rate.per_window(10, 3600.0))
    async with redis_limiters(2, clock) as nodes:
        decisions = await asyncio.gather(
            *(nodes[i % 2].acquire(burst, "192.0.2.7") for i in range(40))
        )
    assert sum(d.allowed for d in decisions) == 10


async def test_redis_holds_a_digest_not_the_key_and_forgets_a_full_bucket(
    clock: FakeClock,
) -> None:
    async with redis_limiters(1, clock) as (node,):
        await node.acquire(LOGIN, ACCOUNT)
        redis = Redis.from_url(redis_url())
        try:
            keys = [k.decode() async for k in redis.scan_iter(match=f"{node._prefix}*")]
            assert len(keys) == 1
            assert keys[0].startswith(f"{node._prefix}limit:login-account:")
            assert "example" not in keys[0] and "someone" not in keys[0]
            # It expires when the bucket is full again: one interval (20 s) after one token.
            assert 19_000 < await redis.pttl(keys[0]) <= 20_000
            await node.refund(LOGIN, ACCOUNT)  # the bucket is full again: nothing is kept
            assert await redis.exists(keys[0]) == 0
        finally:
            await redis.aclose()


async def test_a_node_whose_redis_does_not_answer_counts_alone_until_it_does(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        proxy_to_redis() as (proxy, via_proxy),
        redis_limiters(1, clock, url=via_proxy) as (node,),
    ):
        assert await allowed(node, LOGIN, ACCOUNT, 2) == [True, True]  # in Redis
        proxy.cut()
        # Not lifted, not refusing everyone: this node's own bucket, from full.
        assert await allowed(node, LOGIN, ACCOUNT, 4) == [True, True, True, False]
        assert not node.shared
        assert "counting in this process" in caplog.text
        assert "127.0.0.1" not in caplog.text and str(proxy.port) not in caplog.text
        proxy.restore()
        # Redis again: the shared bucket, with the one token it had left.
        assert await allowed(node, LOGIN, ACCOUNT, 2) == [True, False]
        assert node.shared
