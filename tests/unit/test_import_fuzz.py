"""Usage files under fuzzing: a bad line never stops an import, whatever the line holds.

docs/protocol.md ("Usage records") promises that each bad line is rejected with its number and
why, and the good lines are kept. Whatever a line holds (any bytes, any text, JSON nested past
the decoder's recursion, integers past Python's digit limit, lone surrogates, NUL, values of
every type), the readers return: every line that is not blank is either read or rejected once,
the known-good lines among them are read, every message can be encoded into a reply, and every
record read can be stored by every database backend.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runwire.domain.clock import now_ms
from runwire.domain.usage import UsageRecord
from runwire.errors import InputError
from runwire.usage.importer import CSV_REQUIRED_COLUMNS, ImportReport, parse_csv, parse_jsonl
from runwire.usage.pricing import PricingTable
from runwire.usage.validation import MAX_TOKENS, STATUSES, in_bounds

pytestmark = pytest.mark.unit

# Lean enough for the unit layer (a fraction of a second each); no wall-clock deadline, since
# the machine is shared and a slow example is not a failure of the reader.
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRICING = PricingTable.load()
GOOD: dict[str, Any] = {
    "timestamp": "2026-11-01T10:00:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_tokens": 1000,
    "completion_tokens": 200,
    "latency_ms": 850,
}
GOOD_LINE = json.dumps(GOOD)
TEXT_CHARS = {"provider": 100, "model": 200, "prompt_hash": 200, "feature": 200}
INT64 = 2**63


def encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def storable(record: UsageRecord) -> bool:
    """What SQLite and PostgreSQL both keep as given, by the columns of store/schema.py."""
    texts = {name: getattr(record, name) for name in TEXT_CHARS}
    return (
        isinstance(record.timestamp, int)
        and -INT64 <= record.timestamp < INT64
        and all(
            (value is None and name in ("prompt_hash", "feature"))
            or (
                isinstance(value, str)
                and 0 < len(value) <= TEXT_CHARS[name]
                and encodable(value)
                and "\x00" not in value
            )
            for name, value in texts.items()
        )
        and all(
            isinstance(n, int) and 0 <= n <= MAX_TOKENS
            for n in (record.prompt_tokens, record.completion_tokens)
        )
        and all(math.isfinite(x) and x >= 0 for x in (record.latency_ms, record.cost_usd))
        and record.status in STATUSES
    )


def check_report(report: ImportReport, lines: int) -> None:
    numbers = [number for number, _ in report.rejected]
    assert numbers == sorted(set(numbers)), "a line is rejected once, in file order"
    assert all(1 <= number <= lines for number in numbers)
    for number, error in report.rejected:
        # Bounded: at most ten fields, each quoting at most 40 characters (escaped).
        assert error and encodable(error) and len(error) <= 5000, (number, error)
    for record in report.imported:
        assert storable(record), record
        assert in_bounds(record, now_ms()), record  # what the agents analyse


# -- what hostile lines are made of --

# Lone surrogates (U+D800..U+DFFF) reach Python strings through JSON escapes like "\udc00".
any_text = st.text(st.characters(codec=None) | st.characters(categories=["Cs"]), max_size=20)
long_digits = st.sampled_from([40, 4300, 4301, 5000]).map(lambda n: "9" * n)
odd_number = st.sampled_from(
    [2**31 - 1, 2**31, -1, 10**300, 10**4000, -(10**4000), 1.5, 1e308, -0.0]
) | st.floats(allow_nan=True, allow_infinity=True)
odd_text = (
    any_text
    | long_digits
    | long_digits.map(lambda d: "-" + d)
    | st.sampled_from(["", " ", "\x00", "\ud800", "a\udfffb", "0001-01-01T00:00:00+14:00"])
    | st.sampled_from([0, 100, 101, 200, 201, 5000]).map(lambda n: "x" * n)
)
odd_scalar = st.none() | st.booleans() | st.integers() | odd_number | odd_text
json_value = st.recursive(
    odd_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=6,
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
timestamp = st.datetimes(timezones=offsets).map(lambda d: d.isoformat()) | st.sampled_from(
    ["2026-11-01T10:00:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
)
# Each field: a plausible value or any scalar (a container is one more type, named alike).
field_value = {
    "timestamp": timestamp | odd_scalar,
    "provider": st.sampled_from(["openai", "anthropic", "acme"]) | odd_scalar,
    "model": st.sampled_from(["gpt-4o", "claude-3-5-haiku", "acme-1"]) | odd_scalar,
    "prompt_tokens": st.integers(-5, 2**32) | odd_scalar,
    "completion_tokens": st.integers(-5, 2**32) | odd_scalar,
    "latency_ms": st.floats() | odd_scalar,
    "cost_usd": st.floats() | odd_scalar,
    "status": st.sampled_from(["ok", "error", "ERROR", "maybe", [], {}]) | odd_scalar,
    "prompt_hash": odd_scalar,
    "feature": odd_scalar,
}


@st.composite
def record_like(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON object shaped like a record: some fields good, some of any value, and more."""
    body = dict(GOOD) if draw(st.booleans()) else {}
    for name, values in field_value.items():
        if draw(st.integers(0, 3)) == 0:
            body[name] = draw(values)
    return {**draw(st.dictionaries(any_text, json_value, max_size=1)), **body}


