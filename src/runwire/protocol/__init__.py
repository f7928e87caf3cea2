"""The WebSocket protocol core: frame parsing and the connection state machine (pure, no I/O)."""

from runwire.protocol.connection import ConnectionState, ConnectionStateMachine
from runwire.protocol.inbound import (
    Command,
    GetThreadHistory,
    Ping,
    Resume,
    StopAgent,
    UserMessage,
    parse_frame,
)

__all__ = [
    "Command",
    "ConnectionState",
    "ConnectionStateMachine",
    "GetThreadHistory",
    "Ping",
    "Resume",
    "StopAgent",
    "UserMessage",
    "parse_frame",
]
