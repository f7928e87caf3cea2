"""What the store holds, as plain immutable records (no SQL types leak out of the store)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, overload

import orjson

from runwire.events.model import stamp_ms

__all__ = [
    "FINAL_STATUSES",
    "Message",
    "RecordsNotRead",
    "RunRecord",
    "ServiceClient",
    "ThreadRecord",
    "UsageRecord",
    "UsageSet",
    "UsageView",
    "User",
    "iso_from_ms",
    "new_epoch",
    "new_id",
    "now_ms",
]


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds → RFC 3339 UTC string with milliseconds."""
    return stamp_ms(ms)


def new_id(prefix: str) -> str:
    """An opaque, unguessable id with a readable prefix (``thr_``, ``run_``, ``msg_``, ``usr_``)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def new_epoch() -> str:
    """A run's epoch: short, random and opaque (8 hex digits; never contains ``:``)."""
    return secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``email`` is the address it signs in with; a user of an outside issuer
    (``issuer`` set) signs in there, and its ``outside_email`` is the address that issuer vouches
    for (None when it names none)."""

    id: str
    email: str
    password_hash: str = field(repr=False)
    created_at: int
    issuer: str | None = None
    outside_email: str | None = None

    def public(self) -> dict[str, Any]:
        email = self.outside_email if self.issuer is not None else self.email
        return {"id": self.id, "email": email}


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    id: str
    user_id: str
    title: str
    created_at: int
    updated_at: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "created_at": iso_from_ms(self.created_at),
            "updated_at": iso_from_ms(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    thread_id: str
    user_id: str
    role: str
    content: str
    created_at: int
    run_id: str | None = None
    client_message_id: str | None = None
    partial: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "role": self.role,
            "content": self.content,
            "run_id": self.run_id,
            "client_message_id": self.client_message_id,
            "partial": self.partial,
            "created_at": iso_from_ms(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A service registered to get service tokens (docs/auth.md, "Service accounts"): it proves
    who it is with a secret (``secret_hash``) or with assertions its private key signs
    (``public_key``, PEM), never both."""

    id: str
    name: str
    scopes: tuple[str, ...]
    audience: str
    created_at: int
    secret_hash: str | None = field(default=None, repr=False)
    public_key: str | None = None
    disabled_at: int | None = None

    @property
    def auth_method(self) -> str:
        """How it authenticates, by RFC 7591's names."""
        return "private_key_jwt" if self.public_key is not None else "client_secret"


FINAL_STATUSES = ("completed", "failed", "cancelled")
"""Run statuses after which nothing more happens to the run."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    thread_id: str
    user_id: str
    message_id: str
    status: str
    created_at: int
    epoch: str
    last_seq: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    trimmed_at: int | None = None  # when retention deleted the run's events
    # What the run's model turns took; None for a run answered offline.
    model_name: str | None = None
    model_requests: int | None = None
    model_prompt_tokens: int | None = None
    model_completion_tokens: int | None = None
    model_cost_usd: float | None = None
    # The quality gate's verdict on the answer (agents/quality.py); None without one.
    quality_score: float | None = None
    quality_outcome: str | None = None
    quality_reasons: str | None = None  # JSON: [{reason, message}]

    @property
    def status_is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "message_id": self.message_id,
            "status": self.status,
            "last_seq": self.last_seq,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "created_at": iso_from_ms(self.created_at),
            "started_at": iso_from_ms(self.started_at) if self.started_at else None,
            "ended_at": iso_from_ms(self.ended_at) if self.ended_at else None,
            "model_usage": self.model_usage(),
            "quality": self.quality(),
        }

    def quality(self) -> dict[str, Any] | None:
        """The quality gate's verdict on the run's answer: ``score``, ``outcome`` (passed,
        replaced, failed) and ``reasons`` ([{reason, message}]); None without one."""
        if self.quality_outcome is None:
            return None
        return {
            "score": self.quality_score,
            "outcome": self.quality_outcome,
            "reasons": orjson.loads(self.quality_reasons or "[]"),
        }

    def model_usage(self) -> dict[str, Any] | None:
        """The tokens and cost of the run's model turns, as the ``model_usage`` event has them."""
        if self.model_name is None:
            return None
        prompt, completion = self.model_prompt_tokens or 0, self.model_completion_tokens or 0
        return {
            "model": self.model_name,
            "requests": self.model_requests or 0,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost_usd": self.model_cost_usd,
        }


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
