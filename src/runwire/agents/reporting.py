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
from runwire.agents.llm import BatchingProvider, LLMRequest
from runwire.agents.state import Focus, RunState
from runwire.errors import RunTimeout
from runwire.usage.pricing import PricingTable

__all__ = ["ReportingAgent", "compose_next_steps", "compose_report", "compose_short", "headline"]

SYSTEM_PROMPT = (
    "You are runwire's reporting agent. You help a team cut the cost and latency of its LLM "
    "usage. Answer in Markdown, concisely, using only the figures given to you."
)
_TABLE_ROWS = 8
_SECTION_ORDER = {
    Focus.COST: ("actions", "cost", "caching", "latency", "errors"),
    Focus.SPEND: ("cost", "actions", "caching", "latency", "errors"),
    Focus.LATENCY: ("latency", "actions", "cost", "errors", "caching"),
    Focus.ERRORS: ("errors", "actions", "cost", "latency", "caching"),
    Focus.CACHING: ("caching", "actions", "cost", "latency", "errors"),
    Focus.COMPARE: ("compare", "actions"),
    Focus.TREND: ("trend", "actions", "cost"),
    Focus.SUBJECT: ("subject", "actions"),
    Focus.DATA: ("data", "ask"),
    Focus.OFF_TOPIC: ("scope", "ask"),
    Focus.UNCLEAR: ("clarify", "ask"),
}
# Topic questions get the overview sentence and the findings under the headline; questions about
# something narrower (a comparison, a trend, one model) get them at the end, as context.
_TOPICS = (Focus.COST, Focus.SPEND, Focus.LATENCY, Focus.ERRORS, Focus.CACHING)
_RECORD_FIELDS = (
    "the time, provider, model, token counts, latency, cost and status of each call, a "
    "fingerprint of its prompt and the feature that made it"
)
_ASK = (
    "**Cost and savings**: *Where can we cut our LLM costs?*, *Which feature costs the most?*",
    "**Latency**: *Which models are slowest at p95?*, *p99 latency by provider*",
    "**Errors**: *Which model fails most often?*",
    "**Caching**: *Would a cache help?*",
    "**Comparisons**: *Compare gpt-4o and gpt-4o-mini*",
    "**Trends**: *How does this week compare with last week?*",
    "**One model, provider or feature**: *Tell me about gpt-4o*",
    "**Your data**: *What data do you have?*",
)


def compose_report(state: RunState, pricing: PricingTable) -> str:
    """The full answer for a run with data, leading with what ``state.focus`` asks."""
    if not state.focus.analyses:
        return compose_short(state)
    facts = state.facts
    overview = facts["usage_overview"]
    monthly = overview["monthly_cost_usd"]
    lines = [headline(state)]
    context = (
        f"You made {format_count(overview['calls'])} LLM calls between "
        f"{overview['first_call'][:10]} and {overview['last_call'][:10]} "
        f"({overview['span_days']} days), costing {format_usd(overview['total_cost_usd'])} "
        f"(about {format_usd(monthly)} per 30 days) across {overview['models']} models from "
        f"{overview['providers']} providers."
    )
    if state.focus in _TOPICS:
        lines += ["", context, "", *(f"- {finding}" for finding in state.findings)]
    sections = _sections()
    for name in _SECTION_ORDER[state.focus]:
        lines += ["", *sections[name](state)]
    if state.focus not in _TOPICS:
        lines += ["", context]
    lines += [
        "",
        "---",
        f"*Prices as of {pricing.as_of}: {pricing.source} Monthly figures scale the "
        f"{overview['span_days']} days of your data to 30 days; savings are estimates and can "
        "overlap.*",
    ]
    return "\n".join(lines) + "\n"


def compose_short(state: RunState) -> str:
    """The answer that needs no analysis: what the data holds, an honest "that is outside your
    data", or a clarifying question; each says what runwire can tell."""
    lines = [headline(state)]
    sections = _sections()
    for name in _SECTION_ORDER[state.focus]:
        lines += ["", *sections[name](state)]
    return "\n".join(lines) + "\n"


