"""Validation of one usage record (one LLM call) as it arrives from JSONL or CSV.

The rules are PROTOCOL.md's "Usage records". Values from CSV are all strings, so numbers may arrive
as ``"12"``; an empty CSV cell counts as absent. Every problem of a record is reported at once,
each naming its field, so a user fixes a line in one go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import String

from runwire.domain.clock import now_ms as clock_ms
from runwire.domain.usage import UsageRecord
from runwire.errors import InputError
from runwire.store.schema import usage_records
from runwire.usage.pricing import PricingTable

__all__ = [
    "AHEAD_MS",
    "EARLIEST_MS",
    "MAX_COST_USD",
    "MAX_LATENCY_MS",
    "MAX_TOKENS",
    "STATUSES",
    "in_bounds",
    "parse_record",
]

STATUSES = ("ok", "error")
_MISSING = object()
MAX_TOKENS = 2**31 - 1
"""The most tokens one call may count: the store keeps counts as 32-bit integers."""
EARLIEST_MS = 946_684_800_000
"""2000-01-01T00:00:00Z: the earliest time a call may have (no LLM API is older)."""
AHEAD_MS = 86_400_000
"""How far past the server's clock a call may be: a day (clocks and exports disagree a little)."""
MAX_COST_USD = 1_000_000
"""The most one call may cost: far above any list price (2**31 tokens at the dearest rate cost
about $300,000), and low enough that no sum over a user's calls can overflow."""
MAX_LATENCY_MS = 7 * 86_400_000
"""The longest one call may take: a week (a batch API's calls take up to a day)."""
_MAX_NUMBER = {"latency_ms": MAX_LATENCY_MS, "cost_usd": MAX_COST_USD}


def _column_chars(name: str) -> int:
    kind = usage_records.c[name].type
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


# The longest text each field may hold: its column's length, so no backend truncates or refuses.
_MAX_CHARS = {name: _column_chars(name) for name in ("provider", "model", "prompt_hash", "feature")}


