"""Triage: is there enough usage data to analyse, and what is the question mainly about?"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runwire.agents import analytics
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count
from runwire.agents.state import Focus, RunState
from runwire.store.records import UsageRecord, UsageSet, now_ms
from runwire.usage.records import in_bounds

__all__ = ["MIN_RECORDS", "Triage", "analysable", "detect_focus"]

#: Below this many calls, percentiles and monthly estimates would mislead more than inform.
MIN_RECORDS = 10

# Checked in the question; the earliest mention wins, so "latency and cost?" leads with latency.
_KEYWORDS: dict[Focus, tuple[str, ...]] = {
    Focus.LATENCY: (
        "latency",
        "slow",
        "fast",
        "speed",
        "p50",
        "p95",
        "p99",
        "percentile",
        "response time",
        "wait",
    ),
    Focus.ERRORS: ("error", "fail", "reliab", "outage", "timeout", "timing out", "rate limit"),
    Focus.CACHING: ("cache", "caching", "repeat", "duplicate"),
    Focus.COST: ("cost", "spend", "cheap", "sav", "bill", "money", "price", "expensive", "$"),
}


def analysable(records: Sequence[UsageRecord], at_ms: int) -> Sequence[UsageRecord]:
    """The records the analyses use: those an import would accept at ``at_ms`` (see
    :func:`runwire.usage.records.in_bounds`).

    Records stored before the import checked these bounds, or stored some other way, may hold a
    time in year 1 or a cost near the largest float, which no analysis can use (a date that
    cannot be written, sums that overflow to infinity). The user's set is usually all in bounds
    and is then returned as it is, keeping its memo; otherwise the records in bounds, as a set
    of their own kept in the first set's memo, so the next run over the same data reuses both.
    """
    memo: dict[Any, Any] | None = getattr(records, "memo", None)
    if memo is not None and "analysable" in memo:
        kept: Sequence[UsageRecord] = memo["analysable"]
        return kept
    inside = [r for r in records if in_bounds(r, at_ms)]
    kept = records if len(inside) == len(records) else UsageSet(inside)
    if memo is not None:
        memo["analysable"] = kept
    return kept


def detect_focus(question: str) -> tuple[Focus, bool]:
    """The focus of ``question`` and whether it was named (False: cost, the default, applies)."""
    text = question.lower()
    hits = []
    for focus, words in _KEYWORDS.items():
        positions = [text.find(w) for w in words if w in text]
        if positions:
            hits.append((min(positions), focus))
    if not hits:
        return Focus.COST, False
    return min(hits, key=lambda hit: hit[0])[1], True


class Triage:
    """Loads the user's usage records and decides the route: analysis, or the data helper."""

    name = "triage"

    def __init__(self, min_records: int = MIN_RECORDS) -> None:
        if min_records < 1:
            raise ValueError("min_records must be >= 1")
        self.min_records = min_records

    async def run(self, ctx: AgentContext, state: RunState) -> str:
        """Load the records into ``state`` and set ``has_data`` and ``focus``."""

        async def check_usage_data(min_records: int) -> dict[str, Any]:
            stored = await ctx.load_usage()
            state.records = analysable(stored, now_ms())
            summary = analytics.overview(state.records)
            left_out = len(stored) - len(state.records)
            return {
                "calls": summary["calls"],
                "first_call": summary["first_call"],
                "last_call": summary["last_call"],
                "span_days": summary["span_days"],
                "models": summary["models"],
                "features": summary["features"],
                "enough_data": summary["calls"] >= min_records,
                **({"left_out": left_out} if left_out else {}),
            }

        facts = await ctx.call_tool(
            self.name, "check_usage_data", {"min_records": self.min_records}, check_usage_data
        )
        state.facts["check_usage_data"] = facts
        state.record_count = facts["calls"]
        state.has_data = facts["enough_data"]
        state.focus, state.focus_asked = detect_focus(state.question)

        calls = format_count(facts["calls"])
        left_out = facts.get("left_out", 0)
        odd = (
            f" I left out {format_count(left_out)} stored records that no call can have: a time "
            "before 2000 or more than a day ahead, or a count, latency or cost out of range "
            "(the batch that holds them can be deleted: `runwire usage batches`, "
            "`GET /api/usage/batches`)."
            if left_out
            else ""
        )
        if not state.has_data:
            found = "no usage records" if not facts["calls"] else f"only {calls} usage records"
            await ctx.thinking(
                self.name,
                f"I found {found} for your account; at least {self.min_records} calls are needed "
                "for meaningful percentiles and savings, so the data helper will explain how to "
                f"add data.{odd}",
            )
            return f"{found.capitalize()}: routing to the data helper."
        if state.focus_asked:
            lead = f"You asked about {state.focus.value}, so the report will lead with it."
        else:
            lead = "The question names no particular angle, so the report will lead with cost."
        await ctx.thinking(
            self.name,
            f"I found {calls} calls from {facts['first_call'][:10]} to {facts['last_call'][:10]} "
            f"({facts['span_days']} days) across {facts['models']} models and "
            f"{facts['features']} features: enough to analyse. {lead}{odd}",
        )
        return f"{calls} calls over {facts['span_days']} days; leading with {state.focus.value}."