def _sections() -> dict[str, Callable[[RunState], list[str]]]:
    return {
        "actions": _actions_section,
        "cost": _cost_section,
        "caching": _caching_section,
        "latency": _latency_section,
        "errors": _errors_section,
        "compare": _compare_section,
        "trend": _trend_section,
        "subject": _subject_section,
        "data": _data_section,
        "scope": _scope_section,
        "clarify": _clarify_section,
        "ask": _ask_section,
    }


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
            return {
                "focus": focus,
                "sections": sections,
                "headline": state.answer.split("\n", 1)[0].removeprefix("## "),
                "characters": len(state.answer),
            }

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
        llm = ctx.llm
        # A writer that hands over the chunks ready at once has each batch go through the run in
        # one pass, each chunk still its own event (docs/benchmarks.md, "Batched chunks").
        batches = llm.batches(request) if isinstance(llm, BatchingProvider) else None
        chunks = llm.stream(request) if batches is None else None
        try:
            async with asyncio.timeout(ctx.llm_timeout_s):
                if batches is not None:
                    async for batch in batches:
                        parts += batch
                        await ctx.text_deltas(self.name, batch)
                else:
                    assert chunks is not None
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
            close = getattr(batches if batches is not None else chunks, "aclose", None)
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
    if state.focus is Focus.UNCLEAR:
        return "Writing a clarifying question, with examples of what I can answer."
    if state.focus is Focus.OFF_TOPIC:
        return "Writing a short answer: what your usage data holds and what I can tell from it."
    if state.focus is Focus.DATA:
        return "Writing what your usage data holds and what you can ask about it."
    savings = sum(a.monthly_savings_usd for a in state.actions)
    lead = "cost and savings" if state.focus is Focus.COST else state.focus.value
    return (
        f"Writing the answer, leading with {lead}: {len(state.actions)} ranked actions worth up "
        f"to {format_usd(savings)} a month, then {', '.join(_SECTION_ORDER[state.focus][1:])}."
    )


def headline(state: RunState) -> str:
    """The answer's first line: the direct answer to what was asked (a Markdown heading).

    One line whatever the names in it hold (a model or feature name is the user's own text).
    """
    return " ".join(_headline(state).split())


def _headline(state: RunState) -> str:
    asked = state.asked
    focus = state.focus
    if focus is Focus.UNCLEAR and asked is not None:
        return f"## {asked.clarify}"
    if focus is Focus.OFF_TOPIC:
        if asked is not None and asked.missing:
            return f"## Your usage data does not record {asked.missing}"
        return "## I can only answer questions about your LLM usage"
    if focus is Focus.DATA:
        held = state.facts["describe_data"]
        return (
            f"## Your usage data: {format_count(held['calls'])} LLM calls from "
            f"{held['first_call'][:10]} to {held['last_call'][:10]} ({held['span_days']} days)"
        )
    compose = {
        Focus.SPEND: _spend_headline,
        Focus.LATENCY: _latency_headline,
        Focus.ERRORS: _errors_headline,
        Focus.CACHING: _caching_headline,
        Focus.COMPARE: _compare_headline,
        Focus.TREND: _trend_headline,
        Focus.SUBJECT: _subject_headline,
    }.get(focus, _savings_headline)
    return compose(state)


def _subject_row(state: RunState) -> dict[str, Any] | None:
    """The breakdown row of the question's one subject, when there is one in the data."""
    subject = state.asked.subject if state.asked else None
    table = state.facts.get("breakdown")
    if subject is None or table is None or table["group_by"] != subject.kind:
        return None
    return next((row for row in table["rows"] if row["name"] == subject.name), None)


def _grouped(state: RunState) -> dict[str, Any] | None:
    """The breakdown the question asked for (by feature or provider, a percentile or a subject
    beyond the basic measurements), if the data agent made one."""
    table: dict[str, Any] | None = state.facts.get("breakdown")
    return table


def _savings_headline(state: RunState) -> str:
    monthly = state.facts["usage_overview"]["monthly_cost_usd"]
    savings = sum(a.monthly_savings_usd for a in state.actions)
    if savings > 0:
        share = format_pct(round(100 * savings / monthly, 1)) if monthly else "n/a"
        return (
            f"## You could save up to {format_usd(savings)} a month "
            f"({share} of your {format_usd(monthly)} monthly LLM spend)"
        )
    return f"## Your LLM spend is about {format_usd(monthly)} a month, with no obvious waste"


