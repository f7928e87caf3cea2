"""The data agent: measures cost, latency and errors per model."""

from __future__ import annotations

from functools import partial

from runwire.agents import analytics
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count, format_ms, format_pct, format_usd
from runwire.agents.state import RunState

__all__ = ["DataAgent"]

PERCENTILES = (50, 95, 99)


class DataAgent:
    """Runs the four measurement tools and notes what stands out."""

    name = "data"

    async def run(self, ctx: AgentContext, state: RunState) -> str:
        """Measure ``state.records`` into ``state.facts`` and ``state.findings``."""
        records = state.records
        await ctx.thinking(
            self.name,
            f"Measuring cost, latency and errors per model over {format_count(len(records))} "
            "calls.",
        )
        overview = await ctx.call_tool(
            self.name, "usage_overview", {}, partial(analytics.overview, records)
        )
        costs = await ctx.call_tool(
            self.name, "cost_breakdown", {}, partial(analytics.cost_by_model, records)
        )
        latency = await ctx.call_tool(
            self.name,
            "latency_percentiles",
            {"percentiles": list(PERCENTILES)},
            partial(analytics.latency_percentiles, records),
        )
        errors = await ctx.call_tool(
            self.name, "error_rates", {}, partial(analytics.error_rate, records)
        )
        state.facts.update(
            usage_overview=overview,
            cost_breakdown=costs,
            latency_percentiles=latency,
            error_rates=errors,
        )

        top = costs["models"][0]
        slowest = latency["models"][0]
        worst = errors["models"][0]
        state.findings.append(
            f"{top['model']} takes {format_pct(top['share_pct'])} of your spend "
            f"({format_usd(top['cost_usd'])} of {format_usd(costs['total_cost_usd'])})."
        )
        state.findings.append(
            f"{slowest['model']} is the slowest model: p95 {format_ms(slowest['p95'])} against "
            f"{format_ms(latency['overall']['p95'])} overall."
        )
        if worst["errors"]:
            state.findings.append(
                f"{worst['model']} fails most often: {format_pct(worst['rate_pct'])} of its calls "
                f"({worst['errors']} of {format_count(worst['calls'])})."
            )
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
