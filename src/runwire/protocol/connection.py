"""The connection state machine: which moves a WebSocket connection may make, and when.

::

    ACCEPTING ──accept──▶ OPEN ──close──▶ CLOSING ──closed──▶ CLOSED
        └──────────────reject──────────────────────────────────▲

Only an OPEN connection handles commands or receives events; every other move raises
InvalidTransition (the moves are a :class:`~runwire.domain.state_machine.Transitions` table),
so a bug shows up as an error instead of a frame sent on a dead socket.
"""

from __future__ import annotations

from enum import StrEnum

from runwire.domain.state_machine import StateMachine, Transitions

__all__ = ["ConnectionState", "ConnectionStateMachine"]


class ConnectionState(StrEnum):
    ACCEPTING = "accepting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_MOVES: Transitions[ConnectionState] = Transitions(
    "connection",
    {
        ConnectionState.ACCEPTING: {ConnectionState.OPEN, ConnectionState.CLOSED},
        ConnectionState.OPEN: {ConnectionState.CLOSING, ConnectionState.CLOSED},
        ConnectionState.CLOSING: {ConnectionState.CLOSED},
        ConnectionState.CLOSED: (),
    },
)


class ConnectionStateMachine(StateMachine[ConnectionState]):
    """One connection's state, moved along the arrows above."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(_MOVES, ConnectionState.ACCEPTING)

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    def close(self) -> bool:
        """Begin closing; return False if it was already closing or closed (idempotent)."""
        if self.state is ConnectionState.CLOSING or self.state is ConnectionState.CLOSED:
            return False
        self.move(ConnectionState.CLOSING if self.is_open else ConnectionState.CLOSED)
        return True

    def end(self) -> None:
        """The socket is gone: CLOSED from wherever it was (idempotent)."""
        if self.state is not ConnectionState.CLOSED:
            self.move(ConnectionState.CLOSED)