def _spend_headline(state: RunState) -> str:
    overview = state.facts["usage_overview"]
    row = _subject_row(state)
    if row is not None:
        return (
            f"## {row['name']} cost {format_usd(row['cost_usd'])} over {overview['span_days']} "
            f"days (about {format_usd(row['monthly_cost_usd'])} a month), "
            f"{format_pct(row['share_pct'])} of your spend"
        )
    table = _grouped(state)
    if table is not None:
        top = table["rows"][0]
        return (
            f"## Spend by {table['group_by']}: {top['name']} costs the most, "
            f"{format_usd(top['cost_usd'])} of {format_usd(table['total_cost_usd'])} "
            f"({format_pct(top['share_pct'])})"
        )
    top = state.facts["cost_breakdown"]["models"][0]
    return (
        f"## You spend about {format_usd(overview['monthly_cost_usd'])} a month on LLM calls; "
        f"{top['model']} costs the most ({format_usd(top['cost_usd'])}, "
        f"{format_pct(top['share_pct'])} of {format_usd(overview['total_cost_usd'])})"
    )


def _latency_headline(state: RunState) -> str:
    pct = state.asked.percentile if state.asked else 95
    key = f"p{pct}"
    row = _subject_row(state)
    table = _grouped(state)
    if row is not None and table is not None:
        return (
            f"## Latency of {row['name']}: {key} is {format_ms(row[key])} against "
            f"{format_ms(table['overall'][key])} overall"
        )
    if table is not None:
        slowest = max(table["rows"], key=lambda r: r[key] or 0)
        overall, by = table["overall"][key], table["group_by"]
        label = "Latency" if by == "model" else f"Latency by {by}"
        name = slowest["name"]
    else:
        latency = state.facts["latency_percentiles"]
        slowest = max(latency["models"], key=lambda r: r[key] or 0)
        overall, label, name = latency["overall"][key], "Latency", slowest["model"]
    return (
        f"## {label}: {key} is {format_ms(overall)} overall; {name} is slowest at {key} "
        f"{format_ms(slowest[key])}"
    )


def _errors_headline(state: RunState) -> str:
    row = _subject_row(state)
    table = _grouped(state)
    if row is not None and table is not None:
        return (
            f"## Errors of {row['name']}: {format_pct(row['error_rate_pct'])} of its calls "
            f"failed ({format_count(row['errors'])} of {format_count(row['calls'])}) against "
            f"{format_pct(table['overall']['error_rate_pct'])} overall"
        )
    if table is not None:
        worst = max(table["rows"], key=lambda r: (r["error_rate_pct"], r["errors"]))
        return (
            f"## Errors by {table['group_by']}: "
            f"{format_pct(table['overall']['error_rate_pct'])} of calls failed; "
            f"{worst['name']} fails most ({format_pct(worst['error_rate_pct'])})"
        )
    errors = state.facts["error_rates"]
    worst = errors["models"][0]
    return (
        f"## Errors: {format_pct(errors['overall']['rate_pct'])} of calls failed; "
        f"{worst['model']} fails most ({format_pct(worst['rate_pct'])})"
    )


def _caching_headline(state: RunState) -> str:
    cache = state.facts["find_cache_candidates"]
    subject = state.asked.subject if state.asked else None
    if subject is not None and subject.kind == "feature":
        row = next((f for f in cache["top_features"] if f["feature"] == subject.name), None)
        if row is not None:
            return (
                f"## Caching in {row['feature']}: {format_pct(row['repeat_share_pct'])} of its "
                f"calls repeat a prompt, {format_usd(row['wasted_cost_usd'])} spent on answers "
                "you already had"
            )
    return (
        f"## Caching: {format_pct(cache['repeat_share_pct'])} of calls repeat a prompt, "
        f"worth about {format_usd(cache['monthly_saving_usd'])} a month"
    )


_METRICS = {
    # topic: (row key, what the lowest value means, how the value reads)
    Focus.SPEND: ("cost_per_call_usd", "costs less per call", format_usd),
    Focus.LATENCY: ("p95", "is faster at p95", format_ms),
    Focus.ERRORS: ("error_rate_pct", "fails less often", format_pct),
}


def _compare_metrics(state: RunState) -> list[Focus]:
    topic = state.asked.topic if state.asked else None
    first = topic if topic in (Focus.LATENCY, Focus.ERRORS) else Focus.SPEND
    second = Focus.LATENCY if first is Focus.SPEND else Focus.SPEND
    return [first, second]


def _compare_headline(state: RunState) -> str:
    rows = state.facts["compare_usage"]["rows"]
    names = [row["name"] for row in rows]
    title = " vs ".join(names) if len(rows) == 2 else f"{', '.join(names)} compared"
    parts: list[tuple[str, str]] = []
    for metric in _compare_metrics(state):
        key, means, fmt = _METRICS[metric]
        ranked = sorted(rows, key=lambda r: (r[key] is None, r[key] or 0))
        best = ranked[0]
        if len(rows) == 2:
            other = ranked[1]
            values = f"{fmt(best[key])} against {fmt(other[key])}"
        else:
            values = fmt(best[key])
        parts.append((best["name"], f"{means} ({values})"))
    (w1, t1), (w2, t2) = parts
    joined = f"{w1} {t1} and {t2}" if w1 == w2 else f"{w1} {t1}; {w2} {t2}"
    return f"## {title}: {joined}"


