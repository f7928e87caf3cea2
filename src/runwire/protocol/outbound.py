"""When a client counts as not reading: the judgement behind the WebSocket's close 4008.

A connection's frames wait in its outbound buffer until the client takes them. Waiting bytes alone
do not show a stalled client: one answer (a ``resume`` replaying a long run, a long thread's
history, a batch of live events from the bus) is written in one turn of the event loop and may be
far larger than the limit, and a client that reads takes it whole. So the frames of one turn are
never refused for their size; what is judged is what earlier turns left unread when the next frame
comes, and the client may be behind by the largest such burst plus ``limit`` before it counts as
not reading. A client that catches up (``limit`` or less waiting) starts afresh.

A connection's memory is so bounded by ``limit`` plus its largest burst, which its own requests and
its runs' sizes bound (a replay reads at most 100,000 events). It does no I/O; the socket adapters
ask it before they queue a frame and tell it what each turn queued.
"""

from __future__ import annotations

__all__ = ["OutboundLimit"]


class OutboundLimit:
    """How far behind one connection's client may fall (docs/protocol.md, close 4008)."""

    def __init__(self, limit: int) -> None:
        if limit <= 0:
            raise ValueError(f"the outbound limit must be above 0, got {limit}")
        self.limit = limit
        self._allowed = limit

    def admits(self, waiting: int) -> bool:
        """Whether a frame may be queued while ``waiting`` bytes of earlier turns are unread."""
        if waiting <= self.limit:
            self._allowed = self.limit  # caught up: bursts it has read no longer count
            return True
        return waiting <= self._allowed

    def queued(self, burst: int) -> None:
        """One turn queued ``burst`` bytes: the client may be that much further behind while it
        reads them."""
        self._allowed = max(self._allowed, self.limit + burst)
