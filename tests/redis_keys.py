"""A key prefix of its own in the shared test Redis, deleted afterwards, so runs of the suite (and
other users of the same Redis) do not see each other's keys."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from redis.asyncio import Redis

__all__ = ["fresh_prefix"]


@contextlib.asynccontextmanager
async def fresh_prefix(url: str) -> AsyncIterator[str]:
    """A new ``runwire-test:<hex>:`` prefix; its keys are deleted when the block ends."""
    prefix = f"runwire-test:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        client = Redis.from_url(url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()
