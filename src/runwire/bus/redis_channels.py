"""Which users' channels a Redis-mode node's pub/sub connection subscribes to, pure (no I/O, no
tasks): one state per channel, moved by what the node's sockets want, the commands the node
sends and the replies Redis gives.

Each move, by state (``-``: the move does not happen there; ``error``: it raises)::

    state          want()                 unwant()                   commands()              last reply
    (none)         WANTED                 error                      -                       error
    WANTED         error                  (none), or UNSUBSCRIBING   SUBSCRIBING             stays
                                          if a reply is still due
    SUBSCRIBING    error                  LEAVING                    -                       SUBSCRIBED
    SUBSCRIBED     error                  LEAVING                    -                       error
    LEAVING        SUBSCRIBED, or         error                      UNSUBSCRIBING, once     stays
                   SUBSCRIBING if a                                  the writes queued
                   reply is still due                                before it left are
                                                                     answered
    UNSUBSCRIBING  WANTED                 error                      -                       (none)

A channel is *held* (the append script may skip publishing its blocks, docs/decisions.md,
"Redis mode, session 12") only while SUBSCRIBED: Redis has answered every command for it and the
last was a SUBSCRIBE, and a local socket still wants it. When its last socket leaves it stops
being held at once, and its UNSUBSCRIBE waits until every write queued before that moment has
been answered (:meth:`ChannelTable.commands`), so each write that said "held" has run in Redis
before the node leaves the channel. A move the table does not allow (a reply Redis owes nothing
for, a second want) raises an :class:`~runwire.errors.InvalidTransition` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Set
from enum import StrEnum

from runwire.domain.state_machine import Transitions
from runwire.errors import InvalidTransition

__all__ = [
    "AlreadyWanted",
    "ChannelState",
    "ChannelTable",
    "NotWanted",
    "UnexpectedReply",
]


class ChannelState(StrEnum):
    WANTED = "wanted"  # a socket wants it; its SUBSCRIBE is still to be sent
    SUBSCRIBING = "subscribing"  # SUBSCRIBE sent; Redis still owes replies
    SUBSCRIBED = "subscribed"  # held: delivery is in effect
    LEAVING = "leaving"  # no socket wants it; UNSUBSCRIBE waits for the writes before it
    UNSUBSCRIBING = "unsubscribing"  # UNSUBSCRIBE sent; Redis still owes replies


class AlreadyWanted(InvalidTransition):
    """A channel some local socket wants was wanted again (the node wants a channel from its
    first socket of the user to its last, once)."""


class NotWanted(InvalidTransition):
    """A channel no local socket wants was let go of."""


class UnexpectedReply(InvalidTransition):
    """Redis confirmed a (un)subscription the node owes no reply for: the table no longer says
    what Redis holds (the caller drops the connection and starts afresh)."""


class _Channel:
    __slots__ = ("left_at", "replies_due", "state")

    def __init__(self, state: ChannelState) -> None:
        self.state = state
        self.replies_due = 0  # (un)subscribe replies Redis still owes, in order
        self.left_at = 0  # LEAVING: the writes queued when it stopped being held


_WANTING = (ChannelState.WANTED, ChannelState.SUBSCRIBING, ChannelState.SUBSCRIBED)

# The arrows of the table in the module docstring; appearing and being forgotten are not moves.
_ARROWS = Transitions(
    "a Redis channel",
    {
        ChannelState.WANTED: (ChannelState.SUBSCRIBING, ChannelState.UNSUBSCRIBING),
        ChannelState.SUBSCRIBING: (ChannelState.SUBSCRIBED, ChannelState.LEAVING),
        ChannelState.SUBSCRIBED: (ChannelState.LEAVING,),
        ChannelState.LEAVING: (
            ChannelState.SUBSCRIBED,
            ChannelState.SUBSCRIBING,
            ChannelState.UNSUBSCRIBING,
        ),
        ChannelState.UNSUBSCRIBING: (ChannelState.WANTED,),
    },
)


class ChannelTable:
    """The channels of one node's pub/sub connection, by user id; :meth:`link_lost` when the
    connection goes (a new one starts with every wanted channel to subscribe)."""

    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self._due: dict[str, None] = {}  # WANTED or LEAVING: a command may be needed
        self._held: set[str] = set()  # SUBSCRIBED
        self._leaving: set[str] = set()  # LEAVING
        self.presence: bytes | None = None
        """The presence channel of the current connection once Redis confirmed it (the append
        script trusts the node's "held" only while it has a subscriber), else None."""

    # -- what the rest of the node reads --

    def state(self, user_id: str) -> ChannelState | None:
        """The channel's state; None when the connection neither has it nor is owed a reply."""
        channel = self._channels.get(user_id)
        return None if channel is None else channel.state

    def in_effect(self, user_id: str) -> bool:
        """Delivery is in effect: every message on the channel from now on reaches the node."""
        return user_id in self._held

    @property
    def held(self) -> Set[str]:
        """The SUBSCRIBED channels (read-only view): the writer says "held" for their blocks."""
        return self._held

    @property
    def leaving(self) -> bool:
        """Some channel waits for writes to be answered before its UNSUBSCRIBE."""
        return bool(self._leaving)

    @property
    def due(self) -> bool:
        """:meth:`commands` may have something to send."""
        return bool(self._due)

    # -- the moves --

    def want(self, user_id: str) -> None:
        """The node's first socket of the user subscribed."""
        channel = self._channels.get(user_id)
        if channel is None:
            self._channels[user_id] = _Channel(ChannelState.WANTED)
            self._due[user_id] = None
            return
        state = channel.state
        if state in _WANTING:
            raise AlreadyWanted(f"channel of {user_id!r} is wanted already ({state})")
        if state is ChannelState.UNSUBSCRIBING:
            self._move(user_id, channel, ChannelState.WANTED)  # its UNSUBSCRIBE's reply still due
        elif channel.replies_due:  # LEAVING before its SUBSCRIBE was answered
            self._move(user_id, channel, ChannelState.SUBSCRIBING)
        else:  # LEAVING, its UNSUBSCRIBE not sent: held again at once
            self._move(user_id, channel, ChannelState.SUBSCRIBED)

    def unwant(self, user_id: str, queued: int) -> bool:
        """The node's last socket of the user left, ``queued`` writes having been queued so
        far. True when the channel is forgotten (nothing sent for it is unanswered)."""
        channel = self._channels.get(user_id)
        state = None if channel is None else channel.state
        if channel is None or state not in _WANTING:
            raise NotWanted(f"channel of {user_id!r} is not wanted ({state})")
        if state is ChannelState.WANTED:
            if not channel.replies_due:
                self._forget(user_id)
                return True
            self._move(user_id, channel, ChannelState.UNSUBSCRIBING)  # the last command sent
            return False
        channel.left_at = queued
        self._move(user_id, channel, ChannelState.LEAVING)
        return False

    def commands(self, done: int) -> tuple[list[str], list[str]]:
        """The users whose channels to SUBSCRIBE and to UNSUBSCRIBE now (each counted as sent),
        ``done`` writes having been answered (or given up on)."""
        subscribe: list[str] = []
        unsubscribe: list[str] = []
        for user_id in tuple(self._due):
            channel = self._channels[user_id]
            if channel.state is ChannelState.WANTED:
                subscribe.append(user_id)
                channel.replies_due += 1
                self._move(user_id, channel, ChannelState.SUBSCRIBING)
            elif done >= channel.left_at:  # LEAVING: every write that said "held" has run
                unsubscribe.append(user_id)
                channel.replies_due += 1
                self._move(user_id, channel, ChannelState.UNSUBSCRIBING)
        return subscribe, unsubscribe

    def replied(self, user_id: str) -> bool:
        """Redis answered a SUBSCRIBE or UNSUBSCRIBE of the channel. True when that settles it
        (every command sent for it is answered, and none is still to be sent): the sockets
        waiting for it may go on (delivery is in effect if :meth:`in_effect`)."""
        channel = self._channels.get(user_id)
        if channel is None or not channel.replies_due:
            raise UnexpectedReply(f"Redis confirmed the channel of {user_id!r}, owed no reply")
        channel.replies_due -= 1
        if channel.replies_due:
            return False
        state = channel.state
        if state is ChannelState.SUBSCRIBING:
            self._move(user_id, channel, ChannelState.SUBSCRIBED)
        elif state is ChannelState.UNSUBSCRIBING:
            self._forget(user_id)
        return state is not ChannelState.WANTED  # a WANTED one's SUBSCRIBE is still to go

    def link_lost(self) -> None:
        """The connection is gone, and every subscription with it: the wanted channels are to
        be subscribed on the next one, the others forgotten."""
        self.presence = None
        self._held.clear()
        self._leaving.clear()
        self._due.clear()
        kept: dict[str, _Channel] = {}
        for user_id, channel in self._channels.items():
            if channel.state in _WANTING:
                kept[user_id] = _Channel(ChannelState.WANTED)
                self._due[user_id] = None
        self._channels = kept

    # -- bookkeeping --

    def _move(self, user_id: str, channel: _Channel, state: ChannelState) -> None:
        old = channel.state
        channel.state = _ARROWS.check(old, state)  # the moves above guard first, by name
        # The views follow the state; a channel in none of them is only waiting for replies.
        if old is ChannelState.SUBSCRIBED:
            self._held.discard(user_id)
        elif old is ChannelState.LEAVING:
            self._leaving.discard(user_id)
        if state is ChannelState.SUBSCRIBED:
            self._held.add(user_id)
        elif state is ChannelState.LEAVING:
            self._leaving.add(user_id)
        if state is ChannelState.WANTED or state is ChannelState.LEAVING:
            self._due[user_id] = None
        else:
            self._due.pop(user_id, None)

    def _forget(self, user_id: str) -> None:
        del self._channels[user_id]
        self._due.pop(user_id, None)
        self._held.discard(user_id)
        self._leaving.discard(user_id)