def _trend_label(window: int) -> str:
    return (
        "The last day against the day before"
        if window == 1
        else (f"The last {window} days against the {window} before")
    )


def _trend_headline(state: RunState) -> str:
    trend = state.facts["usage_trend"]
    window = trend["window_days"]
    change = trend["change"]
    if change is None:
        span = state.facts["usage_overview"]["span_days"]
        return (
            f"## Not enough history for a trend: your data covers {span} days, with no calls "
            f"in the {window} days before the last {window}"
        )
    now, before = trend["current"], trend["previous"]
    topic = state.asked.topic if state.asked else None
    label = _trend_label(window)
    if topic is Focus.ERRORS:
        points = change["error_rate_points"]
        way = (
            f"{'up' if points > 0 else 'down'} {abs(points):.1f} points" if points else "unchanged"
        )
        return (
            f"## {label}: error rate {way} ({format_pct(now['error_rate_pct'])} against "
            f"{format_pct(before['error_rate_pct'])})"
        )
    if topic is Focus.LATENCY:
        what, moved = "p95 latency", change["p95_pct"]
        values = (format_ms(now["p95_ms"]), format_ms(before["p95_ms"]))
    else:
        what, moved = "cost", change["cost_pct"]
        values = (format_usd(now["cost_usd"]), format_usd(before["cost_usd"]))
    if moved is None:
        way = "up from nothing"
    elif moved:
        way = f"{'up' if moved > 0 else 'down'} {format_pct(abs(moved))}"
    else:
        way = "unchanged"
    return f"## {label}: {what} {way} ({values[0]} against {values[1]})"


def _subject_headline(state: RunState) -> str:
    about = state.facts["describe_subject"]
    if not about["found"]:
        return f"## No calls to {about['name']} in your usage data"
    row = about["row"]
    return (
        f"## {row['name']}: {format_count(row['calls'])} calls costing "
        f"{format_usd(row['cost_usd'])} ({format_pct(row['share_pct'])} of your spend), p95 "
        f"{format_ms(row['p95'])}, {format_pct(row['error_rate_pct'])} errors"
    )


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


def _focused_table(state: RunState, focus: Focus) -> dict[str, Any] | None:
    """The asked-for breakdown, for the section of the question's own topic only."""
    return _grouped(state) if state.focus is focus else None


def _cost_section(state: RunState) -> list[str]:
    table = _focused_table(state, Focus.SPEND)
    if table is not None:
        by = table["group_by"]
        lines = [
            f"### Cost by {by}",
            "",
            f"| {by.capitalize()} | Calls | Cost | Per call | Share |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {table_cell(row['name'])} | {format_count(row['calls'])} | "
            f"{format_usd(row['cost_usd'])} | {format_usd(row['cost_per_call_usd'])} | "
            f"{format_pct(row['share_pct'])} |"
            for row in table["rows"][:_TABLE_ROWS]
        ]
        lines.append(
            f"| **Total** | {format_count(table['calls'])} | "
            f"**{format_usd(table['total_cost_usd'])}** | | 100% |"
        )
        return lines
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
    table = _focused_table(state, Focus.LATENCY)
    if table is not None:
        pct = state.asked.percentile if state.asked else 95
        keys = sorted({50, 95, 99, pct})
        by = table["group_by"]
        rows = sorted(table["rows"], key=lambda r: (-(r[f"p{pct}"] or 0), r["name"]))
        overall = table["overall"]
        lines = [
            f"### Latency by {by}",
            "",
            f"Overall {' / '.join(f'p{k}' for k in keys)}: "
            f"{' / '.join(format_ms(overall[f'p{k}']) for k in keys)} (nearest-rank "
            "percentiles; failed calls included).",
            "",
            f"| {by.capitalize()} | Calls | {' | '.join(f'p{k}' for k in keys)} |",
            f"|---|---:|{'---:|' * len(keys)}",
        ]
        lines += [
            f"| {table_cell(row['name'])} | {format_count(row['calls'])} | "
            f"{' | '.join(format_ms(row[f'p{k}']) for k in keys)} |"
            for row in rows[:_TABLE_ROWS]
        ]
        return lines
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
    table = _focused_table(state, Focus.ERRORS)
    if table is not None:
        by = table["group_by"]
        failed = sum(row["errors"] for row in table["rows"])
        rows = sorted(table["rows"], key=lambda r: (-r["error_rate_pct"], -r["errors"], r["name"]))
        lines = [
            f"### Errors by {by}",
            "",
            f"{format_pct(table['overall']['error_rate_pct'])} of calls failed "
            f"({format_count(failed)} of {format_count(table['calls'])}).",
            "",
            f"| {by.capitalize()} | Failed | Calls | Error rate |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {table_cell(row['name'])} | {format_count(row['errors'])} | "
            f"{format_count(row['calls'])} | {format_pct(row['error_rate_pct'])} |"
            for row in rows[:_TABLE_ROWS]
        ]
        return lines
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


