"""The server's one writer of waiting sockets (transport/flusher.py): every socket that got
frames in a turn is written at the next, once, in order, and one broken socket holds back none."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runwire.transport.flusher import Flusher

pytestmark = pytest.mark.unit


class _Socket:
    def __init__(self, name: str, written: list[str], *, broken: bool = False) -> None:
        self.name, self._written, self._broken = name, written, broken
        self.flush_due = False

    def frames(self, flusher: Flusher) -> None:
        if not self.flush_due:  # as the adapter does: joins once until written
            self.flush_due = True
            flusher.add(self)

    def flush(self) -> None:
        self.flush_due = False
        if self._broken:
            raise OSError("the transport is gone")
        self._written.append(self.name)


async def test_sockets_with_frames_in_a_turn_are_written_at_the_next_once_each_in_order() -> None:
    flusher, written = Flusher(), []
    a, b, c = (_Socket(name, written) for name in "abc")
    b.frames(flusher)
    a.frames(flusher)
    b.frames(flusher)  # more frames for b in the same turn: still one write
    c.frames(flusher)
    assert written == []  # nothing leaves within the turn that queued it
    await asyncio.sleep(0)
    assert written == ["b", "a", "c"]
    a.frames(flusher)  # the next turn's frames go in the next pass
    await asyncio.sleep(0)
    assert written == ["b", "a", "c", "a"]


async def test_a_socket_flushed_directly_meanwhile_is_not_written_again() -> None:
    flusher, written = Flusher(), []
    a, b = _Socket("a", written), _Socket("b", written)
    a.frames(flusher)
    b.frames(flusher)
    a.flush()  # a close or a drain writes at once
    await asyncio.sleep(0)
    assert written == ["a", "b"]


async def test_a_socket_whose_write_fails_is_logged_and_the_others_are_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    flusher, written = Flusher(), []
    broken = _Socket("broken", written, broken=True)
    after = _Socket("after", written)
    broken.frames(flusher)
    after.frames(flusher)
    with caplog.at_level(logging.ERROR, logger="runwire.transport.flusher"):
        await asyncio.sleep(0)
    assert written == ["after"]
    assert [r.getMessage() for r in caplog.records] == ["writing to a WebSocket failed"]
