"""The one callback of the event loop that writes every socket with frames waiting.

A socket adapter that queues frames during a turn of the loop writes them in one ``write`` at
the next turn. Scheduled one callback a socket, the writes spread through that turn between
other tasks, and a client process reading many sockets (a gateway, a load generator) woke once
a write; written together, they leave in one burst and such a client wakes once for it
(docs/benchmarks.md, "Hot path, session 12"). One :class:`Flusher` serves one server: the app
factory makes it with the other services, and every socket of that server joins it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

__all__ = ["Flushable", "Flusher"]

log = logging.getLogger(__name__)


class Flushable(Protocol):
    """A socket with frames to write (``runwire.transport.ws_protocol``)."""

    @property
    def flush_due(self) -> bool:
        """It has frames waiting that its own :meth:`flush` has not written yet."""

    def flush(self) -> None:
        """Write every frame waiting, in one ``write``."""


class Flusher:
    """Writes the sockets that joined since its last pass, in the order they joined.

    The first socket to join in a turn schedules the pass, where that socket's own flush would
    have run (the next turn of the loop): no frame leaves later than it would alone, and most
    leave earlier, before the tasks scheduled between the sockets' frames. Each socket is still
    written once a pass, in one ``write``, under its own outbound limit."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: list[Flushable] = []

    def add(self, socket: Flushable) -> None:
        """Write ``socket`` at the next pass (the caller adds it once until it is written)."""
        if not self._waiting:
            asyncio.get_running_loop().call_soon(self._run)
        self._waiting.append(socket)

    def _run(self) -> None:
        waiting, self._waiting = self._waiting, []
        for socket in waiting:
            # A socket flushed directly since it joined (and not written to again) has nothing
            # left for this pass.
            if socket.flush_due:
                try:
                    socket.flush()
                except Exception:  # one broken socket must not hold back the others' frames
                    log.exception("writing to a WebSocket failed")
