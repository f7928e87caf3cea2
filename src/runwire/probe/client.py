"""The probe's side of the wire, written from docs/protocol.md: HTTP calls with httpx and the
``/ws`` socket with websockets. Every wait is bounded by one timeout; every way the other end can
misbehave (no answer, not HTTP, not JSON, a closed socket) becomes a
:class:`~runwire.errors.CheckFailed` that says what came, never a traceback.

Nothing here prints or returns a credential: tickets travel only in the socket's URL, which no
message names, and tokens only in headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from runwire.errors import CheckFailed, TargetUnreachable

__all__ = [
    "Api",
    "Channel",
    "Target",
    "answer",
    "as_object",
    "body_of",
    "describe_response",
    "said",
]

Frame = dict[str, Any]
E = TypeVar("E", bound=BaseException)

# Frames the server sends are small (an answer is a few KiB); anything near this is not runwire.
_MAX_FRAME_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Target:
    """Where the probe goes: the API's base URL, where ``/auth/*`` lives, and the bound on every
    single wait (an HTTP exchange, a handshake, the next frame), in seconds."""

    url: str
    auth_url: str
    timeout: float

    @staticmethod
    def base(url: str) -> str:
        """``url`` as a base to append paths to; raises ``ValueError`` when it is not an
        ``http://`` or ``https://`` URL with a host."""
        parts = urlsplit(url.strip())
        if parts.username is not None or parts.password is not None:
            # The URL is printed in every report: credentials in it would be too.
            raise ValueError("the URL holds credentials (user:password@host): leave them out")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))

    async def discovered(self) -> Target:
        """This target with ``auth_url`` as the API names it (``GET /api/config``: a chat node
        of a split deployment names its auth service); unchanged when the API names none or
        does not answer (the walk then reports what it meets)."""
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as http:
                response = await http.get(f"{self.url}/api/config")
            named = response.json().get("auth_url") if response.status_code == 200 else None
            return replace(self, auth_url=Target.base(named)) if isinstance(named, str) else self
        except (httpx.HTTPError, OSError, ValueError, AttributeError):
            return self

    @property
    def ws_url(self) -> str:
        parts = urlsplit(self.url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return urlunsplit((scheme, parts.netloc, f"{parts.path}/ws", "", ""))


def describe_response(response: httpx.Response) -> str:
    """A response in one line: status, content type and the start of the body."""
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    if response.is_redirect:
        return f"{response.status_code} redirect to {response.headers.get('location')}"
    text = " ".join(response.text.split())
    shown = text[:80] + ("…" if len(text) > 80 else "")
    return f"{response.status_code} {kind}: {shown}" if shown else f"{response.status_code} {kind}"


def body_of(response: httpx.Response) -> dict[str, Any] | None:
    """The response's JSON object, or None when the body is not one."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def as_object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a wrong shape then fails the check
    that reads it, with what came)."""
    return value if isinstance(value, dict) else {}


def said(response: httpx.Response) -> str:
    """What an answer says: runwire's error body as ``status code: detail``, else the start of
    the body."""
    body = body_of(response)
    if body is not None and "code" in body:
        return f"{response.status_code} {body.get('code')}: {body.get('detail')}"
    return describe_response(response)


def answer(response: httpx.Response, status: int, call: str) -> dict[str, Any]:
    """The JSON object of a ``status`` answer to ``call``, or a failed check naming what came."""
    body = body_of(response)
    if response.status_code != status or body is None:
        raise CheckFailed(f"{status} from {call}", said(response))
    return body


def _no_answer(exc: BaseException, timeout: float) -> str:
    """Why a request or handshake got no answer, in a few words, from the exception's chain."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and len(chain) < 10:
        chain.append(link)
        link = link.__cause__ or link.__context__

    if _first(chain, httpx.TimeoutException) or _first(chain, TimeoutError):
        return f"no answer within {timeout:g} s"
    if _first(chain, ConnectionRefusedError):
        return "connection refused"
    if unresolved := _first(chain, socket.gaierror):
        return f"the host name does not resolve ({unresolved.args[-1]})"
    if tls := _first(chain, ssl.SSLError):
        return f"TLS failed ({tls.reason or tls})"
    if _first(chain, httpx.RemoteProtocolError):
        return f"no HTTP answer ({exc})"
    if (os_error := _first(chain, OSError)) and os_error.strerror:
        return str(os_error.strerror).lower()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _first(chain: list[BaseException], kind: type[E]) -> E | None:
    return next((link for link in chain if isinstance(link, kind)), None)


class Api:
    """HTTP calls to the target: ``/auth/*`` at ``auth_url``, everything else at ``url``."""

    def __init__(self, target: Target, http: httpx.AsyncClient) -> None:
        self.target = target
        self._http = http

    @classmethod
    @asynccontextmanager
    async def open(cls, target: Target) -> AsyncIterator[Api]:
        """An ``Api`` with its connection pool, closed on leaving."""
        async with httpx.AsyncClient(timeout=target.timeout, follow_redirects=False) as http:
            yield cls(target, http)

    def _url(self, path: str) -> str:
        base = self.target.auth_url if path.startswith("/auth/") else self.target.url
        return f"{base}{path}"

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request; a transport failure raises :class:`TargetUnreachable` naming it."""
        headers = dict(headers or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return await self._http.request(
                method, self._url(path), headers=headers, json=json_body
            )
        except (httpx.HTTPError, OSError) as exc:
            host = self.target.auth_url if path.startswith("/auth/") else self.target.url
            raise TargetUnreachable(
                f"{host} cannot be reached: {_no_answer(exc, self.target.timeout)}",
                expected=f"an answer to {method} {path}",
            ) from None


class Channel:
    """One ``/ws`` socket, opened with a ticket; frames in and out as JSON objects."""

    def __init__(self, ws: ClientConnection, timeout: float) -> None:
        self._ws = ws
        self._timeout = timeout

    @classmethod
    async def open(cls, target: Target, ticket: str) -> tuple[Channel, Frame]:
        """Open the socket; returns it and its first frame (``connection_established``)."""
        try:
            ws = await connect(
                f"{target.ws_url}?ticket={ticket}",
                open_timeout=target.timeout,
                close_timeout=min(target.timeout, 2.0),
                max_size=_MAX_FRAME_BYTES,
                # Never stop reading from the network: a socket left with unread events mid-run
                # would otherwise not see the server's close frame.
                max_queue=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            text = " ".join(bytes(exc.response.body or b"").decode("utf-8", "replace").split())
            raise CheckFailed("101 Switching Protocols at /ws", f"{status}: {text[:80]}") from None
        except (InvalidHandshake, OSError, TimeoutError) as exc:
            raise CheckFailed("a WebSocket at /ws", _no_answer(exc, target.timeout)) from None
        channel = cls(ws, target.timeout)
        try:
            first = await channel.recv()
        except CheckFailed:
            await channel.close()
            raise
        return channel, first

    async def send(self, **frame: Any) -> None:
        try:
            await self._ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            raise CheckFailed(
                f"the socket open to send {frame.get('type')}", _closed(exc)
            ) from None

    async def recv(self) -> Frame:
        """The next frame; a silence past the timeout, a close or a frame that is not a JSON
        object is a failed check."""
        try:
            raw = await asyncio.wait_for(self._ws.recv(), self._timeout)
        except TimeoutError:
            raise CheckFailed("a frame", f"nothing within {self._timeout:g} s") from None
        except ConnectionClosed as exc:
            raise CheckFailed("a frame", _closed(exc)) from None
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            raise CheckFailed("a JSON object", f"the frame {text[:60]!r}")
        return frame

    async def close(self) -> None:
        """Close the socket (the cut of a resume, or the end of a step); never raises."""
        # A socket that fails to close is closed enough.
        with contextlib.suppress(Exception):
            await self._ws.close()


def _closed(exc: ConnectionClosed) -> str:
    received = exc.rcvd
    if received is None:
        return "the socket closed without a close frame"
    return f"the socket closed ({received.code} {received.reason})".replace(" )", ")")
