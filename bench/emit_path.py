"""What one streamed event costs the server from the agent to the socket, in this process.

The throughput benchmark compares whole servers, and on the shared 2-core machine its runs move
by ±15% or more, more than most changes to the per-event path. This times that path alone:
50 runs streaming ``text_delta`` events interleaved as the offline agents stream them (as many a turn
of the event loop as agents/llm.py streams, then the next run), each through ``AgentContext.text_delta``, the run's
``RunJournal`` (numbering, timestamp, the store's queue, the in-process bus), each run's user's
``Session`` (delivery) and its direct WebSocket adapter, whose frames go to a transport that
keeps nothing.
Storing is left out (the writer's sink does nothing): it is per batch, and shows in a profile of
the server (``RUNWIRE_BENCH_PROFILE`` with bench/throughput.py).

Both ways a streamed answer's chunks can go are timed, alternating: one ``text_delta`` at a time,
and a turn's chunks at once through ``AgentContext.text_deltas`` (the journal's ``emit_batch``, as
the offline writer streams since "Batched chunks", docs/benchmarks.md).

Usage: python bench/emit_path.py [--rounds 7] [--events 300]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from runwire.agents.context import AgentContext
from runwire.agents.llm import _YIELD_EVERY, OfflineProvider
from runwire.bus.memory import MemoryBus
from runwire.events.model import RunEvent
from runwire.events.redaction import Redactor
from runwire.protocol.connection import ConnectionState, ConnectionStateMachine
from runwire.protocol.delivery import Delivery
from runwire.runs.event_writer import EventWriter
from runwire.runs.journal import RunJournal
from runwire.transport.session import Session
from runwire.transport.ws_phase import SocketPhase
from runwire.transport.ws_protocol import RunwireWebSocketProtocol
from runwire.usage.pricing import PricingTable

RUNS = 50
PER_TURN = _YIELD_EVERY  # text chunks an unpaced offline run emits per turn of the loop


class _Transport:
    """A socket that takes everything at once."""

    def __init__(self) -> None:
        self.sent = 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False


def _session(loop: asyncio.AbstractEventLoop) -> tuple[Session, _Transport]:
    state = SimpleNamespace(connections=set(), tasks=set())
    protocol = RunwireWebSocketProtocol(SimpleNamespace(ws_max_size=2**20), state, {}, loop)
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol._phase.move(SocketPhase.OPEN)  # as its handshake would, without one
    # Only what delivery touches: a whole Session needs a running app.
    session = Session.__new__(Session)
    session._counted = None
    session._ended = False
    session._machine = ConnectionStateMachine()
    session._machine.move(ConnectionState.OPEN)
    session._delivery = Delivery()
    session._outlet = protocol
    return session, transport


async def _no_usage() -> Sequence[Any]:
    return ()


async def _round(events: int, batched: bool) -> float:
    loop = asyncio.get_running_loop()
    bus = MemoryBus()
    transports = []
    for i in range(RUNS):  # one user a run, with one connection each
        session, transport = _session(loop)
        await bus.subscribe(f"usr_{i}", session._on_event, on_batch=session._on_events)
        transports.append(transport)

    async def store(batch: Sequence[RunEvent]) -> None:
        pass

    writer = EventWriter(store)
    contexts = []
    for i in range(RUNS):
        journal = RunJournal(
            run_id=f"run_{i:016x}",
            thread_id=f"thr_{i:016x}",
            user_id=f"usr_{i}",
            epoch="e_0123456789",
            bus=bus,
            writer=writer,
            fence=lambda: True,
        )
        contexts.append(
            AgentContext(
                run_id=journal.run_id,
                question="",
                history=[],
                load_usage=_no_usage,
                emit=journal.emit,
                emit_batch=journal.emit_batch,
                llm=OfflineProvider(),
                tool_timeout_s=1.0,
                llm_timeout_s=1.0,
                redactor=Redactor(),
                pricing=PricingTable.load(),
            )
        )
    chunks = OfflineProvider().chunks(
        "The cheapest model that passes your checks saves most. " * 20
    )
    started = time.process_time()  # CPU time: the machine is shared, waiting for it is not counted
    for first in range(0, events, PER_TURN):
        for ctx in contexts:
            turn = [chunks[n % len(chunks)] for n in range(first, min(first + PER_TURN, events))]
            if batched:
                await ctx.text_deltas("reporting", turn)
            else:
                for chunk in turn:
                    await ctx.text_delta("reporting", chunk)
        await asyncio.sleep(0)  # the sockets' flushes run
    await asyncio.sleep(0)
    took = time.process_time() - started
    await writer.flush()
    assert all(t.sent > events * 100 for t in transports)
    return took / (RUNS * events)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--events", type=int, default=300, help="per run")
    args = parser.parse_args()
    # Alternating, so both see the same load on a shared machine.
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for batched in (False, True):
            times[batched].append(await _round(args.events, batched))
    print(f"text_delta, agent to socket, best of {args.rounds} rounds of {RUNS} x {args.events}:")
    print(f"  one by one (text_delta):          {min(times[False]) * 1e9:6.0f} ns/event")
    print(f"  a turn's chunks at once (text_deltas): {min(times[True]) * 1e9:6.0f} ns/event")


if __name__ == "__main__":
    asyncio.run(main())
