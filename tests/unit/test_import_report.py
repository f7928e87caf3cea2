"""A line's outcome and the report of an import (usage/report.py): a valid object is a record,
an invalid one the reason it is rejected, never an exception that would stop the import."""

from __future__ import annotations

import pytest

from runwire.domain.usage import UsageRecord
from runwire.usage.pricing import PricingTable
from runwire.usage.report import ImportReport, record_or_reason

pytestmark = pytest.mark.unit

GOOD = {
    "timestamp": "2025-03-01T12:00:00Z",
    "provider": "openai",
    "model": "gpt-4o",
    "prompt_tokens": 1000,
    "completion_tokens": 500,
    "latency_ms": 812.5,
}


def test_a_valid_object_is_its_record_and_an_invalid_one_its_reason() -> None:
    pricing = PricingTable.load()
    record = record_or_reason(GOOD, pricing)
    assert isinstance(record, UsageRecord) and record.prompt_tokens == 1000
    reason = record_or_reason({**GOOD, "prompt_tokens": -1}, pricing)
    assert isinstance(reason, str) and "prompt_tokens" in reason


def test_a_report_counts_what_it_holds_and_lists_rejections_up_to_the_cap() -> None:
    report = ImportReport(rejected=[(2, "bad"), (5, "worse")], lines_read=6)
    assert (report.imported_count, report.rejected_count) == (0, 2)
    assert report.public(max_rejections=2) == {
        "imported": 0,
        "rejected": 2,
        "rejections": [{"line": 2, "error": "bad"}, {"line": 5, "error": "worse"}],
        "rejections_truncated": False,
    }
    assert report.public(max_rejections=1)["rejections"] == [{"line": 2, "error": "bad"}]
    assert report.public(max_rejections=1)["rejections_truncated"] is True
