"""The user's workload: importing their LLM-usage records, or loading the generated sample.

Used by both the HTTP API and the CLI, so the two report the same lines the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from runwire.errors import InputError
from runwire.store.records import UsageRecord
from runwire.store.usage import UsageStore
from runwire.usage.importer import detect_format, file_format, parse_csv, parse_jsonl
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample

__all__ = ["ImportResult", "Workload"]

MAX_REPORTED = 1000


@dataclass(frozen=True, slots=True)
class ImportResult:
    imported: int
    rejected: list[tuple[int, str]]

    def public(self) -> dict[str, Any]:
        shown = self.rejected[:MAX_REPORTED]
        body: dict[str, Any] = {
            "imported": self.imported,
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

    @staticmethod
    def format_of_file(filename: str) -> str:
        return file_format(filename)

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
    ) -> ImportResult:
        """Keep every good line, report every bad one with its number and why."""
        try:
            records, rejected = self.parse(lines, kind, on_progress)
        except InputError as exc:
            # The file as a whole is unreadable (a CSV header without a required column): that
            # is line 1's fault, reported like any other bad line.
            return ImportResult(imported=0, rejected=[(1, exc.message)])
        await self._usage.add(user_id, records)
        return ImportResult(imported=len(records), rejected=rejected)

    async def import_text(self, user_id: str, body: bytes, kind: str) -> ImportResult:
        text = body.decode("utf-8", errors="replace")
        # Lines end at "\n" only: str.splitlines would also split inside a JSON string at
        # U+2028 and the like, breaking a valid line in two and shifting every later number.
        lines = [line + "\n" for line in text.split("\n")]
        if lines and lines[-1] == "\n":
            lines.pop()
        return await self.import_lines(user_id, lines, kind)

    async def load_sample(self, user_id: str) -> int:
        return await self._usage.add(user_id, generate_sample())

    async def count(self, user_id: str) -> int:
        return await self._usage.count(user_id)

    async def records(self, user_id: str) -> Sequence[UsageRecord]:
        return await self._usage.records_of(user_id)
