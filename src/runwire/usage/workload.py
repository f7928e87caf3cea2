"""The user's workload: importing their LLM-usage records, loading the generated sample, listing
and deleting what they imported.

Used by both the HTTP API and the CLI, so the two report the same lines the same way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from runwire.domain.usage import UsageRecord
from runwire.errors import InputError, RateLimited
from runwire.limits.base import Limit, RateLimiter
from runwire.store.usage import Added, UsageStore
from runwire.store.usage_batches import UsageBatch
from runwire.usage.importer import (
    LineCounter,
    detect_format,
    file_format,
    lines_of,
    read_csv,
    read_jsonl,
)
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample

__all__ = ["MAX_REPORTED", "TURN_S", "ImportResult", "ImportThrottle", "Workload"]

T = TypeVar("T")

MAX_REPORTED = 1000
"""Rejections kept per import (and listed in its answer); the total is counted beyond them."""
TURN_S = 0.002
"""How long an import reads lines before the event loop gets a turn."""
_FREED_PER_TURN = 5000


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: the good lines (``imported``: each now has its record stored, ``new``
    of them added by this import, ``already_present`` stored before), the batch they were added
    as, and the rejected lines."""

    imported: int
    rejected: list[tuple[int, str]] = field(default_factory=list)  # the first MAX_REPORTED
    rejected_total: int = 0
    new: int = 0
    already_present: int = 0
    batch_id: str | None = None

    @classmethod
    def of(
        cls, added: Added, rejected: list[tuple[int, str]] | None = None, rejected_total: int = 0
    ) -> ImportResult:
        return cls(
            imported=added.new + added.already_present,
            rejected=rejected or [],
            rejected_total=rejected_total,
            new=added.new,
            already_present=added.already_present,
            batch_id=added.batch_id,
        )

    def public(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "imported": self.imported,
            "new": self.new,
            "already_present": self.already_present,
            "batch_id": self.batch_id,
            "rejected": [{"line": line, "error": error} for line, error in self.rejected],
        }
        if self.rejected_total > len(self.rejected):
            body["rejected_total"] = self.rejected_total
        return body


@dataclass(frozen=True, slots=True)
class ImportThrottle:
    """How many imports (files or the sample) a user may start: ``limit``, per user, counted
    by ``limiter`` (shared by every node when they share Redis)."""

    limiter: RateLimiter
    limit: Limit

    async def admit(self, user_id: str) -> None:
        """Count one import of ``user_id``, or raise :class:`RateLimited`."""
        decision = await self.limiter.acquire(self.limit, user_id)
        if not decision.allowed:
            raise RateLimited("too many usage imports", retry_after_s=decision.retry_after_s)


class Workload:
    """Imports, the sample, batches and deletion, for the HTTP API and the CLI.

    An import never holds the event loop for long: lines are read in turns of at most
    :data:`TURN_S` (then the loop runs whatever waits), a line longer than
    :data:`~runwire.usage.importer.MAX_LINE_BYTES` is rejected unread, and the store writes in
    slices off the loop's thread. ``throttle`` (None for the CLI, an administrator's tool)
    limits how often each user imports.
    """

    def __init__(
        self, usage: UsageStore, pricing: PricingTable, *, throttle: ImportThrottle | None = None
    ) -> None:
        self._usage = usage
        self.pricing = pricing
        self._throttle = throttle

    @staticmethod
    def format_of(content_type: str | None, filename: str | None) -> str:
        return detect_format(content_type, filename)

    @staticmethod
    def format_of_file(filename: str) -> str:
        return file_format(filename)

    async def admit(self, user_id: str) -> None:
        """Count one import (or sample) of ``user_id`` against the throttle, before its body is
        read; raise :class:`RateLimited` past it."""
        if self._throttle is not None:
            await self._throttle.admit(user_id)

    async def import_lines(
        self,
        user_id: str,
        lines: Iterable[str | bytes],
        kind: str,
        on_progress: Callable[[int], None] | None = None,
        *,
        name: str | None = None,
    ) -> ImportResult:
        """Keep every good line, report every bad one with its number and why (the first
        :data:`MAX_REPORTED`, and how many in all). The records not stored yet are added as one
        batch, under ``name`` (the file's) if given."""
        counted = LineCounter(lines, on_progress)
        outcomes = (
            read_csv(counted, self.pricing) if kind == "csv" else read_jsonl(counted, self.pricing)
        )
        records: list[UsageRecord] = []
        rejected: list[tuple[int, str]] = []
        rejected_total = 0
        try:
            async for number, outcome in _in_turns(outcomes):
                if isinstance(outcome, str):
                    rejected_total += 1
                    if len(rejected) < MAX_REPORTED:
                        rejected.append((number, outcome))
                else:
                    records.append(outcome)
        except InputError as exc:
            # The file as a whole is unreadable (a CSV header without a required column): that
            # is line 1's fault, reported like any other bad line.
            return ImportResult(imported=0, rejected=[(1, exc.message)], rejected_total=1)
        counted.finish()
        added = await self._usage.add(user_id, records, source="import", name=name)
        while records:  # freed a part at a time: 100,000 records at once take about 20 ms
            del records[-_FREED_PER_TURN:]
            await asyncio.sleep(0)
        return ImportResult.of(added, rejected, rejected_total)

    async def import_body(
        self, user_id: str, chunks: Iterable[bytes], kind: str, *, name: str | None = None
    ) -> ImportResult:
        """Import an uploaded file, given as the chunks it arrived in (see :func:`lines_of`)."""
        return await self.import_lines(user_id, lines_of(chunks), kind, name=name)

    async def import_text(
        self, user_id: str, body: bytes, kind: str, *, name: str | None = None
    ) -> ImportResult:
        """Import a whole file held in memory."""
        return await self.import_body(user_id, (body,), kind, name=name)

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


async def _in_turns(items: Iterator[T]) -> AsyncIterator[T]:
    """``items``, giving the event loop a turn whenever :data:`TURN_S` has gone by."""
    turn_ends = time.perf_counter() + TURN_S
    for item in items:
        yield item
        if time.perf_counter() >= turn_ends:
            await asyncio.sleep(0)
            turn_ends = time.perf_counter() + TURN_S
