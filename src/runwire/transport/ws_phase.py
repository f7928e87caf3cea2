"""Where a ``/ws`` socket is in its life: one phase, moved only along these arrows.

::

    HANDSHAKE ──session open──▶ OPEN ──close()──▶ CLOSE_DUE ──flush──▶ CLOSING ──┐
        │                        │                    │                          │
        │                        └──client's close────┴────────▶ CLOSING         │
        │                                                                        ▼
        └──refused, invalid, a protocol violation, no pong, the close exchanged─▶ ENDING
    any phase but LOST ──connection_lost──▶ LOST

- HANDSHAKE: the upgrade request is being answered; no frame of runwire's goes out.
- OPEN: the session's frames go out, the inbound messages are handled, the timers run.
- CLOSE_DUE: the session closed the socket; its close frame leaves at the end of the turn, after
  the frames it keeps (runs' terminal events), which alone are still taken.
- CLOSING: a close frame is out (ours, or the echo of the client's): nothing more is taken.
- ENDING: the TCP side closes at the next write (the handshake was refused, the client broke the
  protocol or stopped answering pings, or the closing handshake is over).
- LOST: the transport is gone.

The adapter reads the phase on every frame (an identity comparison, ``phase.state is OPEN``)
and consults the table only when it moves. A move not drawn raises
:class:`~runwire.errors.SocketPhaseError`. (A client's close during the handshake leaves the
socket CLOSING: the session still opens, and its greeting is not sent.)
"""

from __future__ import annotations

from enum import StrEnum

from runwire.domain.state_machine import StateMachine, Transitions
from runwire.errors import SocketPhaseError

__all__ = ["SOCKET_PHASES", "SocketPhase", "SocketPhases"]


class SocketPhase(StrEnum):
    """One phase of a ``/ws`` socket (the diagram above)."""

    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSE_DUE = "close_due"
    CLOSING = "closing"
    ENDING = "ending"
    LOST = "lost"


SOCKET_PHASES: Transitions[SocketPhase] = Transitions(
    "socket",
    {
        SocketPhase.HANDSHAKE: {
            SocketPhase.OPEN,
            SocketPhase.CLOSE_DUE,
            SocketPhase.CLOSING,
            SocketPhase.ENDING,
            SocketPhase.LOST,
        },
        SocketPhase.OPEN: {
            SocketPhase.CLOSE_DUE,
            SocketPhase.CLOSING,
            SocketPhase.ENDING,
            SocketPhase.LOST,
        },
        SocketPhase.CLOSE_DUE: {SocketPhase.CLOSING, SocketPhase.ENDING, SocketPhase.LOST},
        SocketPhase.CLOSING: {SocketPhase.ENDING, SocketPhase.LOST},
        SocketPhase.ENDING: {SocketPhase.LOST},
        SocketPhase.LOST: (),
    },
    error=SocketPhaseError,
)
"""The arrows of the diagram above."""

_TAKES_CLOSE = frozenset({SocketPhase.HANDSHAKE, SocketPhase.OPEN, SocketPhase.CLOSE_DUE})


class SocketPhases(StateMachine[SocketPhase]):
    """A socket's phase, from HANDSHAKE on."""

    __slots__ = ()

    def __init__(self, initial: SocketPhase = SocketPhase.HANDSHAKE) -> None:
        super().__init__(SOCKET_PHASES, initial)

    def open(self) -> None:
        """The session is open: its frames go out (unless the socket began closing meanwhile,
        which it stays)."""
        if self.state is SocketPhase.HANDSHAKE:
            self.move(SocketPhase.OPEN)

    def close(self) -> bool:
        """The session closes the socket: whether its close frame is now due (not when the
        socket is closing, ending or gone already)."""
        if self.state is SocketPhase.OPEN or self.state is SocketPhase.HANDSHAKE:
            self.move(SocketPhase.CLOSE_DUE)
            return True
        return False

    def peer_closed(self) -> None:
        """The client's close frame arrived (its echo is queued): a close of ours due is void."""
        if self.state in _TAKES_CLOSE:
            self.move(SocketPhase.CLOSING)

    def end(self) -> None:
        """The TCP side is to close at the next write (idempotent; nothing once it is lost)."""
        if self.state is not SocketPhase.ENDING and self.state is not SocketPhase.LOST:
            self.move(SocketPhase.ENDING)
