"""Per-connection delivery: which run events a connection sends so each ``seq`` goes out once.

Live events and resume replays race: while a resume reads stored events, live ones of the same
run keep arriving. ``Delivery`` buffers the live ones for a run being resumed, merges them with
the replay in ``seq`` order, and keeps a cursor per run so nothing is sent twice and nothing is
skipped. It does no I/O; the WebSocket adapter feeds it and sends what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runwire.events.model import RunEvent

__all__ = ["Delivery"]


@dataclass(slots=True)
class _Replay:
    depth: int = 1
    buffer: list[RunEvent] = field(default_factory=list)


class Delivery:
    def __init__(self) -> None:
        self._cursor: dict[str, int] = {}
        self._replays: dict[str, _Replay] = {}

    @property
    def tracked_runs(self) -> int:
        """Runs with state held for this connection (drops to 0 when all are finished)."""
        return len(self._cursor) + len(self._replays)

    def live(self, event: RunEvent) -> list[RunEvent]:
        """A live event arrived; return what to send now (nothing while its run is resuming)."""
        replay = self._replays.get(event.run_id)
        if replay is not None:
            replay.buffer.append(event)
            return []
        return self._pass([event])

    def begin_resume(self, run_id: str, after_seq: int) -> None:
        """A client asked for ``seq > after_seq``: buffer live events until the replay is in."""
        replay = self._replays.get(run_id)
        if replay is None:
            self._replays[run_id] = _Replay()
        else:
            replay.depth += 1
        current = self._cursor.get(run_id)
        self._cursor[run_id] = after_seq if current is None else min(current, after_seq)

    def finish_resume(self, run_id: str, stored: list[RunEvent]) -> list[RunEvent]:
        """The replay was read; return it merged with buffered live events, each seq once."""
        replay = self._replays.get(run_id)
        if replay is None:
            return self._pass(stored)
        replay.depth -= 1
        if replay.depth > 0:
            return self._pass(stored)
        del self._replays[run_id]
        return self._pass(sorted([*stored, *replay.buffer], key=lambda e: e.seq))

    def abandon_resume(self, run_id: str) -> list[RunEvent]:
        """A resume failed (not found, refused): release what was buffered for the run."""
        return self.finish_resume(run_id, [])

    def _pass(self, events: list[RunEvent]) -> list[RunEvent]:
        out: list[RunEvent] = []
        for event in events:
            cursor = self._cursor.get(event.run_id)
            if cursor is not None and event.seq <= cursor:
                continue
            out.append(event)
            if event.is_terminal and event.run_id not in self._replays:
                self._cursor.pop(event.run_id, None)
            else:
                self._cursor[event.run_id] = event.seq
        return out
