"""A run's own writes to the store, timed alone: the node's CPU and the database's per run.

Besides its events (bench/store_events.py), every run writes a few rows: its claim, the quality
gate's verdict, and its end with its reply (which also picks the thread's next run). Accepting
the message that starts it (``--at-once`` at a time too, each to a new thread, as a burst of
first questions) is timed apart, on the node. On
PostgreSQL each statement is a round trip that costs the node far more CPU than the statement
costs PostgreSQL. This runs ``--runs`` accepted runs through those writes, ``--at-once`` of
them at a time (so that some share a batch, as under load), and prints the process's CPU and,
on PostgreSQL, its backends' CPU (read from /proc, so PostgreSQL must run on this machine), per
run, best of ``--rounds``: two ways, alternating round by round, the verdict written apart
(``set_quality``, as until session 14) and with the end (``finish(quality=...)``, as the
executor does since).

Usage: python bench/store_run_writes.py [--url sqlite|postgresql+asyncpg://...] [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.store.records import Message
from runwire.store.store import Store


def backends_cpu(pids: list[int]) -> float:
    """CPU seconds the PostgreSQL backends ``pids`` have used (user and system)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


async def backend_pids(store: Store) -> list[int]:
    async with store.db.connect() as conn:
        rows = await conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        )
        return [int(pid) for (pid,) in rows]


async def one_round(
    store: Store, runs: int, at_once: int, *, apart: bool = False
) -> tuple[float, float, float]:
    """(node, database) CPU µs per run, and the node's per accept; ``apart``: the verdict in a
    write of its own."""
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "hash")
    accepted = []

    async def accept() -> None:
        run_id = new_id("run")
        thread, _ = await store.conversations.accept(
            user_id=user.id, thread=None, content="q", run_id=run_id, epoch=new_epoch()
        )
        accepted.append((run_id, thread.id))

    accepting = time.process_time()
    for i in range(0, runs, at_once):
        await asyncio.gather(*(accept() for _ in range(min(at_once, runs - i))))
    accepting = time.process_time() - accepting
    verdict = {"score": 0.9, "outcome": "passed", "reasons": []}

    async def run(run_id: str, thread_id: str) -> None:
        await store.runs.claim(run_id, now=now_ms())
        if apart:
            await store.runs.set_quality(run_id, verdict)
        reply = Message(
            id=new_id("msg"),
            thread_id=thread_id,
            user_id=user.id,
            role="assistant",
            content="the answer " * 40,
            created_at=now_ms(),
            run_id=run_id,
        )
        await store.runs.finish(
            run_id,
            "completed",
            last_seq=323,
            started_at=None,
            reply=reply,
            thread_id=thread_id,
            quality=None if apart else verdict,
        )

    postgres = store.db.dialect == "postgresql"
    pids = await backend_pids(store) if postgres else []
    node, database = time.process_time(), backends_cpu(pids)
    for i in range(0, runs, at_once):
        await asyncio.gather(*(run(r, t) for r, t in accepted[i : i + at_once]))
    node = time.process_time() - node
    if postgres:
        # Connections the pool opened during the round count too (their whole life).
        database = backends_cpu(await backend_pids(store)) - database
    return node / runs * 1e6, (database / runs * 1e6 if postgres else 0.0), accepting / runs * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="sqlite")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--at-once", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        async with Store.open(url, migrate=True) as store:
            await one_round(store, 20, args.at_once)  # the pool's connections, warm
            figures: dict[bool, list[tuple[float, float, float]]] = {True: [], False: []}
            for _ in range(args.rounds):
                for apart in (True, False):
                    figures[apart].append(
                        await one_round(store, args.runs, args.at_once, apart=apart)
                    )
    for apart, label in ((True, "verdict apart   "), (False, "verdict with end")):
        node = min(f[0] for f in figures[apart])
        database = min(f[1] for f in figures[apart])
        print(
            f"a run's claim, {label}: node {node:.0f} µs, database {database:.0f} µs "
            f"(best of {args.rounds}; {args.at_once} runs at once)"
        )
    accepts = [f[2] for apart in (True, False) for f in figures[apart]]
    print(f"accepting its message: node {min(accepts):.0f} µs")


if __name__ == "__main__":
    asyncio.run(main())
