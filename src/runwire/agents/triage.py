"""Triage: is there enough usage data to analyse, and what is the question mainly about?"""

from __future__ import annotations

from typing import Any

from runwire.agents import analytics
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count
from runwire.agents.state import Focus, RunState

__all__ = ["MIN_RECORDS", "Triage", "detect_focus"]

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
            state.records = await ctx.load_usage()
            summary = analytics.overview(state.records)
            return {
                "calls": summary["calls"],
                "first_call": summary["first_call"],
                "last_call": summary["last_call"],
                "span_days": summary["span_days"],
                "models": summary["models"],
                "features": summary["features"],
                "enough_data": summary["calls"] >= min_records,
            }

        facts = await ctx.call_tool(
            self.name, "check_usage_data", {"min_records": self.min_records}, check_usage_data
        )
        state.facts["check_usage_data"] = facts
        state.record_count = facts["calls"]
        state.has_data = facts["enough_data"]
        state.focus, state.focus_asked = detect_focus(state.question)

        calls = format_count(facts["calls"])
        if not state.has_data:
            found = "no usage records" if not facts["calls"] else f"only {calls} usage records"
            await ctx.thinking(
                self.name,
                f"I found {found} for your account; at least {self.min_records} calls are needed "
                "for meaningful percentiles and savings, so the data helper will explain how to "
                "add data.",
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
            f"{facts['features']} features: enough to analyse. {lead}",
        )
        return f"{calls} calls over {facts['span_days']} days; leading with {state.focus.value}."
