"""The one event model of a run, its redaction and its wire encoding (pure: no I/O)."""

from runwire.events.model import (
    TERMINAL_EVENTS,
    EventDraft,
    EventType,
    RunEvent,
)
from runwire.events.redaction import Redactor

__all__ = [
    "TERMINAL_EVENTS",
    "EventDraft",
    "EventType",
    "Redactor",
    "RunEvent",
]
