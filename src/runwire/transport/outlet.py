"""Where a WebSocket session's frames go: the :class:`Outlet` each socket adapter gives its
:class:`~runwire.transport.session.Session`, and what the session relies on of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Outlet"]


class Outlet(Protocol):
    """Where a session's frames go: the socket adapter's side of the session.

    What a session relies on, whichever adapter carries it (the direct protocol's and the ASGI
    endpoint's outlets are checked against it on real loopback sockets:
    tests/integration/test_outlet_contract.py):

    - Each frame queued leaves as one text frame of its own, exactly as given, in the order
      queued (by :meth:`write` and :meth:`write_many` alike).
    - A write returns False for one reason only: the client counts as not reading (what earlier
      turns of the event loop left unread is past the limit,
      :class:`runwire.protocol.outbound.OutboundLimit`); and then nothing of that call was
      queued. A turn's own frames are never refused for their size.
    - Once the outlet is closing, or the socket is gone, a write returns True and queues
      nothing (except a ``keep`` frame within the closing turn): a socket on its way out is not
      a client that stopped reading.
    """

    def write(self, frame: str | bytes, *, keep: bool = False) -> bool:
        """Queue one text frame (``bytes``: already UTF-8) and return True; or return False,
        queuing nothing, when the client counts as not reading. A ``keep`` frame is never
        refused, survives a ``drop``, and is still queued after :meth:`close` within the same
        turn of the event loop (ahead of the close frame); after that turn it is ignored."""

    def write_many(self, frames: Sequence[bytes]) -> bool:
        """:meth:`write` each of ``frames`` (none of them kept), in order, judged once for the
        batch: all of them are queued (True), or none (False)."""

    def close(self, code: int, reason: str, *, drop: bool) -> None:
        """Close with ``code`` and ``reason`` after the frames already queued, or (``drop``)
        instead of those not yet handed to the socket, kept frames excepted: the client then
        gets the frames written up to some point, every kept frame after it, and the close. The
        close frame leaves at the end of this turn of the event loop. Only the first close
        counts; later ones do nothing."""
