"""The answer's analysis sections: the Markdown tables and lines under the headline.

Each section reads the facts its tools gathered (``Blackboard.facts``) and the ranked actions; the
section of the question's own topic shows the breakdown the question asked for (by feature,
provider or subject) instead of the by-model default. ``SECTIONS`` names them for
:mod:`runwire.agents.answer`, which orders them by the question's kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.formatting import (
    format_count,
    format_ms,
    format_pct,
    format_usd,
    table_cell,
)
from runwire.agents.headline import trend_label

__all__ = ["SECTIONS"]

_TABLE_ROWS = 8


def _actions_section(state: Blackboard) -> list[str]:
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


def _focused_table(state: Blackboard, focus: Focus) -> dict[str, Any] | None:
    """The asked-for breakdown (by feature or provider, a percentile or a subject beyond the
    basic measurements), for the section of the question's own topic only."""
    if state.focus is not focus:
        return None
    table: dict[str, Any] | None = state.facts.get("breakdown")
    return table


def _cost_section(state: Blackboard) -> list[str]:
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


def _latency_section(state: Blackboard) -> list[str]:
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


def _errors_section(state: Blackboard) -> list[str]:
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


def _compare_section(state: Blackboard) -> list[str]:
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


def _trend_section(state: Blackboard) -> list[str]:
    trend = state.facts["usage_trend"]
    window = trend["window_days"]
    now, before, change = trend["current"], trend["previous"], trend["change"]
    lines = [f"### {trend_label(window)}", ""]
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


def _subject_section(state: Blackboard) -> list[str]:
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


def _caching_section(state: Blackboard) -> list[str]:
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


#: Each analysis section by the name ``answer.SECTION_ORDER`` uses.
SECTIONS: dict[str, Callable[[Blackboard], list[str]]] = {
    "actions": _actions_section,
    "cost": _cost_section,
    "caching": _caching_section,
    "latency": _latency_section,
    "errors": _errors_section,
    "compare": _compare_section,
    "trend": _trend_section,
    "subject": _subject_section,
}