def _compare_section(state: RunState) -> list[str]:
    compared = state.facts["compare_usage"]
    by = compared["group_by"]
    lines = [
        f"### {by.capitalize()}s side by side",
        "",
        f"| {by.capitalize()} | Calls | Cost | Per call | p50 | p95 | p99 | Error rate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {table_cell(row['name'])} | {format_count(row['calls'])} | "
        f"{format_usd(row['cost_usd'])} | {format_usd(row['cost_per_call_usd'])} | "
        f"{format_ms(row['p50'])} | {format_ms(row['p95'])} | {format_ms(row['p99'])} | "
        f"{format_pct(row['error_rate_pct'])} |"
        for row in compared["rows"]
    ]
    lowest = compared["lowest"]
    lines += [
        "",
        f"Lowest cost per call: {lowest['cost_per_call_usd']}; lowest p95: {lowest['p95']}; "
        f"fewest errors: {lowest['error_rate_pct']}.",
    ]
    return lines


def _trend_section(state: RunState) -> list[str]:
    trend = state.facts["usage_trend"]
    window = trend["window_days"]
    now, before, change = trend["current"], trend["previous"], trend["change"]
    lines = [f"### {_trend_label(window)}", ""]
    if change is None:
        return [
            *lines,
            f"All {format_count(now['calls'])} of your calls are in the last {window} days "
            f"({now['from'][:10]} to {now['to'][:10]}). Ask again once your data covers more "
            "than that, or ask about a shorter period (*this week against last*).",
        ]

    def moved(value: float | None, unit: str = "%") -> str:
        if value is None:
            return "n/a"
        return f"{value:+.1f}{unit}"

    lines += [
        f"| | Last {window} days | {window} days before | Change |",
        "|---|---:|---:|---:|",
        f"| Period | {now['from'][:10]} to {now['to'][:10]} | {before['from'][:10]} to "
        f"{before['to'][:10]} | |",
        f"| Calls | {format_count(now['calls'])} | {format_count(before['calls'])} | "
        f"{moved(change['calls_pct'])} |",
        f"| Cost | {format_usd(now['cost_usd'])} | {format_usd(before['cost_usd'])} | "
        f"{moved(change['cost_pct'])} |",
        f"| p95 latency | {format_ms(now['p95_ms'])} | {format_ms(before['p95_ms'])} | "
        f"{moved(change['p95_pct'])} |",
        f"| Error rate | {format_pct(now['error_rate_pct'])} | "
        f"{format_pct(before['error_rate_pct'])} | {moved(change['error_rate_points'], ' pts')} |",
    ]
    if not trend["previous_complete"]:
        lines += [
            "",
            f"Your data starts on {before['from'][:10]}, inside the earlier {window} days, so "
            "that period is only partly covered.",
        ]
    movers = [m for m in trend["models"] if m["change_usd"]]
    if movers:
        lines += ["", "Models whose cost moved most:", ""]
        lines += [
            f"- {table_cell(m['model'])}: {format_usd(m['cost_usd'])} against "
            f"{format_usd(m['previous_cost_usd'])} ({'+' if m['change_usd'] > 0 else ''}"
            f"{format_usd(m['change_usd'])})"
            for m in movers
        ]
    return lines


