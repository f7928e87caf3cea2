"""A run's own calls to Redis and PostgreSQL in several-node mode, timed alone: the process CPU
of each way, the old beside the new, interleaved, best of five (docs/benchmarks.md, "Several
nodes (issue 15, branch redisq)").

- lease: a run's lease taken and let go of (``SET NX PX``, then the release script), through
  redis-py as the run queue did, and through :class:`RedisRunQueue` (packed by hand, its own
  connection);
- read: one indexed lookup (``Database.read``) on PostgreSQL, as it was (a pool that pings
  every checkout, ``BEGIN READ ONLY`` ... ``ROLLBACK``) and as it is (read-only autocommit
  sessions, pinged only after they sat idle).

Needs Redis (``RUNWIRE_BENCH_REDIS_URL``, default the local one) and PostgreSQL
(``RUNWIRE_BENCH_POSTGRES_URL``, default the local `test` database: only ``SELECT 1`` runs).

Usage: python bench/node_calls.py [--calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from runwire.run_queue.redis import RedisRunQueue
from runwire.run_queue.redis_leases import RELEASE
from runwire.store.database import Database


async def cpu_us(calls: int, step: Callable[[int], Awaitable[object]]) -> float:
    """Process CPU per call, µs."""
    started = time.process_time()
    for i in range(calls):
        await step(i)
    return (time.process_time() - started) / calls * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    redis_url = os.environ.get("RUNWIRE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    pg_url = os.environ.get(
        "RUNWIRE_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    )
    async with RedisRunQueue(redis_url, prefix="runwire-bench:").running() as queue:
        client = queue._redis  # the client library's way, as the run queue used it
        assert client is not None
        node = queue.node_id

        async def through_redis_py(i: int) -> None:
            key = f"runwire-bench:lease:old-{i}"
            await client.set(key, node, px=10_000, nx=True)
            await client.eval(RELEASE, 1, key, node)  # type: ignore[misc]

        async def packed(i: int) -> None:
            await queue.acquire(f"new-{i}")
            await queue.release(f"new-{i}")

        async with Database.open(pg_url) as db:
            old_engine = create_async_engine(pg_url, pool_pre_ping=True)

            def lookup(conn: Connection) -> object:
                return conn.execute(text("SELECT 1")).scalar()

            async def read_then(_: int) -> object:
                async with old_engine.connect() as conn:
                    conn = await conn.execution_options(postgresql_readonly=True)
                    return await conn.run_sync(lookup)

            async def read_now(_: int) -> object:
                return await db.read(lookup)

            results: dict[str, list[float]] = {}
            for _ in range(5):
                for name, step in (
                    ("lease, redis-py", through_redis_py),
                    ("lease, packed", packed),
                    ("read, then", read_then),
                    ("read, now", read_now),
                ):
                    results.setdefault(name, []).append(await cpu_us(args.calls, step))
            await old_engine.dispose()
    for name, figures in results.items():
        print(f"{name:16} best {min(figures):6.1f} µs CPU a call (median {sorted(figures)[2]:.1f})")


if __name__ == "__main__":
    asyncio.run(main())
