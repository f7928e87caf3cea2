"""The connection state machine: which moves a WebSocket connection may make, and when.

::

    ACCEPTING ──accept──▶ OPEN ──close──▶ CLOSING ──closed──▶ CLOSED
        └──────────────reject──────────────────────────────────▲

Only an OPEN connection handles commands or receives events; every other move raises
InvalidTransition, so a bug shows up as an error instead of a frame sent on a dead socket.
"""

from __future__ import annotations

from enum import StrEnum

from runwire.errors import InvalidTransition

__all__ = ["ConnectionState", "ConnectionStateMachine"]


class ConnectionState(StrEnum):
    ACCEPTING = "accepting"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_ALLOWED: dict[ConnectionState, frozenset[ConnectionState]] = {
    ConnectionState.ACCEPTING: frozenset({ConnectionState.OPEN, ConnectionState.CLOSED}),
    ConnectionState.OPEN: frozenset({ConnectionState.CLOSING, ConnectionState.CLOSED}),
    ConnectionState.CLOSING: frozenset({ConnectionState.CLOSED}),
    ConnectionState.CLOSED: frozenset(),
}


class ConnectionStateMachine:
    def __init__(self) -> None:
        self.state = ConnectionState.ACCEPTING

    @property
    def is_open(self) -> bool:
        return self.state is ConnectionState.OPEN

    def move(self, target: ConnectionState) -> None:
        if target not in _ALLOWED[self.state]:
            raise InvalidTransition(f"connection cannot go from {self.state} to {target}")
        self.state = target

    def close(self) -> bool:
        """Begin closing; return False if it was already closing or closed (idempotent)."""
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return False
        self.move(ConnectionState.CLOSING if self.is_open else ConnectionState.CLOSED)
        return True
