"""The actions agent: turns the findings into a short, ranked list of things to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runwire.agents import analytics
from runwire.agents.blackboard import Action, Blackboard, Focus
from runwire.agents.context import AgentContext
from runwire.agents.formatting import format_count, format_ms, format_pct, format_usd
from runwire.agents.toolbox import with_records
from runwire.domain.usage import UsageRecord
from runwire.store.summary import SLOW_FAILURE_MS

__all__ = ["ActionsAgent", "rank_actions"]

# An action saving less than a cent a month is noise, whatever its percentage.
_MIN_SAVING_USD = 0.01
# A model is flagged for reliability when it fails this often and twice as often as the rest.
_ERROR_RATE_FLOOR_PCT = 5.0
# A model is flagged for latency when its p95 is this slow and 1.5x the overall p95.
_SLOW_P95_MS = 5000.0
_SIMPLE_TASK_TOKENS = 50  # answers this short are classification/extraction-like
# Failed calls this slow look like timeouts (a store-kept summary counts them: no record read).
_TIMEOUT_LIKE_MS = SLOW_FAILURE_MS
# The kind of action a question about each topic wants first (other questions: savings first).
_FOCUS_KIND = {
    Focus.LATENCY: "latency",
    Focus.ERRORS: "reliability",
    Focus.CACHING: "cache",
}


def rank_actions(
    facts: dict[str, Any],
    records: Sequence[UsageRecord],
    focus: Focus = Focus.COST,
    max_actions: int = 5,
    subjects: Sequence[str] = (),
) -> list[Action]:
    """Concrete actions from the tools' results, ranked.

    Actions of the kind the question is about come first, then those naming one of the
    question's ``subjects`` (models or features); then the biggest monthly saving first.
    Savings are estimates from the data's span scaled to 30 days, and may overlap (a call served
    from a cache no longer needs a cheaper model).
    """
    actions = [*_model_actions(facts), *_cache_actions(facts)]
    actions += _reliability_actions(facts, records)
    actions += _latency_actions(facts)
    lead = _FOCUS_KIND.get(focus, "")

    def names_subject(action: Action) -> bool:
        words = set(action.title.replace("'s", "").split())
        return any(name in words for name in subjects)

    actions.sort(
        key=lambda a: (a.kind != lead, not names_subject(a), -a.monthly_savings_usd, a.title)
    )
    return actions[:max_actions]


class ActionsAgent:
    """Ranks the concrete actions; fills ``state.actions``."""

    name = "actions"

    async def run(self, ctx: AgentContext, state: Blackboard) -> str:
        """Rank the actions from ``state.facts``; return a one-line summary."""
        lead = _FOCUS_KIND.get(state.focus, "")
        subjects = [s.name for s in state.asked.subjects] if state.asked else []
        await ctx.thinking(
            self.name,
            f"Turning {len(state.findings)} findings into concrete actions, ranked by estimated "
            f"monthly saving{f', with {lead} actions first' if lead else ''}.",
        )

        async def rank(max_actions: int) -> list[dict[str, Any]]:
            state.actions = await with_records(
                state.records,
                lambda: rank_actions(
                    state.facts, state.records, state.focus, max_actions, subjects
                ),
            )
            return [action.public() for action in state.actions]

        ranked = await ctx.call_tool(self.name, "rank_actions", {"max_actions": 5}, rank)
        state.facts["rank_actions"] = ranked
        if not state.actions:
            await ctx.thinking(
                self.name,
                "Nothing stands out: no cheaper model, no repeated prompts, no unusually "
                "failing or slow model. Your setup looks lean already.",
            )
            return "No action needed."
        total = sum(a.monthly_savings_usd for a in state.actions)
        await ctx.thinking(
            self.name,
            f"{len(state.actions)} actions, worth up to {format_usd(total)} a month together. "
            f"First: {state.actions[0].title}.",
        )
        return f"{len(state.actions)} actions; up to {format_usd(total)}/month."


def _model_actions(facts: dict[str, Any]) -> list[Action]:
    out = []
    for row in facts["find_cheaper_models"]["models"]:
        if row["monthly_savings_usd"] < _MIN_SAVING_USD:
            continue
        where = " and ".join(row["top_features"][:2]) or "its calls"
        if row["avg_completion_tokens"] <= _SIMPLE_TASK_TOKENS:
            check = (
                f"Its answers average {row['avg_completion_tokens']:g} tokens: a short, simple "
                f"task that a {row['candidate_tier']} model handles well. Spot-check a sample of "
                "outputs, then switch."
            )
        else:
            if row["same_tier"]:
                check = f"{row['candidate']} is in the same quality tier; confirm on your evals."
            else:
                check = (
                    f"{row['candidate']} is one quality tier down ({row['candidate_tier']}): run "
                    "your evals on it before switching."
                )
            if row["alternatives"]:
                others = ", ".join(
                    f"{alt['model']} ({format_usd(alt['monthly_cost_usd'])} a month)"
                    for alt in row["alternatives"]
                )
                check += f" Closer alternatives: {others}."
        out.append(
            Action(
                kind="switch_model",
                title=f"Move {where} from {row['model']} to {row['candidate']}",
                detail=(
                    f"{format_usd(row['monthly_cost_usd'])} a month today, "
                    f"{format_usd(row['candidate_monthly_cost_usd'])} on {row['candidate']} for "
                    f"the same tokens ({format_pct(row['savings_pct'])} less). {check}"
                ),
                monthly_savings_usd=row["monthly_savings_usd"],
            )
        )
    return out


def _cache_actions(facts: dict[str, Any]) -> list[Action]:
    cache = facts["find_cache_candidates"]
    if cache["monthly_saving_usd"] < _MIN_SAVING_USD:
        return []
    top = cache["top_features"][0]
    return [
        Action(
            kind="cache",
            title=f"Cache responses for {top['feature']}",
            detail=(
                f"{format_count(top['repeated_calls'])} of its calls "
                f"({format_pct(top['repeat_share_pct'])}) repeated a prompt already answered. A "
                "response cache keyed on the prompt fingerprint would have served them; across "
                f"all features repeats cost {format_usd(cache['monthly_saving_usd'])} a month."
            ),
            monthly_savings_usd=cache["monthly_saving_usd"],
        )
    ]


def _reliability_actions(facts: dict[str, Any], records: Sequence[UsageRecord]) -> list[Action]:
    errors = facts["error_rates"]
    worst = errors["models"][0] if errors["models"] else None
    floor = max(_ERROR_RATE_FLOOR_PCT, 2 * errors["overall"]["rate_pct"])
    if worst is None or worst["errors"] < 3 or worst["rate_pct"] < floor:
        return []
    failures = analytics.failures_of(records, worst["provider"], worst["model"], _TIMEOUT_LIKE_MS)
    slow = failures["slow"]
    wasted = failures["cost_usd"] * analytics.monthly_factor(records)
    how = f"{slow} of them after 10 s or more, like timeouts" if slow else "most of them fast"
    return [
        Action(
            kind="reliability",
            title=f"Fix {worst['model']}'s {format_pct(worst['rate_pct'])} error rate",
            detail=(
                f"{worst['errors']} of {format_count(worst['calls'])} calls failed ({how}), "
                f"against {format_pct(errors['overall']['rate_pct'])} overall. Set a client "
                "timeout with a retry on a fallback model; failed calls still cost "
                f"{format_usd(wasted)} a month."
            ),
            monthly_savings_usd=round(wasted, 4),
        )
    ]


def _latency_actions(facts: dict[str, Any]) -> list[Action]:
    latency = facts["latency_percentiles"]
    overall = latency["overall"]["p95"]
    if not latency["models"] or overall is None:
        return []
    slowest = latency["models"][0]
    if slowest["p95"] < max(_SLOW_P95_MS, 1.5 * overall):
        return []
    return [
        Action(
            kind="latency",
            title=f"Cut the tail latency of {slowest['model']} (p95 {format_ms(slowest['p95'])})",
            detail=(
                f"Its p95 is {format_ms(slowest['p95'])} against {format_ms(overall)} overall. "
                "Stream its responses so users see text at once, cap max_tokens, or route "
                "latency-sensitive calls to a faster model."
            ),
            monthly_savings_usd=0.0,
        )
    ]
