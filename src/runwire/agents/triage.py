"""Triage: is there enough usage data to analyse, and what is the question mainly about?"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from runwire.agents import analytics
from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count
from runwire.agents.names import Subject
from runwire.agents.question import Question
from runwire.agents.toolbox import Toolbox
from runwire.agents.tools import prepare
from runwire.domain.clock import now_ms
from runwire.domain.usage import UsageRecord, UsageSet, UsageView
from runwire.usage.pricing import PricingTable
from runwire.usage.validation import (
    AHEAD_MS,
    EARLIEST_MS,
    MAX_COST_USD,
    MAX_LATENCY_MS,
    MAX_TOKENS,
    in_bounds,
)

__all__ = ["MIN_RECORDS", "Triage", "analysable"]

#: Below this many calls, percentiles and monthly estimates would mislead more than inform.
MIN_RECORDS = 10


def analysable(records: Sequence[UsageRecord], at_ms: int) -> Sequence[UsageRecord]:
    """The records the analyses use: those an import would accept at ``at_ms`` (see
    :func:`runwire.usage.validation.in_bounds`).

    Records stored before the import checked these bounds, or stored some other way, may hold a
    time in year 1 or a cost near the largest float, which no analysis can use (a date that
    cannot be written, sums that overflow to infinity). The user's set is usually all in bounds
    and is then returned as it is, keeping its memo; otherwise the records in bounds, as a set
    of their own kept in the first set's memo, so the next run over the same data reuses both.
    When the set's memo holds the digest of its summary, whose bounds (the least and greatest
    of every value) say every record is in bounds, no record is read.
    """
    memo: dict[Any, Any] | None = getattr(records, "memo", None)
    if memo is not None and "analysable" in memo:
        kept: Sequence[UsageRecord] = memo["analysable"]
        return kept
    if memo is not None and _all_in_bounds(memo, at_ms):
        kept = records
    else:
        inside = [r for r in records if in_bounds(r, at_ms)]
        kept = records if len(inside) == len(records) else UsageSet(inside)
    if memo is not None:
        memo["analysable"] = kept
    return kept


def _prepared(
    stored: Sequence[UsageRecord], at_ms: int, pricing: PricingTable
) -> Sequence[UsageRecord]:
    # Off the event loop: over a data set no run has met yet, this scans every record several
    # times (20-40 ms for 4,000 records); a burst of first questions would queue behind it.
    records = analysable(stored, at_ms)
    prepare(records, pricing)
    memo: dict[Any, Any] | None = getattr(stored, "memo", None)
    if memo is not None:
        memo[("prepared", id(pricing))] = True
    return records


def _all_in_bounds(memo: dict[Any, Any], at_ms: int) -> bool:
    """Whether the digest in ``memo`` (if any) shows every record of its set in bounds."""
    digest: dict[str, Any] | None = memo.get("usage_digest")
    if digest is None:
        return False
    if not digest["calls"]:
        return True
    bounds = digest["bounds"]
    low, high = bounds["low"], bounds["high"]
    if bounds["nonfinite"] or None in low or None in high:
        return False
    limits = (MAX_TOKENS, MAX_TOKENS, MAX_LATENCY_MS, MAX_COST_USD)
    return (
        digest["first"] >= EARLIEST_MS
        and digest["last"] <= at_ms + AHEAD_MS
        and all(least >= 0 for least in low)
        and all(most <= limit for most, limit in zip(high, limits, strict=True))
    )


async def _analysable(
    stored: Sequence[UsageRecord], at_ms: int, pricing: PricingTable
) -> Sequence[UsageRecord]:
    """:func:`analysable` records with their aggregates computed: from the set's digest when
    it has one that covers it (about a millisecond, on the loop, no record read), else off the
    loop the first time a set is met (per data version); at once (reading the memo) after that.
    """
    memo: dict[Any, Any] | None = getattr(stored, "memo", None)
    if memo is not None and ("prepared", id(pricing)) in memo:
        return analysable(stored, at_ms)
    if memo is not None and _all_in_bounds(memo, at_ms):
        return _prepared(stored, at_ms, pricing)
    if isinstance(stored, UsageView):
        await stored.read()  # off the loop; the digest does not answer for these records
    return await asyncio.to_thread(_prepared, stored, at_ms, pricing)


class Triage:
    """Loads the user's usage records and decides the route: analysis, or the data helper."""

    name = "triage"

    def __init__(self, min_records: int = MIN_RECORDS) -> None:
        if min_records < 1:
            raise ValueError("min_records must be >= 1")
        self.min_records = min_records

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Load the records into ``state``, set ``has_data``, and read the question into
        ``state.asked`` and ``state.focus`` (the ``classify_question`` tool, with data)."""

        async def check_usage_data(min_records: int) -> dict[str, Any]:
            stored = await ctx.load_usage()
            state.records = await _analysable(stored, now_ms(), ctx.pricing)
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
        tools = Toolbox(state.records, ctx.pricing)
        reading = await ctx.call_tool(
            self.name,
            "classify_question",
            {"question": state.question},
            tools.function("classify_question"),
        )
        state.facts["classify_question"] = reading
        state.asked = _question(reading)
        state.focus, state.focus_asked = state.asked.kind, state.asked.named
        await ctx.thinking(
            self.name,
            f"I found {calls} calls from {facts['first_call'][:10]} to {facts['last_call'][:10]} "
            f"({facts['span_days']} days) across {facts['models']} models and "
            f"{facts['features']} features: enough to analyse. {_lead(state.asked)}{odd}",
        )
        return f"{calls} calls over {facts['span_days']} days; {_summary(state.asked)}."


def _question(reading: dict[str, Any]) -> Question:
    """The :class:`Question` back from the ``classify_question`` result."""
    topic = reading["topic"]
    return Question(
        kind=Focus(reading["kind"]),
        named=reading["named"],
        topic=Focus(topic) if topic else None,
        subjects=tuple(Subject(**s) for s in reading["subjects"]),
        group_by=reading["group_by"],
        percentile=reading["percentile"],
        window_days=reading["window_days"],
        missing=reading.get("missing", ""),
        clarify=reading.get("clarify", ""),
        candidates=tuple(reading.get("candidates", ())),
    )


def _names(asked: Question) -> str:
    return " and ".join(s.name for s in asked.subjects)


def _lead(asked: Question) -> str:
    """What triage tells the user it understood, and so what the answer leads with."""
    kind = asked.kind
    if not asked.named:
        return "The question names no particular angle, so the report will lead with cost."
    if kind is Focus.OFF_TOPIC:
        what = asked.missing or "something outside your LLM usage"
        return f"The question asks about {what}, which usage records do not hold."
    if kind is Focus.UNCLEAR:
        return f"The question is ambiguous, so I will ask: {asked.clarify}"
    if kind is Focus.DATA:
        return "You asked what data I have, so the answer describes it."
    if kind is Focus.COMPARE:
        return f"You asked to compare {_names(asked)}, so the answer leads with them side by side."
    if kind is Focus.TREND:
        return (
            f"You asked how things changed, so the answer compares the last {asked.window_days} "
            "days with the ones before."
        )
    if kind is Focus.SUBJECT:
        return f"You asked about {_names(asked)}, so the answer is about it."
    about = f" of {_names(asked)}" if asked.subjects else ""
    by = f" by {asked.group_by}" if asked.group_by != "model" and not asked.subjects else ""
    return f"You asked about {kind.value}{about}{by}, so the report will lead with it."


def _summary(asked: Question) -> str:
    if asked.kind is Focus.UNCLEAR:
        return "asking a clarifying question"
    if asked.kind is Focus.OFF_TOPIC:
        return "the question is outside the usage data"
    return f"leading with {asked.kind.value}"
