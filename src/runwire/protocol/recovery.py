"""Recovery: whether a client's position in a run's stream can be served whole, or is refused.

Modelled on Centrifugo's history recovery. A position is an ``epoch`` and a ``seq``: the client
holds every event of the run up to ``seq`` in the numbering the epoch names. Continuing from it
is answered with every later event, or refused with :class:`ReloadRequired` naming why; never
with part of them. The checks are pure: the caller reads the events, this module judges them.
"""

from __future__ import annotations

from dataclasses import dataclass

from runwire.errors import ReloadReason, ReloadRequired
from runwire.events.model import RunEvent

__all__ = ["RunStream"]


@dataclass(frozen=True, slots=True)
class RunStream:
    """What the server knows of one run's stream when a client asks to continue it."""

    run_id: str
    epoch: str
    last_seq: int | None  # the run's last seq once it has ended; None while it may still grow
    trimmed: bool = False  # retention deleted its events

    def check(self, after_seq: int, epoch: str | None) -> bool:
        """Refuse, before anything is read, a position that cannot be served whole.

        Returns whether events must be read: False when the run's events are gone but the client
        already holds all of them (nothing is missing, so the answer is whole and empty).
        """
        if epoch is not None and epoch != self.epoch:
            raise self.refusal(ReloadReason.EPOCH_CHANGED)
        if self.last_seq is not None and after_seq > self.last_seq:
            raise self.refusal(ReloadReason.POSITION_UNKNOWN)
        if self.trimmed:
            if after_seq != self.last_seq:
                raise self.refusal(ReloadReason.HISTORY_EXPIRED)
            return False
        return True

    @staticmethod
    def read_after(after_seq: int) -> int:
        """Read the events after this seq: from the client's last one on, so the read also shows
        that the position exists."""
        return max(after_seq - 1, 0)

    def whole(self, after_seq: int, read: list[RunEvent], *, from_store: bool) -> list[RunEvent]:
        """The events after ``after_seq``, from ``read`` (the events after
        :meth:`read_after`), if they are the whole rest of the stream so far; else a refusal.

        ``from_store``: ``read`` came from the database, which holds every event of an ended run,
        so it must reach ``last_seq``. Held live history may lag the stored end by the last event,
        which is published just after the run's end is recorded; live delivery brings that one.
        """
        events = read
        if after_seq > 0:
            if read and read[0].seq == after_seq:
                events = read[1:]
            elif not read and self.last_seq is None:
                raise self.refusal(ReloadReason.POSITION_UNKNOWN)
            else:  # the run reached the position (it ended past it) yet the event is missing
                raise self.refusal(ReloadReason.HISTORY_INCOMPLETE)
        expected = after_seq + 1
        for event in events:
            if event.seq != expected:
                raise self.refusal(ReloadReason.HISTORY_INCOMPLETE)
            expected += 1
        if from_store and self.last_seq is not None and expected - 1 != self.last_seq:
            raise self.refusal(ReloadReason.HISTORY_INCOMPLETE)
        return events

    def refusal(self, reason: ReloadReason) -> ReloadRequired:
        return ReloadRequired(self.run_id, reason, self.epoch)
