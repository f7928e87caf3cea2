"""What an import read: each line's :data:`Outcome` (its record, or why it was rejected) and the
:class:`ImportReport` they are collected into. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runwire.domain.usage import UsageRecord
from runwire.errors import InputError
from runwire.usage.pricing import PricingTable
from runwire.usage.validation import parse_record

__all__ = ["ImportReport", "Outcome", "record_or_reason"]

Outcome = tuple[int, "UsageRecord | str"]
"""One line's fate: its number, and the record read from it or why it was rejected."""


@dataclass
class ImportReport:
    """What an import read: the valid records, and each rejected line with its number and why."""

    imported: list[UsageRecord] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    lines_read: int = 0

    @property
    def imported_count(self) -> int:
        """How many records were read."""
        return len(self.imported)

    @property
    def rejected_count(self) -> int:
        """How many lines were rejected."""
        return len(self.rejected)

    def public(self, max_rejections: int = 100) -> dict[str, Any]:
        """A JSON-able summary; at most ``max_rejections`` rejections are listed in full."""
        return {
            "imported": self.imported_count,
            "rejected": self.rejected_count,
            "rejections": [
                {"line": line, "error": error} for line, error in self.rejected[:max_rejections]
            ],
            "rejections_truncated": self.rejected_count > max_rejections,
        }


def record_or_reason(obj: dict[str, Any], pricing: PricingTable) -> UsageRecord | str:
    """The record ``obj`` holds, or why it is not one (the line's rejection)."""
    try:
        return parse_record(obj, pricing)
    except InputError as exc:
        return exc.message
