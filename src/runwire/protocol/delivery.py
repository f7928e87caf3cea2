"""Per-connection delivery: which run events a connection sends, so no ``seq`` goes out twice.

Live events and resume replays race: while a resume reads stored events, live ones of the same
run keep arriving. ``Delivery`` buffers the live ones of a run being resumed, merges them with
the replay in ``seq`` order, and remembers per run the contiguous range of seqs this connection
has sent, so nothing is sent twice and, after a resume, nothing after the asked position is
skipped. The range is of one numbering (the run's epoch): a run renumbered after its node was
lost reuses seqs for other events, which go out, after a ``reload_required`` notice the adapter
sends when :meth:`Delivery.renumbered` says so. It does no I/O; the WebSocket and SSE adapters
feed it and send what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from runwire.events.model import RunEvent

__all__ = ["Delivery"]


@dataclass(slots=True)
class _Replay:
    after: int
    epoch: str | None  # the numbering the client named, if it did
    depth: int = 1
    buffer: list[RunEvent] = field(default_factory=list)


class Delivery:
    def __init__(self) -> None:
        self._sent: dict[str, tuple[int, int]] = {}  # run id -> (first, last) seq sent, contiguous
        self._epochs: dict[str, str] = {}  # run id -> the epoch of the seqs in _sent
        self._shown: dict[str, str] = {}  # run id -> the epoch of the last event handed out
        self._replays: dict[str, _Replay] = {}

    @property
    def tracked_runs(self) -> int:
        """Runs with state held for this connection: one seq range per run it has sent.

        A finished run keeps its range, so resuming it later repeats nothing this connection
        sent; the state grows with the runs a connection sees, not with their events.
        """
        return len(self._sent.keys() | self._replays.keys())

    def renumbered(self, event: RunEvent) -> bool:
        """Call with each event just before it is sent, in sending order: whether it is of a
        numbering of its run other than the events sent of it before (the run was taken over
        after its node was lost, or recovered after a restart). If so, the client must first be
        told to reload the run: what it holds of it no longer counts.

        Judged on what goes out, live or replayed alike, so a connection that got a run only
        through a resume is told too."""
        shown = self._shown.get(event.run_id)
        self._shown[event.run_id] = event.epoch
        return shown is not None and shown != event.epoch

    def _range(self, run_id: str, epoch: str) -> tuple[int, int] | None:
        """The seqs sent of the run, if they are of ``epoch``: those of another numbering name
        other events, so they do not count as sent."""
        return self._sent.get(run_id) if self._epochs.get(run_id) == epoch else None

    def live(self, event: RunEvent) -> list[RunEvent]:
        """A live event arrived; return what to send now (nothing while its run is resuming)."""
        replay = self._replays.get(event.run_id)
        if replay is not None:
            replay.buffer.append(event)
            return []
        run_id, seq = event.run_id, event.seq
        sent = self._range(run_id, event.epoch)
        if sent is not None and sent[0] <= seq <= sent[1]:
            return []  # this connection has it already
        # Contiguous with what was sent: extend; otherwise (the first seen here) start a range.
        extends = sent is not None and seq == sent[1] + 1
        self._sent[run_id] = (sent[0] if sent is not None and extends else seq, seq)
        self._epochs[run_id] = event.epoch
        return [event]

    def live_batch(self, events: Sequence[RunEvent]) -> list[RunEvent]:
        """:meth:`live` for each of ``events``, at once: they are of one run and one numbering,
        in ``seq`` order (a batch as the run's journal publishes it). The usual case, a batch
        that follows what was sent of its run (or is the first of it seen here), costs one
        look-up for the whole batch."""
        first, last = events[0], events[-1]
        run_id = first.run_id
        if run_id not in self._replays and last.seq - first.seq == len(events) - 1:
            sent = self._range(run_id, first.epoch)
            if sent is None or sent[1] + 1 == first.seq:
                self._sent[run_id] = (first.seq if sent is None else sent[0], last.seq)
                self._epochs[run_id] = first.epoch
                return list(events)
        out: list[RunEvent] = []
        for event in events:
            out += self.live(event)
        return out

    def begin_resume(self, run_id: str, after_seq: int, epoch: str | None = None) -> None:
        """A client asked for ``seq > after_seq``: buffer live events until the replay is in.

        ``epoch``: the numbering of the seqs the client holds, when it names it. Until this
        connection sends an event of the run, that is the numbering it has been shown, so a
        renumbering is noticed even when the replay is empty (the client had all of it).
        """
        if epoch is not None and after_seq > 0:
            self._shown.setdefault(run_id, epoch)
        replay = self._replays.get(run_id)
        if replay is None:
            self._replays[run_id] = _Replay(after=after_seq, epoch=epoch)
        else:
            replay.depth += 1
            replay.after = min(replay.after, after_seq)
            replay.epoch = replay.epoch or epoch

    def finish_resume(self, run_id: str, stored: list[RunEvent]) -> list[RunEvent]:
        """The replay was read; return it merged with buffered live events, each seq once."""
        replay = self._replays.get(run_id)
        if replay is None:
            return [e for e in stored if self.live(e)]
        replay.depth -= 1
        if replay.depth > 0:
            return self._replay(run_id, stored, replay.after)
        del self._replays[run_id]
        # Live events that raced the read may be of another numbering (the run was taken over
        # meanwhile). Numberings only follow each other, and the buffer holds them in arrival
        # order: the replay's goes where its live events arrived (first if none did), and each
        # numbering goes out whole before the next, as a live follower would have had them.
        if not replay.buffer:
            return self._replay(run_id, stored, replay.after)
        epochs = list(dict.fromkeys(e.epoch for e in replay.buffer))
        # An empty read is of the numbering the client named, else of the first that arrived.
        read = stored[0].epoch if stored else replay.epoch or epochs[0]
        if read not in epochs:
            epochs.insert(0, read)
        out: list[RunEvent] = []
        for epoch in epochs:
            held = [e for e in replay.buffer if e.epoch == epoch]
            if epoch == read:
                out += self._replay(run_id, [*stored, *held], replay.after)
            else:  # live events only: sent as they would have been had nothing been resuming
                out += self._release(held)
        return out

    def abandon_resume(self, run_id: str) -> list[RunEvent]:
        """A resume failed (not found, refused): release what was buffered for the run."""
        replay = self._replays.get(run_id)
        if replay is None:
            return []
        replay.depth -= 1
        if replay.depth > 0:
            return []
        del self._replays[run_id]
        return self._release(replay.buffer)

    def _release(self, buffer: list[RunEvent]) -> list[RunEvent]:
        """Buffered live events, sent as live ones: by seq within each numbering, and the
        numberings in the order they arrived (seqs of a later one may be lower)."""
        rank = {epoch: i for i, epoch in enumerate(dict.fromkeys(e.epoch for e in buffer))}
        ordered = sorted(buffer, key=lambda e: (rank[e.epoch], e.seq))
        return [e for e in ordered if self.live(e)]

    def _replay(self, run_id: str, events: list[RunEvent], after: int) -> list[RunEvent]:
        """Send ``seq > after`` in order, each once, skipping what this connection already has.

        A replay's events are contiguous from the position its own resume asked for. That can
        be above ``after``, the lowest position of nested resumes, so the range covered
        afterwards starts at the first event held, not at ``after + 1``; it is joined to what
        was sent before when the two touch, which they do unless a resume asked past the end.
        """
        if not events:
            return []
        epoch = events[0].epoch  # one read, one numbering; the caller splits merged ones
        before = self._range(run_id, epoch)
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
                self._epochs[run_id] = epoch
            # else: keep the range above, which live events extend
        return out