def parse_record(
    obj: Mapping[str, Any], pricing: PricingTable, *, now_ms: int | None = None
) -> UsageRecord:
    """Validate one record and return it; raise :class:`InputError` naming every bad field.

    ``timestamp`` becomes epoch milliseconds, and must lie from :data:`EARLIEST_MS` to a day
    past ``now_ms`` (the current time by default). ``cost_usd``, when absent, is computed from
    ``pricing``; a record whose model the table does not know must then carry its own cost, since
    silently costing it at zero would understate the spend. A record returned is
    :func:`in_bounds`.
    """
    problems: list[str] = []

    def check(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _FieldError as exc:
            problems.append(str(exc))
            return None

    timestamp = check(_timestamp, _get(obj, "timestamp"), clock_ms() if now_ms is None else now_ms)
    provider = check(_required_text, obj, "provider")
    model = check(_required_text, obj, "model")
    prompt_tokens = check(_count, obj, "prompt_tokens")
    completion_tokens = check(_count, obj, "completion_tokens")
    latency_ms = check(_required_number, obj, "latency_ms")
    cost_usd = check(_optional_number, obj, "cost_usd")
    status = check(_status, _get(obj, "status"))
    prompt_hash = check(_optional_text, obj, "prompt_hash")
    feature = check(_optional_text, obj, "feature")
    if problems:
        raise InputError("; ".join(problems))

    if cost_usd is None:
        cost_usd = pricing.cost(provider, model, prompt_tokens, completion_tokens)
        if cost_usd is None:
            raise InputError(f"cost_usd missing and model {model!r} is not in the pricing table")
    return UsageRecord(
        timestamp=timestamp,
        provider=provider,
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        status=status,
        prompt_hash=prompt_hash,
        feature=feature,
    )


class _FieldError(Exception):
    """One field's problem; collected into a single InputError for the record."""


def _get(obj: Mapping[str, Any], key: str) -> Any:
    """The value, or _MISSING for absent, null and empty-string (an empty CSV cell)."""
    value = obj.get(key, _MISSING)
    if value is None or (isinstance(value, str) and not value.strip()):
        return _MISSING
    return value


def in_bounds(record: UsageRecord, now_ms: int) -> bool:
    """Whether ``record`` is one :func:`parse_record` could return at ``now_ms``: a time from
    2000 to a day ahead, counts, latency and cost within their ranges. The agents analyse only
    such records, so a record stored some other way (or before these bounds) cannot derail them.
    """
    return (
        EARLIEST_MS <= record.timestamp <= now_ms + AHEAD_MS
        and 0 <= record.prompt_tokens <= MAX_TOKENS
        and 0 <= record.completion_tokens <= MAX_TOKENS
        and 0 <= record.latency_ms <= MAX_LATENCY_MS  # NaN fails every comparison
        and 0 <= record.cost_usd <= MAX_COST_USD
    )


def _timestamp(value: Any, now_ms: int) -> int:
    if value is _MISSING:
        raise _FieldError("timestamp is required")
    if not isinstance(value, str):
        raise _FieldError("timestamp must be an RFC 3339 string, e.g. 2025-03-01T12:00:00Z")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _FieldError(
            f"timestamp {_shown(value)} is not RFC 3339 (e.g. 2025-03-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise _FieldError(f"timestamp {_shown(value)} has no UTC offset (add Z or +00:00)")
    # Aware datetimes subtract exactly: no year-0 or year-10000 intermediate, whatever the offset.
    ms = int(moment.timestamp() * 1000)
    if ms < EARLIEST_MS:
        raise _FieldError(f"timestamp {_shown(value)} is before 2000-01-01T00:00:00Z")
    if ms > now_ms + AHEAD_MS:
        raise _FieldError(
            f"timestamp {_shown(value)} is more than a day ahead of the server's clock"
        )
    return ms


def _required_text(obj: Mapping[str, Any], key: str) -> str:
    text = _optional_text(obj, key)
    if text is None:
        raise _FieldError(f"{key} is required")
    return text


def _optional_text(obj: Mapping[str, Any], key: str) -> str | None:
    value = _get(obj, key)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise _FieldError(f"{key} must be a string")
    text = value.strip()
    limit = _MAX_CHARS[key]
    if len(text) > limit:
        raise _FieldError(f"{key} is longer than {limit} characters")
    if "\x00" in text:  # PostgreSQL cannot store it; refused on every backend alike
        raise _FieldError(f"{key} must not contain the NUL character (U+0000)")
    if "\n" in text or "\r" in text:
        # No name or fingerprint holds a line break; in CSV, one is a stray quote's doing (the
        # rows after it read into this value), which read_csv then reads again as rows.
        raise _FieldError(f"{key} must be on one line")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A JSON escape such as "\ud800" without its pair: no database can store it as text.
        raise _FieldError(f"{key} must be valid Unicode (it holds a lone surrogate)") from None
    return text


def _count(obj: Mapping[str, Any], key: str) -> int:
    value = _get(obj, key)
    if value is _MISSING:
        raise _FieldError(f"{key} is required")
    if isinstance(value, int) and not isinstance(value, bool):
        count = value  # exact, however large: float() would overflow or round
    else:
        number = _as_number(key, value)
        # Exporters such as pandas write whole numbers as 12.0; a fraction of a token is an error.
        if not number.is_integer():
            raise _FieldError(f"{key} must be a whole number, got {_shown(value)}")
        count = int(number)
    if count < 0:
        raise _FieldError(f"{key} must be >= 0, got {_shown(value)}")
    if count > MAX_TOKENS:
        raise _FieldError(f"{key} must be at most {MAX_TOKENS}, got {_shown(value)}")
    return count


def _required_number(obj: Mapping[str, Any], key: str) -> float:
    number = _optional_number(obj, key)
    if number is None:
        raise _FieldError(f"{key} is required")
    return number


def _optional_number(obj: Mapping[str, Any], key: str) -> float | None:
    value = _get(obj, key)
    if value is _MISSING:
        return None
    number = _as_number(key, value)
    if number < 0:
        raise _FieldError(f"{key} must be >= 0, got {_shown(value)}")
    if number > _MAX_NUMBER[key]:
        raise _FieldError(f"{key} must be at most {_MAX_NUMBER[key]}, got {_shown(value)}")
    return number


def _as_number(key: str, value: Any) -> float:
    # bool is an int subclass in Python; true/false in a numeric field is a mistake, not 1/0.
    if isinstance(value, bool):
        raise _FieldError(f"{key} must be a number, got {str(value).lower()}")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond float range
            raise _FieldError(f"{key} is out of range") from None
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise _FieldError(f"{key} must be a number, got {_shown(value)}") from None
    else:
        raise _FieldError(f"{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise _FieldError(f"{key} must be a finite number, got {_shown(value)}")
    return number


def _status(value: Any) -> str:
    if value is _MISSING:
        return "ok"
    if isinstance(value, str) and value.strip().lower() in STATUSES:
        return value.strip().lower()
    raise _FieldError(f"status must be 'ok' or 'error', got {_shown(value)}")


_SHOWN_CHARS = 40


def _shown(value: Any) -> str:
    """``value`` as a rejection quotes it: a string in quotes, a number as written, either cut
    to its first 40 characters with ``…`` (a CSV cell may hold 5,000 digits; its start names it).
    """
    if isinstance(value, str):
        quoted = repr(value[:_SHOWN_CHARS])
        return quoted if len(value) <= _SHOWN_CHARS else f"{quoted[:-1]}…{quoted[-1]}"
    if isinstance(value, bool) or value is None:
        return "true" if value else "false" if value is not None else "null"
    if isinstance(value, list | dict):  # never printed whole: it may be long or deeply nested
        return "an array" if isinstance(value, list) else "an object"
    try:
        text = str(value)
    except ValueError:  # an integer past Python's digit limit for str()
        return "a number too long to show"
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "…"
