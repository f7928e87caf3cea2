"""A ``/ws`` socket's inbound messages: handled one at a time, in order, by a task that exists only
while there is something to handle (an idle connection holds no task).

::

    IDLE ──a message──▶ HANDLING ──too many wait──▶ PAUSED
      ▲                   │  ▲                        │
      └──all handled──────┘  └──few enough wait───────┘
    any phase ──the socket is gone──▶ CLOSED

A client sending faster than its messages are handled is paused at the socket (``PAUSED``: the
transport stops reading) and resumed once few enough wait. A move not drawn raises
:class:`~runwire.errors.SocketPhaseError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum

from runwire.domain.state_machine import StateMachine, Transitions
from runwire.errors import SocketPhaseError

__all__ = ["INBOX_PHASES", "Fragments", "Inbox", "InboxPhase"]

log = logging.getLogger(__name__)

PAUSE_AT = 64  # inbound messages waiting to be handled before the socket stops reading
RESUME_AT = 16


class InboxPhase(StrEnum):
    """Whether a socket's inbound messages are being handled (the diagram above)."""

    IDLE = "idle"
    HANDLING = "handling"
    PAUSED = "paused"
    CLOSED = "closed"


INBOX_PHASES: Transitions[InboxPhase] = Transitions(
    "inbox",
    {
        InboxPhase.IDLE: {InboxPhase.HANDLING, InboxPhase.CLOSED},
        InboxPhase.HANDLING: {InboxPhase.IDLE, InboxPhase.PAUSED, InboxPhase.CLOSED},
        InboxPhase.PAUSED: {InboxPhase.HANDLING, InboxPhase.CLOSED},
        InboxPhase.CLOSED: (),
    },
    error=SocketPhaseError,
)
"""The arrows of the diagram above."""


class Fragments:
    """The frames of the message arriving: a message may come in several (a first text or
    binary frame, then continuations), and is whole at the frame marked final."""

    __slots__ = ("_parts", "size", "text")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0  # the bytes of the message so far, to judge against the frame limit
        self.text = False  # the message is text (to be decoded as UTF-8), not binary

    def first(self, data: bytes | bytearray | memoryview, *, text: bool) -> None:
        """A message begins with this frame's ``data``."""
        self._parts = [bytes(data)]
        self.text = text
        self.size = len(data)

    def add(self, data: bytes | bytearray | memoryview) -> None:
        """A continuation frame's ``data``."""
        self._parts.append(bytes(data))
        self.size += len(data)

    def message(self) -> bytes:
        """The whole message (its final frame has come); the next one starts afresh."""
        parts, self._parts = self._parts, []
        return b"".join(parts) if len(parts) > 1 else parts[0]


class Inbox:
    """The messages of one socket waiting to be handled, and the task handling them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        handle: Callable[[str | bytes], Awaitable[None]],
        transport: asyncio.Transport,
    ) -> None:
        self._loop = loop
        self._handle = handle  # Session.handle: it answers every error it knows of itself
        self._transport = transport
        self._waiting: deque[str | bytes] = deque()
        self._reader: asyncio.Task[None] | None = None  # held while HANDLING or PAUSED
        self.phase = StateMachine(INBOX_PHASES, InboxPhase.IDLE)

    def put(self, message: str | bytes) -> None:
        """Queue a message; start handling, or pause the socket if too many wait."""
        phase = self.phase
        if phase.state is InboxPhase.CLOSED:
            return
        self._waiting.append(message)
        if phase.state is InboxPhase.IDLE:
            phase.move(InboxPhase.HANDLING)
            self._reader = self._loop.create_task(self._read())
        elif phase.state is InboxPhase.HANDLING and len(self._waiting) >= PAUSE_AT:
            phase.move(InboxPhase.PAUSED)
            self._transport.pause_reading()

    def close(self) -> None:
        """The socket is gone: drop what waits (a message being handled finishes)."""
        if self.phase.state is not InboxPhase.CLOSED:
            self.phase.move(InboxPhase.CLOSED)
        self._waiting.clear()

    async def _read(self) -> None:
        phase, waiting = self.phase, self._waiting
        try:
            while waiting:
                try:
                    await self._handle(waiting.popleft())
                except Exception:
                    # Session.handle answers every error it knows of; anything else is a bug
                    # that must not leave later frames unread on an open socket.
                    log.exception("handling a frame failed")
                if phase.state is InboxPhase.PAUSED and len(waiting) <= RESUME_AT:
                    phase.move(InboxPhase.HANDLING)
                    self._transport.resume_reading()
        finally:
            self._reader = None
            if phase.state is InboxPhase.HANDLING:
                phase.move(InboxPhase.IDLE)
