"""What counting a delivered event costs: ``Session._send_event`` with the count and without.

The throughput benchmark (``--variants direct,nometrics``) compares whole servers, but on a
shared 2-core machine its runs move by ±15%, far more than one integer addition per event. This
times the one method the count lives in, on a session whose outlet takes frames and does
nothing, alternating counted and uncounted rounds and keeping each one's best, so the difference
is the count's own cost; divide it by the server's CPU per event (bench/throughput.py) for the
share.

Usage: python bench/event_count.py [--events 1000000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

from runwire.events.model import EventType, RunEvent
from runwire.protocol.connection import ConnectionState, ConnectionStateMachine
from runwire.protocol.delivery import Delivery
from runwire.telemetry.metrics import Metrics
from runwire.transport.session import Session


class _Outlet:
    def write(self, frame: str | bytes, *, keep: bool = False) -> bool:
        return True

    def write_many(self, frames: Sequence[bytes]) -> bool:
        return True

    def close(self, code: int, reason: str, *, drop: bool) -> None:
        pass


def _session(metrics: Metrics | None) -> Session:
    # Only what _send_event and _write touch: a whole Session needs a running app.
    session = Session.__new__(Session)
    session._counted = metrics
    session._ended = False
    session._delivery = Delivery()
    session._machine = ConnectionStateMachine()
    session._machine.move(ConnectionState.OPEN)
    session._outlet = _Outlet()
    return session


def _time(session: Session, event: RunEvent, events: int) -> float:
    send = session._send_event
    started = time.perf_counter()
    for _ in range(events):
        send(event)
    return (time.perf_counter() - started) / events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    event = RunEvent(
        type=EventType.TEXT_DELTA,
        run_id="run_x",
        thread_id="thr_x",
        seq=1,
        agent_name="supervisor",
        timestamp="2026-01-01T00:00:00.000Z",
        data={"delta": "some words "},
        epoch="e1",
    )
    event.wire  # noqa: B018 - encoded once, as delivery finds it
    metrics = Metrics()
    counted, uncounted = _session(metrics), _session(None)
    best_on, best_off = float("inf"), float("inf")
    for _ in range(args.rounds):
        best_off = min(best_off, _time(uncounted, event, args.events))
        best_on = min(best_on, _time(counted, event, args.events))
    assert metrics.events_delivered == args.rounds * args.events
    print(f"_send_event, counted:   {best_on * 1e9:7.1f} ns")
    print(f"_send_event, uncounted: {best_off * 1e9:7.1f} ns")
    print(f"the count costs:        {(best_on - best_off) * 1e9:7.1f} ns per delivered event")


if __name__ == "__main__":
    main()
