"""The optimization agent: finds what caching and cheaper models would save."""

from __future__ import annotations

from typing import Any

from runwire.agents.blackboard import Blackboard
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_pct, format_usd
from runwire.agents.toolbox import Toolbox

__all__ = ["OptimizationAgent"]


class OptimizationAgent:
    """Looks for repeated prompts (a cache) and cheaper models of the same provider."""

    name = "optimization"

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Add the caching and cheaper-model results to ``state.facts`` and a finding each."""
        records = state.records
        await ctx.thinking(
            self.name,
            "Looking for repeated prompts a cache would serve, and for cheaper models in the "
            f"price table of {ctx.pricing.as_of} that could take the same tokens.",
        )
        tools = Toolbox(records, ctx.pricing)
        cache = await ctx.call_tool(
            self.name,
            "find_cache_candidates",
            {"top_n": 5},
            tools.function("find_cache_candidates"),
        )
        cheaper = await ctx.call_tool(
            self.name, "find_cheaper_models", {}, tools.function("find_cheaper_models")
        )
        state.facts.update(find_cache_candidates=cache, find_cheaper_models=cheaper)
        cache_note, model_note = _cache_sentence(cache), _model_sentence(cheaper)
        state.findings.append(cache_note)
        state.findings.append(model_note)
        await ctx.thinking(self.name, f"{cache_note} {model_note}")
        total = cache["monthly_saving_usd"] + cheaper["total_monthly_savings_usd"]
        return (
            f"Caching: {format_usd(cache['monthly_saving_usd'])}/month; cheaper models: "
            f"{format_usd(cheaper['total_monthly_savings_usd'])}/month; up to "
            f"{format_usd(total)}/month in all."
        )


def _cache_sentence(cache: dict[str, Any]) -> str:
    if not cache["calls_with_hash"]:
        return (
            "Your records carry no prompt_hash, so repeated prompts cannot be found; add a prompt "
            "fingerprint to your export to see what a cache would save."
        )
    if not cache["repeated_calls"]:
        return "No successful call repeats an earlier prompt, so a response cache would not help."
    top = cache["top_features"][0]
    return (
        f"{format_pct(cache['repeat_share_pct'])} of successful calls repeat a prompt already "
        f"answered, most of them in {top['feature']} ({format_pct(top['repeat_share_pct'])} of its "
        f"calls): a response cache would save about {format_usd(cache['monthly_saving_usd'])} a "
        "month."
    )


def _model_sentence(cheaper: dict[str, Any]) -> str:
    if not cheaper["models"]:
        return (
            "None of your models has a cheaper same-provider alternative in the price table of "
            f"{cheaper['pricing_as_of']}."
        )
    best = cheaper["models"][0]
    return (
        f"Moving {best['model']} to {best['candidate']} would cost "
        f"{format_usd(best['candidate_monthly_cost_usd'])} instead of "
        f"{format_usd(best['monthly_cost_usd'])} a month for the same tokens "
        f"({format_pct(best['savings_pct'])} less)."
    )
