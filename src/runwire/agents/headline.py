"""The answer's headline: its first line, the direct answer to the question's kind.

Each kind has its own sentence, built from the facts the tools gathered (``Blackboard.facts``):
the savings for a cost question, the slowest model for a latency question, the winner of each
measure for a comparison, and so on.
"""

from __future__ import annotations

from typing import Any

from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.formatting import format_count, format_ms, format_pct, format_usd

__all__ = ["headline", "trend_label"]


def headline(state: Blackboard) -> str:
    """The answer's first line: the direct answer to what was asked (a Markdown heading).

    One line whatever the names in it hold (a model or feature name is the user's own text).
    """
    return " ".join(_headline(state).split())


def _headline(state: Blackboard) -> str:
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


def _subject_row(state: Blackboard) -> dict[str, Any] | None:
    """The breakdown row of the question's one subject, when there is one in the data."""
    subject = state.asked.subject if state.asked else None
    table = state.facts.get("breakdown")
    if subject is None or table is None or table["group_by"] != subject.kind:
        return None
    return next((row for row in table["rows"] if row["name"] == subject.name), None)


def _grouped(state: Blackboard) -> dict[str, Any] | None:
    """The breakdown the question asked for (by feature or provider, a percentile or a subject
    beyond the basic measurements), if the data agent made one."""
    table: dict[str, Any] | None = state.facts.get("breakdown")
    return table


def _savings_headline(state: Blackboard) -> str:
    monthly = state.facts["usage_overview"]["monthly_cost_usd"]
    savings = sum(a.monthly_savings_usd for a in state.actions)
    if savings > 0:
        share = format_pct(round(100 * savings / monthly, 1)) if monthly else "n/a"
        return (
            f"## You could save up to {format_usd(savings)} a month "
            f"({share} of your {format_usd(monthly)} monthly LLM spend)"
        )
    return f"## Your LLM spend is about {format_usd(monthly)} a month, with no obvious waste"


def _spend_headline(state: Blackboard) -> str:
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


def _latency_headline(state: Blackboard) -> str:
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


def _errors_headline(state: Blackboard) -> str:
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


def _caching_headline(state: Blackboard) -> str:
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


def _compare_metrics(state: Blackboard) -> list[Focus]:
    topic = state.asked.topic if state.asked else None
    first = topic if topic in (Focus.LATENCY, Focus.ERRORS) else Focus.SPEND
    second = Focus.LATENCY if first is Focus.SPEND else Focus.SPEND
    return [first, second]


def _compare_headline(state: Blackboard) -> str:
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


def trend_label(window: int) -> str:
    return (
        "The last day against the day before"
        if window == 1
        else (f"The last {window} days against the {window} before")
    )


def _trend_headline(state: Blackboard) -> str:
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
    label = trend_label(window)
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


def _subject_headline(state: Blackboard) -> str:
    about = state.facts["describe_subject"]
    if not about["found"]:
        return f"## No calls to {about['name']} in your usage data"
    row = about["row"]
    return (
        f"## {row['name']}: {format_count(row['calls'])} calls costing "
        f"{format_usd(row['cost_usd'])} ({format_pct(row['share_pct'])} of your spend), p95 "
        f"{format_ms(row['p95'])}, {format_pct(row['error_rate_pct'])} errors"
    )