@st.composite
def as_line(draw: st.DrawFn, body: Any) -> str | bytes:
    """A JSON value as one line of a file: text or bytes, escaped or not, maybe damaged."""
    text = json.dumps(body, ensure_ascii=draw(st.booleans()), allow_nan=True)
    text = text.replace("\n", " ")
    damage = draw(st.sampled_from(["none", "none", "cut", "insert"]))
    if damage == "cut" and text:
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif damage == "insert":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["\x00", "\\", '"', "{", "]", ","])) + text[at:]
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")  # a surrogate's bytes are not UTF-8
    return text


def nested(depth: int) -> str:
    return '{"timestamp":"2026-11-01T10:00:00Z","x":' + "[" * depth + "]" * depth + "}"


def huge_int(digits: int) -> str:
    return GOOD_LINE[:-1] + ', "prompt_tokens": ' + "9" * digits + "}"


depth = st.sampled_from([1, 50, 900, 1000, 1100, 5000])
surrogate_line = GOOD_LINE[:-1] + ', "feature": "\\ud800"}'
hostile_line = (
    record_like().flatmap(as_line)
    | json_value.flatmap(as_line)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | depth.map(nested)
    | depth.map(lambda n: '{"a":' * n + "1" + "}" * n)
    | st.sampled_from([4300, 4301, 6000]).map(huge_int)
    | st.just(surrogate_line)
)


def blank(line: str | bytes, first: bool) -> bool:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return not (line.removeprefix("\ufeff") if first else line).strip()


# -- the properties --


@settings(FUZZ)
@given(
    hostile=st.lists(hostile_line, min_size=1, max_size=3),
    good_at=st.lists(st.integers(0, 3), max_size=2),
)
@example(hostile=[nested(5000)], good_at=[0, 1])  # deeper than the JSON decoder recurses
@example(hostile=[huge_int(5000)], good_at=[0, 1])  # past Python's 4,300-digit limit
@example(hostile=[surrogate_line], good_at=[0, 1])  # no database can store "\ud800"
@example(hostile=['{"feature": "\\udfff", "model": "\\ud83d"}'], good_at=[])
def test_any_jsonl_line_is_read_or_rejected_and_the_good_ones_are_kept(
    hostile: list[str | bytes], good_at: list[int]
) -> None:
    lines: list[str | bytes] = list(hostile)
    for at in sorted(good_at, reverse=True):
        lines.insert(min(at, len(lines)), GOOD_LINE)
    good = {i + 1 for i, line in enumerate(lines) if line == GOOD_LINE}
    report = parse_jsonl(lines, PRICING)
    check_report(report, len(lines))
    assert not good & {number for number, _ in report.rejected}
    assert report.imported_count >= len(good)
    read = sum(1 for i, line in enumerate(lines) if not blank(line, i == 0))
    assert report.imported_count + report.rejected_count == read


csv_cell = (
    odd_text
    | st.integers().map(str)
    | st.sampled_from(['"', '""', "a,b", '"a\nb"', "\r", "x" * 140_000])
    | st.just(GOOD["timestamp"])
)


@settings(FUZZ)
@given(
    header=st.permutations([*CSV_REQUIRED_COLUMNS, "cost_usd", "status", "feature"])
    | st.lists(any_text, max_size=4),
    rows=st.lists(st.lists(csv_cell, max_size=10), max_size=3),
    good_at=st.lists(st.integers(0, 3), max_size=2),
)
@example(header=list(CSV_REQUIRED_COLUMNS), rows=[["9" * 5000] * 6], good_at=[0])
@example(header=["\ud800", "timestamp"], rows=[], good_at=[])  # quoted in the header's error
def test_any_csv_row_is_read_or_rejected_and_the_good_ones_are_kept(
    header: list[str], rows: list[list[str]], good_at: list[int]
) -> None:
    good_row = ",".join(str(GOOD.get(name, "")) for name in header)
    lines = [",".join(header) + "\n"] + [",".join(row) + "\n" for row in rows]
    for at in sorted(good_at, reverse=True):
        lines.insert(1 + min(at, len(rows)), good_row + "\n")
    text = "".join(lines)
    try:
        # Split as an upload is: at "\n" only.
        report = parse_csv([line + "\n" for line in text.split("\n")], PRICING)
    except InputError as exc:
        # Only a header without a required column fails the file as a whole.
        assert not set(CSV_REQUIRED_COLUMNS) <= {h.strip().lower() for h in header}
        assert encodable(exc.message)
        return
    check_report(report, text.count("\n") + 1)
    good = {i + 1 for i, line in enumerate(text.split("\n")) if line == good_row}
    if set(header) >= set(CSV_REQUIRED_COLUMNS):
        # Even after a stray quote: a value that runs over the good row's line is refused (no
        # column runwire keeps holds a line break), and the lines after its first read again.
        assert not good & {number for number, _ in report.rejected}
        assert report.imported_count >= len(good)
