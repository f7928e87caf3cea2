"""Per-connection delivery: which run events a connection sends, so no ``seq`` goes out twice.

Live events and resume replays race: while a resume reads stored events, live ones of the same
run keep arriving. ``Delivery`` buffers the live ones of a run being resumed, merges them with
the replay in ``seq`` order, and remembers per run the contiguous range of seqs this connection
has sent, so nothing is sent twice and, after a resume, nothing after the asked position is
skipped. It does no I/O; the WebSocket adapter feeds it and sends what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runwire.events.model import RunEvent

__all__ = ["Delivery"]


@dataclass(slots=True)
class _Replay:
    after: int
    depth: int = 1
    buffer: list[RunEvent] = field(default_factory=list)


class Delivery:
    def __init__(self) -> None:
        self._sent: dict[str, tuple[int, int]] = {}  # run id -> (first, last) seq sent, contiguous
        self._epochs: dict[str, str] = {}  # run id -> the epoch of the seqs in _sent
        self._replays: dict[str, _Replay] = {}

    @property
    def tracked_runs(self) -> int:
        """Runs with state held for this connection: one seq range per run it has sent.

        A finished run keeps its range, so resuming it later repeats nothing this connection
        sent; the state grows with the runs a connection sees, not with their events.
        """
        return len(self._sent.keys() | self._replays.keys())

    def renumbered(self, event: RunEvent) -> bool:
        """Whether ``event`` belongs to a numbering of its run other than the one this
        connection has sent (the run was taken over after its node was lost, or recovered after
        a restart). If so, what was sent of the run no longer counts: the client must be told
        to reload it, and the new numbering's events are sent from here on."""
        seen = self._epochs.get(event.run_id)
        self._epochs[event.run_id] = event.epoch
        if seen is None or seen == event.epoch:
            return False
        self._sent.pop(event.run_id, None)
        return True

    def live(self, event: RunEvent) -> list[RunEvent]:
        """A live event arrived; return what to send now (nothing while its run is resuming)."""
        replay = self._replays.get(event.run_id)
        if replay is not None:
            replay.buffer.append(event)
            return []
        run_id, seq = event.run_id, event.seq
        sent = self._sent.get(run_id)
        if sent is not None and sent[0] <= seq <= sent[1]:
            return []  # this connection has it already
        # Contiguous with what was sent: extend; otherwise (the first seen here) start a range.
        extends = sent is not None and seq == sent[1] + 1
        self._sent[run_id] = (sent[0] if sent is not None and extends else seq, seq)
        return [event]

    def begin_resume(self, run_id: str, after_seq: int) -> None:
        """A client asked for ``seq > after_seq``: buffer live events until the replay is in."""
        replay = self._replays.get(run_id)
        if replay is None:
            self._replays[run_id] = _Replay(after=after_seq)
        else:
            replay.depth += 1
            replay.after = min(replay.after, after_seq)

    def finish_resume(self, run_id: str, stored: list[RunEvent]) -> list[RunEvent]:
        """The replay was read; return it merged with buffered live events, each seq once."""
        replay = self._replays.get(run_id)
        if replay is None:
            return [e for e in stored if self.live(e)]
        replay.depth -= 1
        if replay.depth > 0:
            return self._replay(run_id, stored, replay.after)
        del self._replays[run_id]
        return self._replay(run_id, [*stored, *replay.buffer], replay.after)

    def abandon_resume(self, run_id: str) -> list[RunEvent]:
        """A resume failed (not found, refused): release what was buffered for the run."""
        replay = self._replays.get(run_id)
        if replay is None:
            return []
        replay.depth -= 1
        if replay.depth > 0:
            return []
        del self._replays[run_id]
        return [e for e in sorted(replay.buffer, key=lambda e: e.seq) if self.live(e)]

    def _replay(self, run_id: str, events: list[RunEvent], after: int) -> list[RunEvent]:
        """Send ``seq > after`` in order, each once, skipping what this connection already has.

        A replay's events are contiguous from the position its own resume asked for. That can
        be above ``after``, the lowest position of nested resumes, so the range covered
        afterwards starts at the first event held, not at ``after + 1``; it is joined to what
        was sent before when the two touch, which they do unless a resume asked past the end.
        """
        before = self._sent.get(run_id)
        out: list[RunEvent] = []
        first = last = after
        for event in sorted(events, key=lambda e: e.seq):
            if event.seq <= last:
                continue
            if last == after:
                first = event.seq
            last = event.seq
            if before is not None and before[0] <= event.seq <= before[1]:
                continue
            out.append(event)
        if last > after:
            if before is not None and first <= before[1] + 1 and before[0] <= last + 1:
                self._sent[run_id] = (min(first, before[0]), max(last, before[1]))
            elif before is None or first > before[1]:
                self._sent[run_id] = (first, last)
            # else: keep the range above, which live events extend
        return out
