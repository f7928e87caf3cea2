"""A ``/ws`` socket's timers: keepalive pings find a peer that vanished, the idle timeout closes a
silent one.

They run from the session's opening until the socket goes, as callbacks of the loop (no task),
and act only while the socket is open: what they do to it (send a ping, let a vanished peer go,
close an idle one with 4000) is the socket's own business, through :class:`KeptAlive`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

__all__ = ["Keepalive", "KeptAlive"]


class KeptAlive(Protocol):
    """The socket a :class:`Keepalive` looks after (``runwire.transport.ws_protocol``)."""

    @property
    def is_open(self) -> bool:
        """The socket is open: its session's frames go out."""

    def ping(self, payload: bytes) -> None:
        """Send a ping frame carrying ``payload``, now."""

    def vanished(self) -> None:
        """No pong came in time: the peer vanished without closing; let go of it."""

    def idle(self) -> None:
        """Nothing came from the client for the idle timeout: close the socket."""


class Keepalive:
    """The idle timer and the ping timer of one socket (``start`` once it is open)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        socket: KeptAlive,
        *,
        idle_s: float,
        ping_interval_s: float,
        ping_timeout_s: float,
    ) -> None:
        self._loop = loop
        self._socket = socket
        self._idle_s = idle_s
        self._ping_interval_s = ping_interval_s
        self._ping_timeout_s = ping_timeout_s
        self._last_seen = 0.0
        self._idle_timer: asyncio.TimerHandle | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None  # the ping waiting for its pong

    def start(self) -> None:
        """The socket is open: the client counts as seen now; the timers start."""
        self._last_seen = self._loop.time()
        self._idle_timer = self._loop.call_later(self._idle_s, self._check_idle)
        if self._ping_interval_s > 0:
            self._ping_timer = self._loop.call_later(self._ping_interval_s, self._send_ping)

    def stop(self) -> None:
        """The socket is gone: no timer fires any more."""
        for timer in (self._idle_timer, self._ping_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._ping_timer = None

    def seen(self) -> None:
        """A message came from the client: it is not idle."""
        self._last_seen = self._loop.time()

    def pong(self, payload: bytes) -> None:
        """A pong came: it answers the ping waiting if it carries that ping's payload."""
        if self._ping_payload is not None and payload == self._ping_payload:
            self._ping_payload = None

    def _check_idle(self) -> None:
        self._idle_timer = None
        if not self._socket.is_open:
            return
        left = self._last_seen + self._idle_s - self._loop.time()
        if left > 0:
            self._idle_timer = self._loop.call_later(left, self._check_idle)
            return
        self._socket.idle()

    def _send_ping(self) -> None:
        self._ping_timer = None
        if not self._socket.is_open:
            return
        self._ping_payload = os.urandom(4)
        self._socket.ping(self._ping_payload)
        self._ping_timer = self._loop.call_later(self._ping_timeout_s, self._check_pong)

    def _check_pong(self) -> None:
        self._ping_timer = None
        if not self._socket.is_open:
            return
        if self._ping_payload is not None:
            self._socket.vanished()
            return
        self._ping_timer = self._loop.call_later(
            max(0.0, self._ping_interval_s - self._ping_timeout_s), self._send_ping
        )
