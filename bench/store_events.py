"""What storing a run's events costs the server, in this process.

The throughput benchmark's "keeping events" figure is ``direct`` minus ``nokeep`` of two whole
servers, and on the shared 2-core machine each moves by ±15%, more than storing costs (2-3 µs of
~16 per event). This times storing alone: ``RUNS`` runs of ``EVENTS`` events each, their
events appended interleaved as the server emits them (a streamed turn's chunks at once, then the
next run), through the server's ``EventWriter`` into ``RunLog.append_events`` on a fresh
database, each run flushed and finished as the executor does; the same with a sink that
keeps nothing, alternating. It prints the process's CPU (every thread: SQLite's checkpoints
run on one of their own) per event for both and the difference, best of ``--rounds``; on
PostgreSQL also its backends' CPU (read from /proc, so PostgreSQL must run on this machine) per
event, kept and not kept, and the difference (session 15, ``pgevents``).

``--max-batch``: fewer events a batch than the writer's ``MAX_BATCH``. On PostgreSQL the round
trip lets ~950 gather; a ``pg2`` node under the throughput benchmark takes what 10 ms of its
share brings (a few hundred).

Usage: python bench/store_events.py [--rounds 5] [--url sqlite|postgresql+asyncpg://...]
    [--max-batch N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import text

from runwire.domain.ids import new_epoch, new_id
from runwire.events.model import EventType, RunEvent
from runwire.runs import event_writer
from runwire.runs.event_writer import EventWriter
from runwire.store.store import Store

RUNS = 100
EVENTS = 323
# A run emits PER_TURN events, then lets the loop go round IDLE_TURNS times (its agent's other
# work): with 100 runs a batch the writer takes then holds ~130 events of ~7 runs, as it does in
# the server under the throughput benchmark (counted there).
PER_TURN = 19
IDLE_TURNS = 14
DELTA = "Your largest cost is the summarisation agent's use of the big model; "


def events_of(run_id: str, thread_id: str, epoch: str) -> list[RunEvent]:
    out = []
    for seq in range(1, EVENTS + 1):
        kind = EventType.TEXT_DELTA if 10 < seq < EVENTS - 5 else EventType.AGENT_STARTED
        data: dict[str, object] = {"delta": DELTA[: 20 + seq % 50]}
        out.append(
            RunEvent(
                kind,
                run_id,
                thread_id,
                seq,
                "supervisor",
                "2026-12-06T20:00:00.000Z",
                data,
                epoch=epoch,
            )
        )
    return out


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
    """The backends of the store's database (every connection of its pools), and PostgreSQL's
    WAL writer: a batch's commit is flushed by the backend, or by it."""
    if store.db.dialect != "postgresql":
        return []
    async with store.db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " OR backend_type = 'walwriter'"
            )
        )
        return [int(pid) for (pid,) in rows]


async def _discard(events: Sequence[RunEvent]) -> None:
    pass


async def one_round(store: Store, keep: bool) -> tuple[float, float, int]:
    """CPU seconds per event of one round of ``RUNS`` runs, the node's and the database's (0
    on SQLite), and how many batches it wrote."""
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "hash")
    runs = []
    for _ in range(RUNS):
        run_id, epoch = new_id("run"), new_epoch()
        thread, _ = await store.conversations.accept(
            user_id=user.id, thread=None, content="q", run_id=run_id, epoch=epoch
        )
        runs.append(events_of(run_id, thread.id, epoch))
    for events in runs:  # the server encodes each event once, to send it, before it is stored
        for event in events:
            _ = event.wire
    store_events = store.runs.append_events if keep else _discard
    batches = 0

    async def sink(events: Sequence[RunEvent]) -> None:
        nonlocal batches
        batches += 1
        await store_events(events)

    pids = await backend_pids(store)
    started, db_started = time.process_time(), backends_cpu(pids)
    async with EventWriter(sink).running() as writer:

        async def run(events: list[RunEvent], phase: int) -> None:
            for _ in range(phase):  # out of step with the others, as runs are
                await asyncio.sleep(0)
            for i in range(0, len(events), PER_TURN):
                writer.extend(events[i : i + PER_TURN])
                for _ in range(IDLE_TURNS):
                    await asyncio.sleep(0)
            await writer.flush()
            await store.runs.finish(events[0].run_id, "completed", last_seq=EVENTS, started_at=None)

        await asyncio.gather(*(run(e, n % (IDLE_TURNS + 1)) for n, e in enumerate(runs)))
    node = time.process_time() - started
    return node / (RUNS * EVENTS), (backends_cpu(pids) - db_started) / (RUNS * EVENTS), batches


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", default="sqlite")
    parser.add_argument("--max-batch", type=int, default=event_writer.MAX_BATCH)
    args = parser.parse_args()
    event_writer.MAX_BATCH = args.max_batch
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url
        if url == "sqlite":
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        async with Store.open(url, migrate=True) as store:
            kept: list[float] = []
            not_kept: list[float] = []
            db_kept: list[float] = []
            db_not_kept: list[float] = []
            for _ in range(args.rounds):
                cpu, db, batches = await one_round(store, True)
                kept.append(cpu)
                db_kept.append(db)
                cpu, db, _ = await one_round(store, False)
                not_kept.append(cpu)
                db_not_kept.append(db)
    k, n = min(kept) * 1e6, min(not_kept) * 1e6
    line = (
        f"kept {k:.2f} µs/event, not kept {n:.2f}, storing {k - n:.2f} (best of {args.rounds}); "
        f"{RUNS * EVENTS / batches:.0f} events a batch"
    )
    if max(db_kept):
        # The mean: /proc counts in 10 ms ticks, a third of a µs per event of one round.
        dk, dn = sum(db_kept) / len(db_kept) * 1e6, sum(db_not_kept) / len(db_not_kept) * 1e6
        line += f"; PostgreSQL (mean) kept {dk:.2f}, not kept {dn:.2f}, storing {dk - dn:.2f}"
    print(line)


if __name__ == "__main__":
    asyncio.run(main())
