"""A user's usage data: one record per LLM call of their workload, and the views the agents read.

The store makes them from its rows and the importer from a file; the agents' pure analytics read
them. Neither direction needs the other: these types import nothing of either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, overload

__all__ = ["RecordsNotRead", "UsageRecord", "UsageSet", "UsageView"]


class UsageRecord(NamedTuple):
    """One LLM call of the user's workload, as imported (see PROTOCOL.md, usage records).

    A named tuple rather than a frozen dataclass: a user's first question builds all of their
    records from stored rows, and a tuple is made from a row in a fifth of the time (4,000
    records: 1.5 ms rather than 7-11 ms, every frozen field set through ``object.__setattr__``),
    at the same size and with the same attribute reads.
    """

    timestamp: int  # epoch milliseconds
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    cost_usd: float
    status: str = "ok"
    prompt_hash: str | None = None
    feature: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageSet(tuple[UsageRecord, ...]):
    """A user's records as read at one version of their data, with a memo for derived results.

    The store hands out the same ``UsageSet`` for as long as the data is unchanged, so what is
    computed from it once (an aggregate, a percentile table) can be kept in ``memo`` and reused
    by the next run; new data means a new set and an empty memo.
    """

    memo: dict[Any, Any]

    def __new__(cls, records: Iterable[UsageRecord] = ()) -> UsageSet:
        made = super().__new__(cls, records)
        made.memo = {}
        return made


class RecordsNotRead(Exception):
    """Raised by a :class:`UsageView` whose records are not read yet when something reads them:
    whoever can wait reads them (:meth:`UsageView.read`) and asks again."""


class UsageView(Sequence[UsageRecord]):
    """A user's usage data at one version, its records read only when something needs them.

    Its length and ``memo`` are there at once: the store fills the memo from the summary it
    keeps (``memo["usage_digest"]``), which answers most questions without a record. Reading a
    record (an index, an iteration) before :meth:`read` raises :class:`RecordsNotRead`; an
    async caller then awaits :meth:`read` (off the event loop, once per view whoever asks) and
    tries again, and the analyses' memoized results stay in the one memo.
    """

    __slots__ = ("_count", "_read", "_reading", "_records", "memo")

    def __init__(
        self,
        count: int,
        read: Callable[[], Awaitable[tuple[UsageRecord, ...]]] | None = None,
        records: tuple[UsageRecord, ...] | None = None,
    ) -> None:
        if (read is None) == (records is None):
            raise ValueError("a view has either its records or a way to read them")
        self._count = count if records is None else len(records)
        self._read = read
        self._records = records
        self._reading: asyncio.Future[tuple[UsageRecord, ...]] | None = None
        self.memo: dict[Any, Any] = {}

    @classmethod
    def of(cls, records: Iterable[UsageRecord]) -> UsageView:
        """A view of records already read."""
        return cls(0, records=tuple(records))

    @property
    def is_read(self) -> bool:
        """Whether the records are read (reading one raises nothing)."""
        return self._records is not None

    async def read(self) -> UsageView:
        """Read the records if they are not yet (one read, whoever asks meanwhile); the view."""
        if self._records is not None:
            return self
        reading = self._reading
        if reading is None:
            assert self._read is not None
            reading = self._reading = asyncio.ensure_future(self._read())
        try:
            records = await asyncio.shield(reading)
        except BaseException:
            # Failed (not merely this caller cancelled): the next caller tries afresh.
            if reading.done() and self._reading is reading:
                self._reading = None
            raise
        if len(records) != self._count:
            raise ValueError("the records read are not the ones the view counted")
        self._records = records
        return self

    def _rows(self) -> tuple[UsageRecord, ...]:
        if self._records is None:
            raise RecordsNotRead
        return self._records

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> UsageRecord: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[UsageRecord, ...]: ...
    def __getitem__(self, index: int | slice) -> UsageRecord | tuple[UsageRecord, ...]:
        return self._rows()[index]

    def __iter__(self) -> Iterator[UsageRecord]:
        return iter(self._rows())

    def __bool__(self) -> bool:
        return self._count > 0

    def __repr__(self) -> str:
        return f"UsageView({self._count} records, {'read' if self.is_read else 'not read'})"
