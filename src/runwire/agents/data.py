"""The data agent: measures cost, latency and errors, and what the question asks beyond them."""

from __future__ import annotations

from typing import Any

from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count, format_ms, format_pct, format_usd
from runwire.agents.question import Question
from runwire.agents.toolbox import Toolbox

__all__ = ["DataAgent", "question_tool"]

PERCENTILES = (50, 95, 99)


def question_tool(asked: Question | None) -> tuple[str, dict[str, Any]] | None:
    """The tool (and its arguments) that measures what ``asked`` asks beyond the four basic
    measurements, or None when those answer it."""
    if asked is None:
        return None
    kind, subject = asked.kind, asked.subject
    if kind is Focus.COMPARE:
        names = [s.name for s in asked.subjects]
        return "compare_usage", {"group_by": asked.group_by, "names": names}
    if kind is Focus.TREND:
        return "usage_trend", {"window_days": asked.window_days}
    if kind is Focus.SUBJECT and subject is not None:
        return "describe_subject", {"kind": subject.kind, "name": subject.name}
    if kind is Focus.DATA:
        return "describe_data", {}
    grouped = asked.group_by != "model" or (subject is not None and subject.in_data)
    if kind is Focus.LATENCY and (grouped or asked.percentile not in PERCENTILES):
        percentiles = sorted({*PERCENTILES, asked.percentile})
        return "breakdown", {"group_by": asked.group_by, "percentiles": percentiles}
    if kind in (Focus.SPEND, Focus.ERRORS) and grouped:
        return "breakdown", {"group_by": asked.group_by, "percentiles": list(PERCENTILES)}
    return None


class DataAgent:
    """Runs the measurement tools and notes what stands out, leading with the question's topic."""

    name = "data"

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Measure ``state.records`` into ``state.facts`` and ``state.findings``."""
        tools = Toolbox(state.records, ctx.pricing)

        async def use(tool: str, args: dict[str, Any]) -> Any:
            result = await ctx.call_tool(self.name, tool, args, tools.function(tool))
            state.facts[tool] = result
            return result

        extra = question_tool(state.asked)
        if state.focus is Focus.DATA:
            await ctx.thinking(self.name, "Describing what your usage data holds.")
            overview = await use("usage_overview", {})
            held = await use("describe_data", {})
            await ctx.thinking(
                self.name,
                f"{format_count(held['calls'])} calls of {len(held['models'])} models from "
                f"{len(held['providers'])} providers, in {len(held['features'])} features.",
            )
            return (
                f"{format_count(overview['calls'])} calls over {overview['span_days']} days "
                "described."
            )

        await ctx.thinking(
            self.name,
            f"Measuring cost, latency and errors per model over {format_count(len(state.records))} "
            f"calls{f', then {extra[0]} for your question' if extra else ''}.",
        )
        overview = await use("usage_overview", {})
        costs = await use("cost_breakdown", {})
        latency = await use("latency_percentiles", {"percentiles": list(PERCENTILES)})
        errors = await use("error_rates", {})
        if extra is not None:
            await use(*extra)

        top = costs["models"][0]
        slowest = latency["models"][0]
        worst = errors["models"][0]
        findings = {
            Focus.SPEND: (
                f"{top['model']} takes {format_pct(top['share_pct'])} of your spend "
                f"({format_usd(top['cost_usd'])} of {format_usd(costs['total_cost_usd'])})."
            ),
            Focus.LATENCY: (
                f"{slowest['model']} is the slowest model: p95 {format_ms(slowest['p95'])} "
                f"against {format_ms(latency['overall']['p95'])} overall."
            ),
        }
        if worst["errors"]:
            findings[Focus.ERRORS] = (
                f"{worst['model']} fails most often: {format_pct(worst['rate_pct'])} of its calls "
                f"({worst['errors']} of {format_count(worst['calls'])})."
            )
        # The finding about the question's topic first; cost leads otherwise.
        lead = Focus.SPEND if state.focus is Focus.COST else state.focus
        ordered = sorted(findings, key=lambda focus: focus is not lead)
        state.findings.extend(findings[focus] for focus in ordered)
        await ctx.thinking(
            self.name,
            f"{format_count(overview['calls'])} calls cost "
            f"{format_usd(overview['total_cost_usd'])} over {overview['span_days']} days "
            f"(about {format_usd(overview['monthly_cost_usd'])} a month). "
            f"{' '.join(state.findings)}",
        )
        return (
            f"{format_count(overview['calls'])} calls, {format_usd(overview['total_cost_usd'])}; "
            f"top model {top['model']} ({format_pct(top['share_pct'])}); overall error rate "
            f"{format_pct(errors['overall']['rate_pct'])}."
        )
