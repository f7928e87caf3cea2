"""How runwire connects to Redis: one place for the connection pool's settings, used by the bus,
the run queue, the rate limiter and the connection registry."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["connection_pool"]


def connection_pool(
    url: str,
    *,
    timeout_s: float,
    max_connections: int = 16,
    socket_timeout_s: float | None = None,
    wait_s: float | None = None,
) -> BlockingConnectionPool:
    """A pool of at most ``max_connections``; connecting and (unless ``socket_timeout_s``)
    each reply time out after ``timeout_s``, and so does waiting for a free connection (unless
    ``wait_s``). One quick retry: a pooled connection may be stale after Redis restarted;
    callers that must keep an order of writes retry on their own. RESP2, which hiredis parses."""
    return BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s if wait_s is None else wait_s,
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s if socket_timeout_s is None else socket_timeout_s,
        retry=Retry(NoBackoff(), 1),
        protocol=2,
    )