def _subject_section(state: RunState) -> list[str]:
    about = state.facts["describe_subject"]
    kind, name = about["kind"], about["name"]
    if not about["found"]:
        lines = [f"Your {kind}s: {', '.join(table_cell(n) for n in about['known'])}."]
        price = about.get("list_price")
        if price is not None:
            lines += [
                "",
                f"{name} ({price['provider']}, {price['tier']} tier) lists at "
                f"{format_usd(price['input_per_mtok_usd'])} per 1M input tokens and "
                f"{format_usd(price['output_per_mtok_usd'])} per 1M output tokens; ask "
                "*Where can we cut our LLM costs?* to see whether a switch would pay off.",
            ]
        return lines
    row, overall, of = about["row"], about["overall"], about["of"]
    span = state.facts["usage_overview"]["span_days"]
    lines = [
        f"### {name} in detail",
        "",
        f"- **Cost**: {format_usd(row['cost_usd'])} over {span} days (about "
        f"{format_usd(row['monthly_cost_usd'])} a month), {format_pct(row['share_pct'])} of "
        f"your spend; {format_usd(row['cost_per_call_usd'])} per call; "
        f"#{about['rank_by_cost']} of {of} {kind}s by cost.",
        f"- **Latency**: p50 / p95 / p99 {format_ms(row['p50'])} / {format_ms(row['p95'])} / "
        f"{format_ms(row['p99'])}, against p95 {format_ms(overall['p95'])} overall; "
        f"#{about['rank_by_p95']} of {of} by p95, slowest first.",
        f"- **Errors**: {format_count(row['errors'])} of {format_count(row['calls'])} calls "
        f"failed ({format_pct(row['error_rate_pct'])}), against "
        f"{format_pct(overall['error_rate_pct'])} overall.",
    ]
    used = row.get("top_features") or row.get("top_models") or []
    if used:
        label = "Features using it" if kind == "model" else "Its models"
        lines.append(f"- **{label}**: {', '.join(table_cell(n) for n in used)}.")
    cheaper = about.get("cheaper")
    if cheaper:
        lines.append(
            f"- **A cheaper model**: {cheaper['candidate']} would cost "
            f"{format_usd(cheaper['candidate_monthly_cost_usd'])} instead of "
            f"{format_usd(cheaper['monthly_cost_usd'])} a month for the same tokens "
            f"({format_pct(cheaper['savings_pct'])} less)."
        )
    cache = about.get("cache")
    if cache:
        lines.append(
            f"- **Repeated prompts**: {format_count(cache['repeated_calls'])} of its calls "
            f"({format_pct(cache['repeat_share_pct'])}) repeated a prompt already answered, "
            f"{format_usd(cache['wasted_cost_usd'])} spent on answers you already had."
        )
    return lines


def _data_section(state: RunState) -> list[str]:
    held = state.facts["describe_data"]

    def listed(items: list[dict[str, Any]]) -> str:
        return ", ".join(f"{table_cell(i['name'])} ({format_count(i['calls'])})" for i in items)

    lines = [
        f"Each record holds {_RECORD_FIELDS}.",
        "",
        f"- **Providers** (calls): {listed(held['providers'])}",
        f"- **Models** (calls): {listed(held['models'])}",
        f"- **Features** (calls): {listed(held['features']) or 'none recorded'}",
        f"- {format_count(held['calls_with_prompt_hash'])} calls carry a prompt fingerprint "
        f"(what finds repeated prompts), {format_count(held['calls_with_feature'])} a feature; "
        f"{format_count(held['failed_calls'])} failed.",
    ]
    return lines


def _scope_section(state: RunState) -> list[str]:
    check = state.facts["check_usage_data"]
    return [
        f"Your usage records hold only {_RECORD_FIELDS}. From your "
        f"{format_count(check['calls'])} calls ({check['first_call'][:10]} to "
        f"{check['last_call'][:10]}, {check['models']} models) I can tell you about cost and "
        "savings, latency, errors, caching, comparisons and trends.",
    ]


def _clarify_section(state: RunState) -> list[str]:
    check = state.facts["check_usage_data"]
    return [
        f"Your usage data has {format_count(check['calls'])} calls from "
        f"{check['first_call'][:10]} to {check['last_call'][:10]} across {check['models']} models "
        f"and {check['features']} features. Tell me which you mean and I will answer.",
    ]


def _ask_section(state: RunState) -> list[str]:
    return ["**You can ask, for example:**", "", *(f"- {line}" for line in _ASK)]


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
    facts: dict[str, Any] = {
        name: value
        for name, value in state.facts.items()
        if name != "rank_actions"  # given below, as the actions themselves
    }
    if state.focus.analyses:
        facts["actions"] = [action.public() for action in state.actions]
    facts["pricing"] = {"as_of": pricing.as_of, "source": pricing.source}
    return facts
