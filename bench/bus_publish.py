"""What one ``publish`` costs a node: the Redis bus beside the in-process bus, in this process.

The throughput benchmark (``--variants direct,redis``) compares whole servers, but on a shared
2-core machine its runs move by ±15%, more than the bus's own per-event work. This times
``publish`` alone: 50 runs' events interleaved (as 50 concurrent runs publish them), one local
subscriber that keeps them, each event's wire frame encoded beforehand (every recipient needs
it, whichever bus). The Redis bus's writer does not run during a round (the coroutine is driven
by hand, and the queue bounds are lifted), so this is the cost a run pays as it publishes;
sending the blocks is the writer's, per block, and shows in a profile of the server
(``RUNWIRE_BENCH_PROFILE`` with bench/throughput.py). Needs Redis at ``--redis``.

With ``--batch N`` the runs publish batches of N events (``publish_batch``, as a streamed
answer's chunks are), to a subscriber that takes batches (``on_batch``, as a socket does).

Usage: python bench/bus_publish.py [--rounds 5] [--batch N] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from runwire.bus.base import EventBus
from runwire.bus.memory import MemoryBus
from runwire.bus.redis import RedisBus
from runwire.events.model import EventType, RunEvent

RUNS = 50
EVENTS = 300  # per run


def _drive(step: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that does not wait to its end, without the event loop."""
    try:
        step.send(None)
    except StopIteration:
        return
    raise RuntimeError("publish waited: lift the bus's queue bounds")


async def _best_ns(bus: EventBus, rounds: int, reset: Any, batch: int) -> float:
    kept: list[RunEvent] = []
    await bus.subscribe("usr_bench", kept.append, on_batch=kept.extend)
    events = [
        RunEvent(
            type=EventType.TEXT_DELTA,
            run_id=f"run_{i % RUNS}",
            thread_id="thr_bench",
            seq=i // RUNS + 1,
            agent_name="reporter",
            timestamp="2026-12-06T14:00:00.000Z",
            data={"delta": "x" * 200},
            epoch="e1",
        )
        for i in range(RUNS * EVENTS)
    ]
    for e in events:
        _ = e.wire
    # Each run's next `batch` events, runs taking turns (events are already in that order for 1).
    per_run = [events[run::RUNS] for run in range(RUNS)]
    batches = [ran[start : start + batch] for start in range(0, EVENTS, batch) for ran in per_run]
    best = float("inf")
    for _ in range(rounds):
        for run in range(RUNS):
            await bus.release(f"run_{run}")
        reset()
        kept.clear()
        started = time.perf_counter()
        if batch == 1:
            for e in events:
                _drive(bus.publish("usr_bench", e))
        else:
            for chunk in batches:
                _drive(bus.publish_batch("usr_bench", chunk))
        best = min(best, time.perf_counter() - started)
    return best * 1e9 / len(events)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="events a publish_batch (1: publish)")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    memory = await _best_ns(MemoryBus(), args.rounds, lambda: None, args.batch)
    bus = RedisBus(args.redis, prefix="bench:", max_unsent=10**9, max_backlog=10**9)
    async with bus.running():

        def reset() -> None:
            # What the writer would have sent: dropped unsent (nothing reads it), and counted
            # done so the bus stops without waiting for it.
            writer = bus._writer
            writer._outbox.clear()
            writer._open.clear()
            writer.writes.done = writer.writes.queued

        redis = await _best_ns(bus, args.rounds, reset, args.batch)
        reset()
    how = "publish" if args.batch == 1 else f"publish_batch of {args.batch}"
    print(f"{how}, best of {args.rounds} rounds of {RUNS * EVENTS} events:")
    print(f"  in-process bus {memory:6.0f} ns/event")
    print(f"  Redis bus      {redis:6.0f} ns/event  (+{redis - memory:.0f} ns)")


if __name__ == "__main__":
    asyncio.run(main())
