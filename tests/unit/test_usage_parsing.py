"""Reading usage files: one record's rules, JSONL and CSV line numbering, format detection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runwire.errors import InputError, UnsupportedMediaType
from runwire.usage.csv_reader import _CsvLines
from runwire.usage.importer import (
    MAX_LINE_BYTES,
    PROGRESS_EVERY,
    detect_format,
    file_format,
    lines_of,
    parse_csv,
    parse_jsonl,
    too_long,
)
from runwire.usage.pricing import PricingTable
from runwire.usage.validation import MAX_COST_USD, MAX_LATENCY_MS, parse_record

pytestmark = pytest.mark.unit

GOOD: dict[str, Any] = {
    "timestamp": "2025-03-01T12:00:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "latency_ms": 812.5,
}
MARCH_1_NOON_MS = 1_740_830_400_000
HEADER = "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms,cost_usd,feature\n"


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


def _with(**changes: Any) -> dict[str, Any]:
    record = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            record.pop(key)
        else:
            record[key] = value
    return record


def _problem(pricing: PricingTable, **changes: Any) -> str:
    with pytest.raises(InputError) as info:
        parse_record(_with(**changes), pricing)
    return info.value.message


# --- one record -------------------------------------------------------------------------------


def test_a_minimal_record_is_read_and_costed_from_the_price_table(pricing: PricingTable) -> None:
    record = parse_record(GOOD, pricing)
    assert record.timestamp == MARCH_1_NOON_MS
    assert (record.provider, record.model) == ("openai", "gpt-4o")
    assert (record.prompt_tokens, record.completion_tokens, record.latency_ms) == (1000, 500, 812.5)
    assert record.cost_usd == pytest.approx(1000 * 2.5e-6 + 500 * 10e-6)
    assert (record.status, record.prompt_hash, record.feature) == ("ok", None, None)


def test_a_given_cost_wins_and_optional_fields_are_kept(pricing: PricingTable) -> None:
    record = parse_record(
        _with(cost_usd=0.5, status="ERROR", prompt_hash=" ab12 ", feature="search", extra={"x": 1}),
        pricing,
    )
    assert (record.cost_usd, record.status, record.prompt_hash, record.feature) == (
        0.5,
        "error",
        "ab12",
        "search",
    )


def test_csv_style_strings_are_numbers(pricing: PricingTable) -> None:
    record = parse_record(
        _with(prompt_tokens="12", completion_tokens=" 3 ", latency_ms="7.5", cost_usd="0.25"),
        pricing,
    )
    assert (record.prompt_tokens, record.completion_tokens) == (12, 3)
    assert (record.latency_ms, record.cost_usd) == (7.5, 0.25)


def test_whole_floats_count_as_token_counts(pricing: PricingTable) -> None:
    assert (
        parse_record(_with(prompt_tokens=12.0, completion_tokens="4.0"), pricing).total_tokens == 16
    )


def test_an_offset_timestamp_is_converted_to_utc(pricing: PricingTable) -> None:
    record = parse_record(_with(timestamp="2025-03-01T14:00:00.250+02:00"), pricing)
    assert record.timestamp == MARCH_1_NOON_MS + 250


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt_tokens": 1.5}, "prompt_tokens must be a whole number, got 1.5"),
        ({"prompt_tokens": "1.5"}, "prompt_tokens must be a whole number"),
        ({"completion_tokens": -1}, "completion_tokens must be >= 0"),
        ({"completion_tokens": True}, "completion_tokens must be a number, got true"),
        ({"latency_ms": False}, "latency_ms must be a number, got false"),
        ({"latency_ms": "fast"}, "latency_ms must be a number, got 'fast'"),
        ({"latency_ms": [1]}, "latency_ms must be a number, got list"),
        ({"latency_ms": -0.5}, "latency_ms must be >= 0"),
        ({"latency_ms": float("nan")}, "latency_ms must be a finite number"),
        ({"latency_ms": 10**400}, "latency_ms is out of range"),
        ({"cost_usd": -1}, "cost_usd must be >= 0"),
        ({"status": "maybe"}, "status must be 'ok' or 'error', got 'maybe'"),
        ({"status": 1}, "status must be 'ok' or 'error'"),
        ({"status": [[["ok"]]]}, "status must be 'ok' or 'error', got an array"),
        ({"status": {"ok": 1}}, "status must be 'ok' or 'error', got an object"),
        ({"status": True}, "status must be 'ok' or 'error', got true"),
        ({"provider": 7}, "provider must be a string"),
        ({"model": ""}, "model is required"),
        ({"feature": 3}, "feature must be a string"),
        ({"timestamp": 1740830400}, "timestamp must be an RFC 3339 string"),
        ({"timestamp": "yesterday"}, "timestamp 'yesterday' is not RFC 3339"),
        ({"timestamp": "2025-03-01T12:00:00"}, "has no UTC offset"),
        ({"timestamp": ...}, "timestamp is required"),
        # What no database backend could keep (PostgreSQL refuses it where SQLite would not).
        ({"prompt_tokens": 2**31}, "prompt_tokens must be at most 2147483647, got 2147483648"),
        ({"completion_tokens": 10**30}, "completion_tokens must be at most 2147483647"),
        ({"provider": "p" * 101}, "provider is longer than 100 characters"),
        ({"model": "m" * 201}, "model is longer than 200 characters"),
        ({"prompt_hash": "h" * 201}, "prompt_hash is longer than 200 characters"),
        ({"feature": "f" * 201}, "feature is longer than 200 characters"),
        ({"model": "gpt\x00"}, "model must not contain the NUL character (U+0000)"),
        ({"feature": "\x00x"}, "feature must not contain the NUL character (U+0000)"),
        ({"model": "gpt\n4o"}, "model must be on one line"),
        ({"prompt_hash": "a\rb"}, "prompt_hash must be on one line"),
        ({"feature": "\ud800"}, "feature must be valid Unicode (it holds a lone surrogate)"),
    ],
)
def test_each_bad_field_is_named_with_the_reason(
    pricing: PricingTable, changes: dict[str, Any], message: str
) -> None:
    assert message in _problem(pricing, **changes)


LONG = "9" * 5000


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"prompt_tokens": "0.5" + "0" * 5000},
            f"prompt_tokens must be a whole number, got '0.5{'0' * 37}…'",
        ),
        (
            {"prompt_tokens": "-1." + "0" * 5000},
            f"prompt_tokens must be >= 0, got '-1.{'0' * 37}…'",
        ),
        ({"completion_tokens": -(10**4000)}, f"completion_tokens must be >= 0, got -1{'0' * 38}…"),
        ({"prompt_tokens": LONG}, f"prompt_tokens must be a finite number, got '{LONG[:40]}…'"),
        ({"latency_ms": LONG}, f"latency_ms must be a finite number, got '{LONG[:40]}…'"),
        ({"latency_ms": "-" + LONG}, f"latency_ms must be a finite number, got '-{LONG[:39]}…'"),
        ({"cost_usd": "-1" + "0" * 300}, f"cost_usd must be >= 0, got '-1{'0' * 38}…'"),
        ({"latency_ms": "x" + LONG}, f"latency_ms must be a number, got 'x{LONG[:39]}…'"),
        ({"status": LONG}, f"status must be 'ok' or 'error', got '{LONG[:40]}…'"),
        (
            {"timestamp": LONG},
            f"timestamp '{LONG[:40]}…' is not RFC 3339 (e.g. 2025-03-01T12:00:00Z)",
        ),
    ],
)
def test_a_long_value_is_echoed_cut_to_40_characters(
    pricing: PricingTable, changes: dict[str, Any], message: str
) -> None:
    # A CSV cell is any string: a 5,000-digit one is quoted by its start, not whole.
    assert _problem(pricing, **changes) == message


def test_a_csv_rejection_never_echoes_a_long_cell_whole(pricing: PricingTable) -> None:
    lines = [HEADER] + [
        _csv_row(**{name: value})
        for name in ("prompt_tokens", "completion_tokens", "latency_ms", "cost_usd")
        for value in (LONG, "-" + LONG, LONG + ".5")
    ]
    report = parse_csv(lines, pricing)
    assert report.imported == [] and len(report.rejected) == 12
    assert all(len(error) < 120 for _, error in report.rejected), report.rejected


NOW_MS = 1_764_590_400_000  # 2025-12-01T12:00:00Z


@pytest.mark.parametrize(
    ("timestamp", "problem"),
    [
        # Accepted once: every later run of its user then failed on "year 0 is out of range".
        ("0001-01-01T00:00:00+14:00", "is before 2000-01-01T00:00:00Z"),
        ("1999-12-31T23:59:59.999Z", "is before 2000-01-01T00:00:00Z"),
        ("2000-01-01T00:00:00Z", None),
        ("2000-01-01T01:00:00+01:00", None),
        ("2025-12-02T12:00:00Z", None),  # a day ahead: clocks and exports disagree a little
        ("2025-12-02T12:00:00.001Z", "is more than a day ahead of the server's clock"),
        ("9999-12-31T23:59:59-14:00", "is more than a day ahead of the server's clock"),
    ],
)
def test_a_time_must_lie_from_2000_to_a_day_ahead(
    pricing: PricingTable, timestamp: str, problem: str | None
) -> None:
    if problem is None:
        assert parse_record(_with(timestamp=timestamp), pricing, now_ms=NOW_MS).timestamp
        return
    with pytest.raises(InputError) as info:
        parse_record(_with(timestamp=timestamp), pricing, now_ms=NOW_MS)
    assert info.value.message == f"timestamp {timestamp!r} {problem}"


def test_latency_and_cost_have_a_ceiling_no_sum_can_overflow(pricing: PricingTable) -> None:
    assert parse_record(_with(latency_ms=MAX_LATENCY_MS, cost_usd=MAX_COST_USD), pricing)
    assert _problem(pricing, latency_ms=1e308) == (
        f"latency_ms must be at most {MAX_LATENCY_MS}, got 1e+308"
    )
    assert _problem(pricing, cost_usd="1e300") == (
        f"cost_usd must be at most {MAX_COST_USD}, got '1e300'"
    )


def test_every_problem_of_a_record_is_reported_at_once(pricing: PricingTable) -> None:
    message = _problem(pricing, provider=..., prompt_tokens=..., latency_ms=None)
    assert "provider is required" in message
    assert "prompt_tokens is required" in message
    assert "latency_ms is required" in message


def test_token_counts_are_exact_up_to_what_the_store_keeps(pricing: PricingTable) -> None:
    # The store keeps 32-bit counts; past them a line is rejected, not rounded or stored wrong.
    assert parse_record(_with(prompt_tokens=2**31 - 1), pricing).prompt_tokens == 2**31 - 1
    assert _problem(pricing, prompt_tokens=10**20) == (
        f"prompt_tokens must be at most {2**31 - 1}, got {10**20}"
    )


def test_an_unknown_model_without_a_cost_is_rejected_not_costed_at_zero(
    pricing: PricingTable,
) -> None:
    message = _problem(pricing, model="in-house-llm")
    assert message == "cost_usd missing and model 'in-house-llm' is not in the pricing table"
    assert parse_record(_with(model="in-house-llm", cost_usd=0.01), pricing).cost_usd == 0.01


# --- JSON Lines -------------------------------------------------------------------------------


def _line(**changes: Any) -> str:
    return json.dumps(_with(**changes)) + "\n"


def test_jsonl_keeps_good_lines_and_numbers_bad_ones_from_1(pricing: PricingTable) -> None:
    lines = [
        _line(),
        "\n",
        "{not json\n",
        "[1, 2]\n",
        _line(prompt_tokens=1.5),
        "   \n",
        _line(model="gpt-4o-mini"),
        '"text"\n',
        "null\n",
        "true\n",
        "3\n",
    ]
    report = parse_jsonl(lines, pricing)
    assert [r.model for r in report.imported] == ["gpt-4o", "gpt-4o-mini"]
    assert [number for number, _ in report.rejected] == [3, 4, 5, 8, 9, 10, 11]
    reasons = dict(report.rejected)
    assert reasons[3].startswith("invalid JSON:")
    assert reasons[4] == "expected a JSON object, got an array"
    assert "prompt_tokens must be a whole number" in reasons[5]
    assert reasons[8] == "expected a JSON object, got a string"
    assert reasons[9] == "expected a JSON object, got null"
    assert reasons[10] == "expected a JSON object, got a boolean"
    assert reasons[11] == "expected a JSON object, got a number"
    assert report.lines_read == 11
    assert (report.imported_count, report.rejected_count) == (2, 7)


def test_jsonl_reads_bytes_with_a_bom_and_rejects_non_utf8(pricing: PricingTable) -> None:
    lines = [b"\xef\xbb\xbf" + _line().encode(), b"\xff\xfe{}\n", _line().encode()]
    report = parse_jsonl(lines, pricing)
    assert report.imported_count == 2
    assert report.rejected == [(2, "line is not valid UTF-8")]


def test_jsonl_reports_progress_and_finishes_at_the_line_count(pricing: PricingTable) -> None:
    seen: list[int] = []
    parse_jsonl([_line()] * (PROGRESS_EVERY + 5), pricing, on_progress=seen.append)
    assert seen == [PROGRESS_EVERY, PROGRESS_EVERY + 5]
    seen.clear()
    parse_jsonl([_line()] * PROGRESS_EVERY, pricing, on_progress=seen.append)
    assert seen == [PROGRESS_EVERY]
    seen.clear()
    parse_jsonl([], pricing, on_progress=seen.append)
    assert seen == [0]


def test_report_public_summary_bounds_the_rejections(pricing: PricingTable) -> None:
    report = parse_jsonl(["oops\n"] * 3 + [_line()], pricing)
    body = report.public(max_rejections=2)
    assert body["imported"] == 1 and body["rejected"] == 3
    assert [r["line"] for r in body["rejections"]] == [1, 2]
    assert body["rejections_truncated"] is True


# --- CSV --------------------------------------------------------------------------------------


def _csv_row(**changes: Any) -> str:
    row = _with(**changes)
    keys = HEADER.strip().split(",")
    return ",".join(str(row.get(k, "")) for k in keys) + "\n"


def test_csv_header_is_line_1_and_rows_keep_their_physical_line_numbers(
    pricing: PricingTable,
) -> None:
    lines = [
        HEADER,
        _csv_row(),  # line 2
        "\n",  # line 3: blank, skipped
        _csv_row(prompt_tokens="1.5"),  # line 4
        _csv_row(model="in-house"),  # line 5: unknown model and no cost
        _csv_row(model="in-house", cost_usd="0.02", feature="search"),  # line 6
    ]
    report = parse_csv(lines, pricing)
    assert [(r.model, r.feature) for r in report.imported] == [
        ("gpt-4o", None),
        ("in-house", "search"),
    ]
    assert [number for number, _ in report.rejected] == [4, 5]
    assert "prompt_tokens must be a whole number" in report.rejected[0][1]
    assert "cost_usd missing and model 'in-house'" in report.rejected[1][1]
    assert report.lines_read == 6


def test_csv_columns_may_come_in_any_order_with_a_bom_and_extra_columns(
    pricing: PricingTable,
) -> None:
    lines = [
        "\ufeffModel,Provider,Timestamp,Latency_ms,Prompt_tokens,Completion_tokens,note\n",
        "gpt-4o,openai,2025-03-01T12:00:00Z,100,10,5,hello\n",
    ]
    report = parse_csv(lines, pricing)
    assert report.rejected == []
    assert report.imported[0].timestamp == MARCH_1_NOON_MS


def test_csv_multiline_quoted_value_is_numbered_by_its_first_line(pricing: PricingTable) -> None:
    lines = [
        HEADER.rstrip("\n") + ",prompt\n",
        '2025-03-01T12:00:00Z,openai,gpt-4o,10,5,100,,search,"a prompt\n',
        'spanning lines"\n',
        _csv_row(latency_ms=-1).rstrip("\n") + ',"another\n',  # line 4
        'prompt"\n',
    ]
    report = parse_csv(lines, pricing)
    assert [r.feature for r in report.imported] == ["search"]
    assert report.rejected[0] == (4, "latency_ms must be >= 0, got '-1'")
    assert [number for number, _ in report.rejected] == [4, 5]  # line 5's quote is stray now


def test_csv_row_with_more_values_than_columns_is_rejected(pricing: PricingTable) -> None:
    lines = [HEADER, _csv_row().rstrip("\n") + ",surprise\n", _csv_row().rstrip("\n") + ",,\n"]
    report = parse_csv(lines, pricing)
    assert report.rejected == [(2, "row has 9 values but the header has 8 columns")]
    assert report.imported_count == 1


def test_csv_missing_required_columns_fail_the_whole_file(pricing: PricingTable) -> None:
    with pytest.raises(InputError) as info:
        parse_csv(["timestamp,provider,tokens\n", "x,y,z\n"], pricing)
    message = info.value.message
    assert "model, prompt_tokens, completion_tokens, latency_ms" in message
    assert "found: timestamp, provider, tokens" in message


def test_csv_oversized_field_is_rejected_and_reading_goes_on(pricing: PricingTable) -> None:
    lines = [HEADER, _csv_row(feature="x" * 200_000), _csv_row()]
    report = parse_csv(lines, pricing)
    assert [number for number, _ in report.rejected] == [2]
    assert report.rejected[0][1].startswith("malformed CSV: field larger than field limit")
    assert report.imported_count == 1


def test_empty_csv_imports_nothing(pricing: PricingTable) -> None:
    seen: list[int] = []
    report = parse_csv([], pricing, on_progress=seen.append)
    assert (report.imported, report.rejected, seen) == ([], [], [0])


def test_csv_reports_progress(pricing: PricingTable) -> None:
    seen: list[int] = []
    parse_csv([HEADER] + [_csv_row()] * PROGRESS_EVERY, pricing, on_progress=seen.append)
    assert seen == [PROGRESS_EVERY, PROGRESS_EVERY + 1]


# --- format detection -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "filename", "expected"),
    [
        ("application/x-ndjson", None, "jsonl"),
        ("application/jsonl; charset=utf-8", "data.csv", "jsonl"),
        ("Application/JSON-Lines", None, "jsonl"),
        ("text/csv; charset=utf-8", None, "csv"),
        (None, "calls.JSONL", "jsonl"),
        ("application/octet-stream", "calls.ndjson", "jsonl"),
        ("application/vnd.ms-excel", "export.csv", "csv"),
        ("", "dir/export.csv", "csv"),
    ],
)
def test_format_comes_from_the_content_type_or_else_the_file_name(
    content_type: str | None, filename: str | None, expected: str
) -> None:
    assert detect_format(content_type, filename) == expected


@pytest.mark.parametrize(
    ("content_type", "filename", "named"),
    [
        ("application/pdf", "calls.csv", "content type 'application/pdf'"),
        ("text/plain", "notes.txt", "file name 'notes.txt'"),
        (None, None, "no content type"),
    ],
)
def test_other_formats_are_unsupported(
    content_type: str | None, filename: str | None, named: str
) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        detect_format(content_type, filename)
    assert named in info.value.message
    assert "text/csv" in info.value.message and "application/x-ndjson" in info.value.message


def test_a_local_file_is_read_by_its_name_and_refused_in_a_files_terms() -> None:
    assert [file_format(n) for n in ("a.jsonl", "b.NDJSON", "dir/c.csv")] == ["jsonl"] * 2 + ["csv"]
    with pytest.raises(InputError) as info:
        file_format("/data/calls.txt")
    assert info.value.message == (
        "cannot import 'calls.txt': a usage file is JSON Lines, named *.jsonl (or *.ndjson), "
        "or CSV, named *.csv"
    )


def test_a_stray_quote_costs_its_own_line_not_the_rest_of_the_file(pricing: PricingTable) -> None:
    lines = [
        HEADER,
        '2025-03-01T12:00:00Z,openai,gpt-4o,10,5,100,,"5 inch screen\n',  # line 2: never closed
        _csv_row(feature="after"),  # line 3
        _csv_row(feature="and after"),  # line 4
    ]
    report = parse_csv(lines, pricing)
    assert [r.feature for r in report.imported] == ["after", "and after"]
    assert report.rejected == [(2, "feature must be on one line")]


def test_lines_are_read_again_at_most_as_many_times_as_the_file_has_lines() -> None:
    # Python's csv pairs quotes, so a file cannot make every row run long; still, reading the
    # lines after each rejected row again must never grow past linear time. Past the budget a
    # rejection says which lines went with it.
    lines = _CsvLines(["a\n", "b\n", "c\n", "d\n", "e\n"])
    assert (lines.begin_row(), next(lines), next(lines), next(lines)) == (1, "a\n", "b\n", "c\n")
    assert lines.again() == ""  # 2 lines again, 3 read so far
    assert (lines.begin_row(), next(lines), next(lines), next(lines)) == (2, "b\n", "c\n", "d\n")
    assert lines.again() == ""  # 4 lines again, 4 read so far
    assert (lines.begin_row(), next(lines), next(lines), next(lines)) == (3, "c\n", "d\n", "e\n")
    assert lines.again() == " (its quoted value ran to line 5, unread)"  # 6 would be past 5
    assert (lines.begin_row(), list(lines)) == (6, [])
    lines = _CsvLines(["one line\n"])
    assert (lines.begin_row(), next(lines), lines.again()) == (1, "one line\n", "")


# --- lines of an upload, and lines too long to read -------------------------------------------


def test_an_upload_is_split_at_newlines_only_whatever_its_chunks() -> None:
    body = 'a\n{"m":"x\u2028y"}\r\n'.encode() + b"\xff\n\xff\nlast"  # \xff: not UTF-8
    expected = ["a\n", '{"m":"x\u2028y"}\r\n', "\ufffd\n", "\ufffd\n", "last"]
    for size in (1, 2, 3, 7, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert list(lines_of(chunks)) == expected
    assert list(lines_of([])) == [] and list(lines_of([b"", b"\n"])) == ["\n"]


def test_a_line_longer_than_the_limit_is_rejected_unread(pricing: PricingTable) -> None:
    huge = b'{"x":"' + b"y" * MAX_LINE_BYTES + b'"}\n'
    [passed_on] = list(lines_of([huge[:1000], huge[1000:]]))
    # Undecoded, and cut just past the limit: the reader refuses it by its size alone.
    assert passed_on == huge[: MAX_LINE_BYTES + 1]
    assert list(lines_of([huge + b"{}\n"])) == [passed_on, "{}\n"]
    wide = '{"x":"' + "\u20ac" * (MAX_LINE_BYTES // 3) + '"}\n'  # fewer characters than bytes
    report = parse_jsonl([_line(), passed_on, wide, _line(model="gpt-4o-mini")], pricing)
    assert report.imported_count == 2
    assert report.rejected == [
        (2, f"line is longer than {MAX_LINE_BYTES} bytes"),
        (3, f"line is longer than {MAX_LINE_BYTES} bytes"),
    ]
    assert not too_long("x" * (MAX_LINE_BYTES // 4)) and too_long(b"x" * (MAX_LINE_BYTES + 1))


def test_a_csv_line_longer_than_the_limit_costs_that_line(pricing: PricingTable) -> None:
    long_cell = "x" * (MAX_LINE_BYTES + 1)
    lines = [
        HEADER,
        _csv_row(feature="a"),
        f"{long_cell}\n",  # line 3
        _csv_row(feature="b"),
        _csv_row().rstrip("\n") + ',"runs on\n',  # line 5: its quote runs into line 6
        f"{long_cell}\n",
        _csv_row(feature="c"),
    ]
    report = parse_csv(lines, pricing)
    assert [r.feature for r in report.imported] == ["a", "b", "c"]
    assert report.rejected == [
        (3, f"line is longer than {MAX_LINE_BYTES} bytes"),
        (5, "a quoted value runs on into line 6"),
        (6, f"line is longer than {MAX_LINE_BYTES} bytes"),
    ]
