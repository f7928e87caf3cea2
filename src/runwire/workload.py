"""The user's workload: importing their LLM-usage records, loading the generated sample, listing
and deleting what they imported.

Used by both the HTTP API and the CLI, so the two report the same lines the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runwire.errors import InputError
from runwire.store.records import UsageRecord
from runwire.store.usage import Added, UsageBatch, UsageStore
from runwire.usage.importer import detect_format, parse_csv, parse_jsonl
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample

__all__ = ["ImportResult", "Workload"]

MAX_REPORTED = 1000


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the good lines (``imported``: each now has its record stored, ``new``
    of them added by this import, ``already_present`` stored before), the batch they were added
    as, and the rejected lines."""

    imported: int
    rejected: list[tuple[int, str]] = field(default_factory=list)
    new: int = 0
    already_present: int = 0
    batch_id: str | None = None

    @classmethod
    def of(cls, added: Added, rejected: list[tuple[int, str]] | None = None) -> ImportResult:
        return cls(
            imported=added.new + added.already_present,
            rejected=rejected or [],
            new=added.new,
            already_present=added.already_present,
            batch_id=added.batch_id,
        )

    def public(self) -> dict[str, Any]:
        shown = self.rejected[:MAX_REPORTED]
        body: dict[str, Any] = {
            "imported": self.imported,
            "new": self.new,
            "already_present": self.already_present,
            "batch_id": self.batch_id,
            "rejected": [{"line": line, "error": error} for line, error in shown],
        }
        if len(self.rejected) > len(shown):
            body["rejected_total"] = len(self.rejected)
        return body


class Workload:
    def __init__(self, usage: UsageStore, pricing: PricingTable) -> None:
        self._usage = usage
        self.pricing = pricing

    @staticmethod
    def format_of(content_type: str | None, filename: str | None) -> str:
        return detect_format(content_type, filename)

    def parse(
        self,
        lines: Iterable[str],
        kind: str,
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[list[UsageRecord], list[tuple[int, str]]]:
        parse = parse_csv if kind == "csv" else parse_jsonl
        report = parse(lines, self.pricing, on_progress=on_progress)
        return list(report.imported), list(report.rejected)

    async def import_lines(
        self,
        user_id: str,
        lines: Iterable[str],
        kind: str,
        on_progress: Callable[[int], None] | None = None,
        *,
        name: str | None = None,
    ) -> ImportResult:
        """Keep every good line, report every bad one with its number and why. The records not
        stored yet are added as one batch, under ``name`` (the file's) if given."""
        try:
            records, rejected = self.parse(lines, kind, on_progress)
        except InputError as exc:
            # The file as a whole is unreadable (a CSV header without a required column): that
            # is line 1's fault, reported like any other bad line.
            return ImportResult(imported=0, rejected=[(1, exc.message)])
        added = await self._usage.add(user_id, records, source="import", name=name)
        return ImportResult.of(added, rejected)

    async def import_text(
        self, user_id: str, body: bytes, kind: str, *, name: str | None = None
    ) -> ImportResult:
        text = body.decode("utf-8", errors="replace")
        # Lines end at "\n" only: str.splitlines would also split inside a JSON string at
        # U+2028 and the like, breaking a valid line in two and shifting every later number.
        lines = [line + "\n" for line in text.split("\n")]
        if lines and lines[-1] == "\n":
            lines.pop()
        return await self.import_lines(user_id, lines, kind, name=name)

    async def load_sample(self, user_id: str) -> ImportResult:
        """The generated sample as the user's one sample batch (a second load adds nothing)."""
        return ImportResult.of(await self._usage.add_sample(user_id, generate_sample()))

    async def batches(self, user_id: str) -> list[UsageBatch]:
        return await self._usage.batches(user_id)

    async def delete(self, user_id: str, batch_id: str | None = None) -> int:
        """Delete one batch (or, with None, all) of the user's records; how many went."""
        return await self._usage.delete(user_id, batch_id)

    async def count(self, user_id: str) -> int:
        return await self._usage.count(user_id)

    async def records(self, user_id: str) -> Sequence[UsageRecord]:
        return await self._usage.records_of(user_id)
