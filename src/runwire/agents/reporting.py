"""The reporting agent: writes the Markdown answer from the facts and streams it through the LLM.

The draft is complete and correct on its own: every figure comes from the tools' results. The LLM
(offline: the draft as it is) only rewrites it, so the answer is right whichever provider runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runwire.agents.context import AgentContext
from runwire.agents.formatting import (
    format_count,
    format_ms,
    format_pct,
    format_usd,
    table_cell,
)
from runwire.agents.llm import LLMRequest
from runwire.agents.state import Focus, RunState
from runwire.errors import RunTimeout
from runwire.usage.pricing import PricingTable

__all__ = ["ReportingAgent", "compose_next_steps", "compose_report"]

SYSTEM_PROMPT = (
    "You are runwire's reporting agent. You help a team cut the cost and latency of its LLM "
    "usage. Answer in Markdown, concisely, using only the figures given to you."
)
_TABLE_ROWS = 8
_SECTION_ORDER = {
    Focus.COST: ("actions", "cost", "caching", "latency", "errors"),
    Focus.LATENCY: ("latency", "actions", "cost", "errors", "caching"),
    Focus.ERRORS: ("errors", "actions", "cost", "latency", "caching"),
    Focus.CACHING: ("caching", "actions", "cost", "latency", "errors"),
}


def compose_report(state: RunState, pricing: PricingTable) -> str:
    """The full answer for a run with data, leading with ``state.focus``."""
    facts = state.facts
    overview = facts["usage_overview"]
    monthly = overview["monthly_cost_usd"]
    savings = sum(a.monthly_savings_usd for a in state.actions)
    lines = [_headline(state, savings, monthly), ""]
    lines.append(
        f"You made {format_count(overview['calls'])} LLM calls between "
        f"{overview['first_call'][:10]} and {overview['last_call'][:10]} "
        f"({overview['span_days']} days), costing {format_usd(overview['total_cost_usd'])} "
        f"(about {format_usd(monthly)} per 30 days) across {overview['models']} models from "
        f"{overview['providers']} providers."
    )
    lines += ["", *(f"- {finding}" for finding in state.findings)]
    sections: dict[str, Callable[[RunState], list[str]]] = {
        "actions": _actions_section,
        "cost": _cost_section,
        "caching": _caching_section,
        "latency": _latency_section,
        "errors": _errors_section,
    }
    for name in _SECTION_ORDER[state.focus]:
        lines += ["", *sections[name](state)]
    lines += [
        "",
        "---",
        f"*Prices as of {pricing.as_of}: {pricing.source} Monthly figures scale the "
        f"{overview['span_days']} days of your data to 30 days; savings are estimates and can "
        "overlap.*",
    ]
    return "\n".join(lines) + "\n"


def compose_next_steps(state: RunState) -> str:
    """The answer when there is not enough data: what to do next."""
    if state.record_count:
        intro = (
            f"I found only {format_count(state.record_count)} LLM calls in your usage data: too "
            "few for percentiles or monthly savings worth trusting."
        )
    else:
        intro = "I could not find any LLM usage data for your account yet, so I cannot analyse it."
    steps = [f"{i}. {step}" for i, step in enumerate(state.next_steps, start=1)]
    return (
        "\n".join(
            [
                "## Add your usage data to get an answer",
                "",
                intro,
                "Once your calls are in, I will show cost by model, latency percentiles, error rates "
                "and concrete actions with estimated monthly savings.",
                "",
                "**Next steps**",
                "",
                *steps,
            ]
        )
        + "\n"
    )


class ReportingAgent:
    """Writes the answer and streams it as ``text_delta`` events; sets ``state.answer``."""

    name = "reporting"

    async def run(self, ctx: AgentContext, state: RunState) -> str:
        """Compose the draft, stream it through ``ctx.llm`` within ``ctx.llm_timeout_s``."""
        if state.has_data:
            await ctx.thinking(self.name, _plan_sentence(state))
        else:
            await ctx.thinking(
                self.name,
                "No analysis is possible yet, so the answer lists the next steps to add usage "
                "data, with the exact commands.",
            )
        sections = list(_SECTION_ORDER[state.focus]) if state.has_data else ["next_steps"]

        def compose_answer(focus: str, sections: list[str]) -> dict[str, Any]:
            if state.has_data:
                state.answer = compose_report(state, ctx.pricing)
            else:
                state.answer = compose_next_steps(state)
            return {"focus": focus, "sections": sections, "characters": len(state.answer)}

        await ctx.call_tool(
            self.name,
            "compose_answer",
            {"focus": state.focus.value, "sections": sections},
            compose_answer,
        )
        draft = state.answer
        request = LLMRequest(
            system=SYSTEM_PROMPT,
            messages=[*ctx.history, ("user", ctx.question)],
            draft=draft,
            facts=_llm_facts(state, ctx.pricing),
        )
        parts: list[str] = []
        chunks = ctx.llm.stream(request)
        try:
            async with asyncio.timeout(ctx.llm_timeout_s):
                async for chunk in chunks:
                    parts.append(chunk)
                    await ctx.text_delta(self.name, chunk)
        except TimeoutError:
            raise RunTimeout(
                f"the language model ({ctx.llm.name}) did not finish the answer within "
                f"{ctx.llm_timeout_s:g}s"
            ) from None
        finally:
            # Close the provider's generator now (its HTTP stream, if any), not when it is
            # garbage-collected; a plain AsyncIterator has no aclose, hence the lookup.
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        answer = "".join(parts)
        if not answer.strip():
            # An LLM that returns nothing must not leave the user with an empty reply.
            answer = draft
            await ctx.text_delta(self.name, draft)
        state.answer = answer
        return f"Wrote the answer ({format_count(len(answer))} characters; writer: {ctx.llm.name})."


def _plan_sentence(state: RunState) -> str:
    savings = sum(a.monthly_savings_usd for a in state.actions)
    lead = "cost and savings" if state.focus is Focus.COST else state.focus.value
    return (
        f"Writing the answer, leading with {lead}: {len(state.actions)} ranked actions worth up "
        f"to {format_usd(savings)} a month, with tables of cost, latency and errors by model."
    )


def _headline(state: RunState, savings: float, monthly: float) -> str:
    facts = state.facts
    if state.focus is Focus.LATENCY:
        latency = facts["latency_percentiles"]
        slowest = latency["models"][0]
        return (
            f"## Latency: p95 is {format_ms(latency['overall']['p95'])} overall; "
            f"{slowest['model']} is slowest at p95 {format_ms(slowest['p95'])}"
        )
    if state.focus is Focus.ERRORS:
        errors = facts["error_rates"]
        worst = errors["models"][0]
        return (
            f"## Errors: {format_pct(errors['overall']['rate_pct'])} of calls failed; "
            f"{worst['model']} fails most ({format_pct(worst['rate_pct'])})"
        )
    if state.focus is Focus.CACHING:
        cache = facts["find_cache_candidates"]
        return (
            f"## Caching: {format_pct(cache['repeat_share_pct'])} of calls repeat a prompt, "
            f"worth about {format_usd(cache['monthly_saving_usd'])} a month"
        )
    if savings > 0:
        share = format_pct(round(100 * savings / monthly, 1)) if monthly else "n/a"
        return (
            f"## You could save up to {format_usd(savings)} a month "
            f"({share} of your {format_usd(monthly)} monthly LLM spend)"
        )
    return f"## Your LLM spend is about {format_usd(monthly)} a month, with no obvious waste"


def _actions_section(state: RunState) -> list[str]:
    lines = ["### Recommended actions", ""]
    if not state.actions:
        return [*lines, "Nothing stands out: your setup looks lean already."]
    for i, action in enumerate(state.actions, start=1):
        saving = (
            f" — about {format_usd(action.monthly_savings_usd)} a month"
            if action.monthly_savings_usd > 0
            else ""
        )
        lines.append(f"{i}. **{table_cell(action.title)}**{saving}. {action.detail}")
    return lines


def _cost_section(state: RunState) -> list[str]:
    costs = state.facts["cost_breakdown"]
    lines = [
        "### Cost by model",
        "",
        "| Model | Provider | Calls | Tokens | Cost | Share |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in costs["models"][:_TABLE_ROWS]:
        lines.append(
            f"| {table_cell(row['model'])} | {table_cell(row['provider'])} | "
            f"{format_count(row['calls'])} | {format_count(row['tokens'])} | "
            f"{format_usd(row['cost_usd'])} | {format_pct(row['share_pct'])} |"
        )
    rest = costs["models"][_TABLE_ROWS:]
    if rest:
        lines.append(
            f"| *{len(rest)} more models* | | {format_count(sum(r['calls'] for r in rest))} | "
            f"{format_count(sum(r['tokens'] for r in rest))} | "
            f"{format_usd(sum(r['cost_usd'] for r in rest))} | "
            f"{format_pct(sum(r['share_pct'] for r in rest))} |"
        )
    lines.append(
        f"| **Total** | | {format_count(sum(r['calls'] for r in costs['models']))} | "
        f"{format_count(sum(r['tokens'] for r in costs['models']))} | "
        f"**{format_usd(costs['total_cost_usd'])}** | 100% |"
    )
    return lines


def _latency_section(state: RunState) -> list[str]:
    latency = state.facts["latency_percentiles"]
    overall = latency["overall"]
    lines = [
        "### Latency",
        "",
        f"Overall p50 / p95 / p99: {format_ms(overall['p50'])} / {format_ms(overall['p95'])} / "
        f"{format_ms(overall['p99'])} (nearest-rank percentiles; failed calls included).",
        "",
        "| Model | Calls | p50 | p95 | p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in latency["models"][:_TABLE_ROWS]:
        lines.append(
            f"| {table_cell(row['model'])} | {format_count(row['calls'])} | "
            f"{format_ms(row['p50'])} | {format_ms(row['p95'])} | {format_ms(row['p99'])} |"
        )
    return lines


def _errors_section(state: RunState) -> list[str]:
    errors = state.facts["error_rates"]
    overall = errors["overall"]
    lines = [
        "### Errors",
        "",
        f"{format_pct(overall['rate_pct'])} of calls failed ({format_count(overall['errors'])} "
        f"of {format_count(overall['calls'])}).",
    ]
    failing = [row for row in errors["models"] if row["errors"]][:_TABLE_ROWS]
    if failing:
        lines += ["", "| Model | Failed | Calls | Error rate |", "|---|---:|---:|---:|"]
        lines += [
            f"| {table_cell(row['model'])} | {format_count(row['errors'])} | "
            f"{format_count(row['calls'])} | {format_pct(row['rate_pct'])} |"
            for row in failing
        ]
    return lines


def _caching_section(state: RunState) -> list[str]:
    cache = state.facts["find_cache_candidates"]
    lines = ["### Caching", ""]
    if not cache["calls_with_hash"]:
        return [*lines, "Your records carry no `prompt_hash`, so repeated prompts cannot be found."]
    if not cache["repeated_calls"]:
        return [*lines, "No successful call repeated an earlier prompt: a cache would not help."]
    lines.append(
        f"{format_count(cache['repeated_calls'])} of {format_count(cache['calls_with_hash'])} "
        f"successful calls ({format_pct(cache['repeat_share_pct'])}) repeated one of "
        f"{format_count(cache['repeated_prompts'])} prompts already answered: "
        f"{format_usd(cache['wasted_cost_usd'])} spent on answers you already had, about "
        f"{format_usd(cache['monthly_saving_usd'])} a month."
    )
    lines += [
        "",
        "| Feature | Repeated calls | Share of its calls | Wasted |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {table_cell(row['feature'])} | {format_count(row['repeated_calls'])} | "
        f"{format_pct(row['repeat_share_pct'])} | {format_usd(row['wasted_cost_usd'])} |"
        for row in cache["top_features"]
    ]
    return lines


def _llm_facts(state: RunState, pricing: PricingTable) -> dict[str, Any]:
    """The facts a rewriting LLM may use: the tools' results, the actions, the price source."""
    if not state.has_data:
        return {"usage_records": state.record_count, "next_steps": state.next_steps}
    keep = ("usage_overview", "cost_breakdown", "latency_percentiles", "error_rates")
    facts: dict[str, Any] = {name: state.facts[name] for name in keep}
    facts["actions"] = [action.public() for action in state.actions]
    facts["pricing"] = {"as_of": pricing.as_of, "source": pricing.source}
    return facts
