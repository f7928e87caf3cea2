"""The answer's draft: the headline, then the sections in the order the question's kind asks.

The draft is complete and correct on its own: every figure comes from the tools' results. A run
with data gets :func:`compose_report` (or :func:`compose_short` when its kind needs no analysis:
what the data holds, an honest "that is outside your data", a clarifying question); a run
without enough data gets :func:`compose_next_steps`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runwire.agents.blackboard import Blackboard, Focus
from runwire.agents.formatting import format_count, format_usd, table_cell
from runwire.agents.headline import headline
from runwire.agents.sections import SECTIONS
from runwire.usage.pricing import PricingTable

__all__ = ["SECTION_ORDER", "compose_next_steps", "compose_report", "compose_short"]

#: The sections of each kind's answer, in order.
SECTION_ORDER = {
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


def compose_report(state: Blackboard, pricing: PricingTable) -> str:
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
    for name in SECTION_ORDER[state.focus]:
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


def compose_short(state: Blackboard) -> str:
    """The answer that needs no analysis: what the data holds, an honest "that is outside your
    data", or a clarifying question; each says what runwire can tell."""
    lines = [headline(state)]
    sections = _sections()
    for name in SECTION_ORDER[state.focus]:
        lines += ["", *sections[name](state)]
    return "\n".join(lines) + "\n"


def _sections() -> dict[str, Callable[[Blackboard], list[str]]]:
    return {
        **SECTIONS,
        "data": _data_section,
        "scope": _scope_section,
        "clarify": _clarify_section,
        "ask": _ask_section,
    }


def compose_next_steps(state: Blackboard) -> str:
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


def _data_section(state: Blackboard) -> list[str]:
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


def _scope_section(state: Blackboard) -> list[str]:
    check = state.facts["check_usage_data"]
    return [
        f"Your usage records hold only {_RECORD_FIELDS}. From your "
        f"{format_count(check['calls'])} calls ({check['first_call'][:10]} to "
        f"{check['last_call'][:10]}, {check['models']} models) I can tell you about cost and "
        "savings, latency, errors, caching, comparisons and trends.",
    ]


def _clarify_section(state: Blackboard) -> list[str]:
    check = state.facts["check_usage_data"]
    return [
        f"Your usage data has {format_count(check['calls'])} calls from "
        f"{check['first_call'][:10]} to {check['last_call'][:10]} across {check['models']} models "
        f"and {check['features']} features. Tell me which you mean and I will answer.",
    ]


def _ask_section(state: Blackboard) -> list[str]:
    return ["**You can ask, for example:**", "", *(f"- {line}" for line in _ASK)]
