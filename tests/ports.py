"""Ports on loopback that tests can count on while other test processes run beside them.

Tests run in parallel (pytest-xdist workers, and other people's suites on the same machine), so a
port found free and then let go can be taken by someone else before it is used. Servers under
test therefore bind port 0 themselves (see ``tests/e2e/conftest.py``), and a test that needs a
port where nothing answers holds it for as long as it needs it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["closed_port", "loopback_listener"]


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections, and stays so until the block ends.

    The port is bound but never listened on: a connection to it is refused at once, and while the
    socket is held the kernel gives the port to nobody else (SO_REUSEADDR does not let another
    socket bind it, since this one does not set it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield int(held.getsockname()[1])


def loopback_listener() -> socket.socket:
    """A TCP socket bound to a free loopback port, for a server in the test's process
    (``uvicorn.Server.serve(sockets=[...])``).

    Its protocol is named: asyncio turns Nagle's algorithm off only on sockets whose protocol
    says TCP (``socket.socket()`` says 0, and its accepted connections inherit that), and with
    Nagle on, a response written in two parts waits out the client's delayed ACK, about 40 ms."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.bind(("127.0.0.1", 0))
    return listener
