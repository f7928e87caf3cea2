"""A ``/ws`` socket's phases (transport/ws_phase.py) and its inbox's (transport/ws_inbox.py):
every arrow of their diagrams allowed, every other move refused with SocketPhaseError, and what
the adapter's events do from each phase. Also how a message's fragments are put together."""

from __future__ import annotations

import itertools

import pytest

from runwire.errors import InvalidTransition, SocketPhaseError
from runwire.transport.ws_inbox import INBOX_PHASES, Fragments, InboxPhase
from runwire.transport.ws_phase import SOCKET_PHASES, SocketPhase, SocketPhases

pytestmark = pytest.mark.unit

S = SocketPhase
# Written out again from the diagram in ws_phase's docstring, so a changed table fails here.
SOCKET_ARROWS = {
    (S.HANDSHAKE, S.OPEN),
    (S.HANDSHAKE, S.CLOSE_DUE),
    (S.HANDSHAKE, S.CLOSING),
    (S.HANDSHAKE, S.ENDING),
    (S.OPEN, S.CLOSE_DUE),
    (S.OPEN, S.CLOSING),
    (S.OPEN, S.ENDING),
    (S.CLOSE_DUE, S.CLOSING),
    (S.CLOSE_DUE, S.ENDING),
    (S.CLOSING, S.ENDING),
} | {(phase, S.LOST) for phase in SocketPhase if phase is not S.LOST}
N = InboxPhase
INBOX_ARROWS = {
    (N.IDLE, N.HANDLING),
    (N.HANDLING, N.IDLE),
    (N.HANDLING, N.PAUSED),
    (N.PAUSED, N.HANDLING),
} | {(phase, N.CLOSED) for phase in InboxPhase if phase is not N.CLOSED}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(SocketPhase, SocketPhase)))
def test_only_the_drawn_socket_arrows_are_allowed(source: SocketPhase, target: SocketPhase) -> None:
    phases = SocketPhases(source)
    if (source, target) in SOCKET_ARROWS:
        phases.move(target)
        assert phases.state is target
    else:
        with pytest.raises(SocketPhaseError) as caught:
            phases.move(target)
        assert str(caught.value) == f"socket cannot go from {source.value} to {target.value}"
        assert isinstance(caught.value, InvalidTransition)
        assert phases.state is source
    assert SOCKET_PHASES.is_terminal(source) is (source is S.LOST)


@pytest.mark.parametrize(("source", "target"), list(itertools.product(InboxPhase, InboxPhase)))
def test_only_the_drawn_inbox_arrows_are_allowed(source: InboxPhase, target: InboxPhase) -> None:
    assert INBOX_PHASES.allows(source, target) is ((source, target) in INBOX_ARROWS)
    if (source, target) not in INBOX_ARROWS:
        with pytest.raises(SocketPhaseError, match=f"inbox cannot go from {source.value}"):
            INBOX_PHASES.check(source, target)


@pytest.mark.parametrize(
    ("phase", "opened", "closed", "peer_closed", "ended"),
    [
        # from:        open()       close() (due?)        client's close  end()
        (S.HANDSHAKE, S.OPEN, (S.CLOSE_DUE, True), S.CLOSING, S.ENDING),
        (S.OPEN, S.OPEN, (S.CLOSE_DUE, True), S.CLOSING, S.ENDING),
        # A client's close while ours waits voids ours: the core echoes the client's.
        (S.CLOSE_DUE, S.CLOSE_DUE, (S.CLOSE_DUE, False), S.CLOSING, S.ENDING),
        # A client's close during the handshake: the session opens, its frames are not sent.
        (S.CLOSING, S.CLOSING, (S.CLOSING, False), S.CLOSING, S.ENDING),
        (S.ENDING, S.ENDING, (S.ENDING, False), S.ENDING, S.ENDING),
        (S.LOST, S.LOST, (S.LOST, False), S.LOST, S.LOST),
    ],
)
def test_what_each_event_does_from_each_socket_phase(
    phase: SocketPhase,
    opened: SocketPhase,
    closed: tuple[SocketPhase, bool],
    peer_closed: SocketPhase,
    ended: SocketPhase,
) -> None:
    phases = SocketPhases(phase)
    phases.open()
    assert phases.state is opened
    phases = SocketPhases(phase)
    assert (phases.close(), phases.state) == (closed[1], closed[0])
    phases = SocketPhases(phase)
    phases.peer_closed()
    assert phases.state is peer_closed
    phases = SocketPhases(phase)
    phases.end()
    phases.end()  # idempotent
    assert phases.state is ended


def test_a_socket_begins_in_its_handshake() -> None:
    assert SocketPhases().state is S.HANDSHAKE


def test_fragments_make_one_message_and_count_its_size() -> None:
    fragments = Fragments()
    fragments.first(b"one", text=True)
    assert fragments.message() == b"one" and fragments.text
    fragments.first(memoryview(b"ab"), text=False)
    fragments.add(bytearray(b"cd"))
    fragments.add(b"e")
    assert fragments.size == 5 and not fragments.text
    assert fragments.message() == b"abcde"
    fragments.first(b"", text=True)  # the next message starts afresh
    assert fragments.size == 0 and fragments.message() == b""
