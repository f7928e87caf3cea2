"""The answers of a ``/ws`` handshake that come before any admission (transport/ws_upgrade.py), on
the real ``websockets`` sans-I/O core: refused with an HTTP status and a JSON body (not ready,
another path, a header sent twice), the core's own answer to what is no WebSocket upgrade, and a
valid request handed on for admission with nothing sent yet. Admission itself, on a real app and
real sockets: tests/integration/test_handshake.py and tests/e2e/test_ws_protocol.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request
from websockets.server import ServerProtocol

from runwire.transport.services import Services
from runwire.transport.session import Session
from runwire.transport.ws_upgrade import Upgrade

pytestmark = pytest.mark.unit

# Read by no answer before admission, which is all these tests run: it only says the server is
# ready (the admission, a coroutine, is closed unstarted).
_READY = cast(Services, object())

_UPGRADE = [
    ("Host", "127.0.0.1"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]


class _Socket:
    """What the handshake did to the socket: only refusals, before admission."""

    def __init__(self) -> None:
        self.refusals = 0
        self.lost = False

    def refused(self) -> None:
        self.refusals += 1

    def opened(self, session: Session) -> None:
        raise AssertionError("no session opens before admission")

    def write(self, frame: str | bytes, *, keep: bool = False) -> bool:
        raise AssertionError("no frame before the session opens")

    def write_many(self, frames: Sequence[bytes]) -> bool:
        raise AssertionError("no frame before the session opens")

    def close(self, code: int, reason: str, *, drop: bool) -> None:
        raise AssertionError("no close frame before the session opens")


def _answer(core: ServerProtocol) -> tuple[int, bytes]:
    """The status and body of the HTTP response the core has queued."""
    sent = b"".join(core.data_to_send())
    head, _, body = sent.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    ("services", "path", "headers", "status", "code"),
    [
        (None, "/ws", _UPGRADE, 503, "unavailable"),
        (_READY, "/other?ticket=x", _UPGRADE, 404, "not_found"),
        (_READY, "/ws", [*_UPGRADE, ("Origin", "a"), ("origin", "b")], 400, "bad_handshake"),
    ],
)
def test_a_handshake_refused_before_admission_gets_a_json_answer_and_ends(
    services: Services | None, path: str, headers: list[tuple[str, str]], status: int, code: str
) -> None:
    core, socket = ServerProtocol(), _Socket()
    assert Upgrade(core, services, socket).request(Request(path, Headers(headers))) is None
    assert socket.refusals == 1
    answered, body = _answer(core)
    assert answered == status
    assert json.loads(body)["code"] == code


def test_what_is_no_websocket_upgrade_gets_the_cores_own_answer_and_ends() -> None:
    core, socket = ServerProtocol(), _Socket()
    headers = [h for h in _UPGRADE if h[0] != "Sec-WebSocket-Key"]
    assert Upgrade(core, _READY, socket).request(Request("/ws", Headers(headers))) is None
    assert socket.refusals == 1
    answered, body = _answer(core)
    assert answered == 400 and b"Sec-WebSocket-Key" in body


def test_a_valid_request_is_handed_on_for_admission_with_nothing_sent_yet() -> None:
    core, socket = ServerProtocol(), _Socket()
    admission = Upgrade(core, _READY, socket).request(Request("/ws?ticket=t", Headers(_UPGRADE)))
    assert admission is not None
    admission.close()  # not run: admitting needs the app
    assert socket.refusals == 0
    assert core.data_to_send() == []  # the 101 waits for the admission
