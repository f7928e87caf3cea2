"""The handshake of ``/ws`` on the direct protocol: from a socket's upgrade request to its open
session.

A request for another path, or one that comes before the server is ready, is refused with an
HTTP status and a JSON body (``ws_wire.refusal``), as is one whose headers fail the checks both
socket adapters share (:mod:`runwire.transport.handshake`), or that is no valid WebSocket upgrade
(the ``websockets`` core's own answer). Otherwise the caller is admitted in a task (credentials,
a seat in the user's connection count), its :class:`Session` subscribed before the 101 goes out
(so the client's first frame finds live delivery in effect), and the socket opens. What that
does to the socket is its own business, through :class:`Upgraded`.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from runwire.transport.handshake import Credentials, Denial, admit, credentials_of, ticket_of
from runwire.transport.outlet import Outlet
from runwire.transport.services import Services
from runwire.transport.session import Session, encode
from runwire.transport.ws_wire import refusal

__all__ = ["WS_PATH", "Upgrade", "Upgraded"]

log = logging.getLogger(__name__)

WS_PATH = "/ws"


class Upgraded(Outlet, Protocol):
    """The socket an :class:`Upgrade` answers (``runwire.transport.ws_protocol``), and the
    outlet of the session it opens."""

    @property
    def lost(self) -> bool:
        """The socket is gone (the peer left, or the server let go of it)."""

    def refused(self) -> None:
        """The handshake's refusal is queued in the core: send it and end the connection."""

    def opened(self, session: Session) -> None:
        """The 101 is queued in the core: send it, and carry ``session`` from now on."""


class Upgrade:
    """The handshake of one socket, answered through its ``websockets`` ``core``."""

    __slots__ = ("_core", "_opened", "_services", "_socket")

    def __init__(self, core: ServerProtocol, services: Services | None, socket: Upgraded) -> None:
        self._core = core
        self._services = services
        self._socket = socket
        self._opened = False  # the 101 is on its way: no refusal may follow it

    def request(self, request: Request) -> Coroutine[Any, Any, None] | None:
        """Answer the upgrade ``request``: refused at once (None), or the admission of its
        caller, for the socket to run as a task."""
        services = self._services
        path = request.path.partition("?")[0]
        if services is None or path != WS_PATH:
            status, detail, code = (
                (503, "the server is not ready", "unavailable")
                if services is None
                else (404, f"no WebSocket endpoint at {path}", "not_found")
            )
            self._refuse(status, encode({"detail": detail, "code": code}).encode())
            return None
        credentials = credentials_of(request.headers.raw_items())
        if isinstance(credentials, Denial):
            self._refuse(credentials.status, credentials.body())
            return None
        response = self._core.accept(request)
        if response.status_code != 101:  # not a valid WebSocket upgrade
            self._core.send_response(response)
            self._socket.refused()
            return None
        ticket = ticket_of(request.path.partition("?")[2])
        return self._admit(credentials, ticket, response, services)

    async def _admit(
        self, credentials: Credentials, ticket: str | None, response: Response, services: Services
    ) -> None:
        # Every handshake gets an answer: one left unanswered would hold its socket open with
        # no timer running (the idle timer starts with the session).
        try:
            await self._open(credentials, ticket, response, services)
        except Exception:
            log.exception("a WebSocket handshake failed")
            if not self._opened and not self._socket.lost:
                body = {"detail": "the server failed; the error was logged", "code": "internal"}
                self._refuse(500, encode(body).encode())

    async def _open(
        self, credentials: Credentials, ticket: str | None, response: Response, services: Services
    ) -> None:
        admitted = await admit(services, credentials, ticket=ticket)
        socket = self._socket
        if isinstance(admitted, Denial):
            if not socket.lost:
                self._refuse(admitted.status, admitted.body())
            return
        session = Session(admitted.principal, services, socket, seat=admitted.seat)
        try:
            if not socket.lost:
                await session.subscribe()
        except BaseException:
            session.release()
            raise
        if socket.lost:
            session.release()
            return
        self._core.send_response(response)
        self._opened = True
        socket.opened(session)

    def _refuse(self, status: int, body: bytes) -> None:
        self._core.send_response(refusal(status, body))
        self._socket.refused()
