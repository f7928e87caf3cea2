"""The implementations of the ports a node runs on: in this process, or with RUNWIRE_REDIS_URL in
Redis, shared by every node (the event bus, the run queue, the rate limiter and connection
registry, the ended sessions). Each is an async context the lifespan enters; this module and the
factory are the only places that pick them (import-linter's "one implementation per concept").
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractAsyncContextManager, nullcontext

from runwire.bus.base import EventBus
from runwire.bus.memory import MemoryBus
from runwire.config import Settings, safe_url
from runwire.connections.base import ConnectionRegistry
from runwire.connections.memory import MemoryConnections
from runwire.limits.base import RateLimiter
from runwire.limits.buckets import Clock
from runwire.limits.memory import MemoryRateLimiter
from runwire.revocations.base import Revocations
from runwire.revocations.memory import MemoryRevocations
from runwire.run_queue.base import RunQueue
from runwire.run_queue.memory import MemoryRunQueue

__all__ = ["build_bus", "build_limits", "build_revocations", "build_run_queue"]

log = logging.getLogger(__name__)


# The Redis implementations are imported only by a node given RUNWIRE_REDIS_URL.
# redis-py's import (with the OpenTelemetry SDK it loads) costs ~0.35 s of CPU, a sixth of a
# server's start, which an embedded server, every CLI command and each of the suite's many server
# processes paid for nothing.


def build_bus(settings: Settings) -> AbstractAsyncContextManager[EventBus]:
    """The in-process bus, or with RUNWIRE_REDIS_URL the Redis bus (several nodes)."""
    if settings.redis_url is None:
        return nullcontext(MemoryBus())
    from runwire.bus.redis import RedisBus  # lazily: see the note above build_bus

    url = settings.redis_url.get_secret_value()
    log.info("event bus: Redis at %s", safe_url(url))
    return RedisBus(url).running()


def build_run_queue(settings: Settings) -> AbstractAsyncContextManager[RunQueue]:
    """The in-process run queue, or with RUNWIRE_REDIS_URL the Redis one (several nodes)."""
    if settings.redis_url is None:
        return nullcontext(MemoryRunQueue())
    from runwire.run_queue.redis import RedisRunQueue  # lazily: see the note above build_bus

    return RedisRunQueue(
        settings.redis_url.get_secret_value(), lease_s=settings.run_lease_s
    ).running()


def build_limits(
    settings: Settings, clock: Clock | None
) -> tuple[
    AbstractAsyncContextManager[RateLimiter], AbstractAsyncContextManager[ConnectionRegistry]
]:
    """The rate limiter and the connection registry: in this process, or with RUNWIRE_REDIS_URL
    in Redis, shared by every node. Redis counts on its own clock unless a test passes one."""
    cap = settings.max_connections_per_user
    if settings.redis_url is None:
        return (
            nullcontext(MemoryRateLimiter(clock or time.monotonic)),
            nullcontext(MemoryConnections(cap)),
        )
    from runwire.connections.redis import RedisConnections  # lazily: see the note above build_bus
    from runwire.limits.redis import RedisRateLimiter

    url = settings.redis_url.get_secret_value()
    return (
        RedisRateLimiter(url, clock=clock, fallback_clock=clock or time.monotonic).running(),
        RedisConnections(url, cap, clock=clock).running(),
    )


def build_revocations(settings: Settings) -> AbstractAsyncContextManager[Revocations]:
    """The ended sessions: in this process, or with RUNWIRE_REDIS_URL shared by every node."""
    if settings.redis_url is None:
        return nullcontext(MemoryRevocations())
    from runwire.revocations.redis import RedisRevocations  # lazily: see the note above build_bus

    return RedisRevocations(settings.redis_url.get_secret_value()).running()
