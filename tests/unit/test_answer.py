"""The answer's draft (agents/answer.py, headline.py, sections.py): the text a user reads for
given records, on small hand-built data whose figures are known."""

from __future__ import annotations

from typing import Any

import pytest

from runwire.agents import analytics
from runwire.agents.answer import compose_next_steps, compose_report, compose_short
from runwire.agents.blackboard import Action, Blackboard, Focus
from runwire.agents.headline import headline
from runwire.agents.names import Subject
from runwire.agents.question import Question
from runwire.domain.usage import UsageRecord
from runwire.usage.pricing import PricingTable

pytestmark = pytest.mark.unit

T0 = 1_740_830_400_000  # 2025-03-01T12:00:00Z
DAY = 86_400_000


def rec(
    day: float = 0,
    model: str = "gpt-4o",
    *,
    provider: str = "openai",
    latency: float = 100.0,
    cost: float = 1.0,
    status: str = "ok",
    prompt_hash: str | None = None,
    feature: str | None = None,
) -> UsageRecord:
    return UsageRecord(
        timestamp=T0 + int(day * DAY),
        provider=provider,
        model=model,
        prompt_tokens=100,
        completion_tokens=10,
        latency_ms=latency,
        cost_usd=cost,
        status=status,
        prompt_hash=prompt_hash,
        feature=feature,
    )


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


def state_of(
    records: list[UsageRecord],
    focus: Focus = Focus.COST,
    *,
    asked: Question | None = None,
    actions: list[Action] | None = None,
    **facts: Any,
) -> Blackboard:
    """A state as the offline agents leave it for the reporting agent: the basic measurements
    of ``records`` (plus ``facts``), the ranked ``actions`` and triage's reading."""
    return Blackboard(
        question="?",
        asked=asked,
        focus=focus,
        records=records,
        record_count=len(records),
        has_data=bool(records),
        facts={
            "usage_overview": analytics.overview(records),
            "cost_breakdown": analytics.cost_by_model(records),
            "latency_percentiles": analytics.latency_percentiles(records),
            "error_rates": analytics.error_rate(records),
            "find_cache_candidates": analytics.cache_candidates(records),
            **facts,
        },
        actions=actions or [],
    )


# Three calls of $1 over two days: $45.00 for 30 days.
THREE = [rec(0), rec(1), rec(2)]


def test_the_savings_headline_is_the_actions_sum_against_the_monthly_spend() -> None:
    actions = [Action("cache", "Cache", "d", 6.0), Action("switch_model", "Switch", "d", 3.0)]
    assert headline(state_of(THREE, actions=actions)) == (
        "## You could save up to $9.00 a month (20.0% of your $45.00 monthly LLM spend)"
    )


def test_no_saving_says_so_and_free_calls_have_no_share() -> None:
    assert headline(state_of(THREE)) == (
        "## Your LLM spend is about $45.00 a month, with no obvious waste"
    )
    free = [rec(0, cost=0.0), rec(1, cost=0.0)]
    action = [Action("latency", "Stream", "d", 2.0)]
    # A saving against a spend of nothing has no share to show.
    assert headline(state_of(free, actions=action)) == (
        "## You could save up to $2.00 a month (n/a of your $0.00 monthly LLM spend)"
    )


def test_the_actions_section_numbers_them_and_shows_only_real_savings() -> None:
    actions = [
        Action("cache", "Cache repeated prompts", "Add a cache.", 6.0),
        Action("latency", "Stream | answers", "Stream them.", 0.0),
    ]
    report = compose_report(state_of(THREE, actions=actions), PricingTable.load())
    assert "1. **Cache repeated prompts** — about $6.00 a month. Add a cache." in report
    assert "2. **Stream \\| answers**. Stream them." in report  # no saving, no "about $0.00"
    assert "Nothing stands out: your setup looks lean already." in compose_report(
        state_of(THREE), PricingTable.load()
    )


def test_the_cost_table_folds_the_models_past_eight_into_one_row(pricing: PricingTable) -> None:
    # Ten models, model-0 the dearest ($10) to model-9 ($1): $55 in all.
    records = [rec(0, f"model-{i}", cost=10.0 - i) for i in range(10)] + [rec(1, "model-0", cost=0)]
    report = compose_report(state_of(records), pricing)
    lines = report.splitlines()
    start = lines.index("### Cost by model")
    table = lines[start + 2 : lines.index("", start + 2)]
    assert table[2] == "| model-0 | openai | 2 | 220 | $10.00 | 18.2% |"
    assert table[9] == "| model-7 | openai | 1 | 110 | $3.00 | 5.5% |"
    # model-8 ($2, 3.6%) and model-9 ($1, 1.8%) in one row.
    assert table[10] == "| *2 more models* | | 2 | 220 | $3.00 | 5.4% |"
    assert table[11] == "| **Total** | | 11 | 1,210 | **$55.00** | 100% |"
    assert len(table) == 12


def test_one_call_reads_as_a_day_and_its_own_percentiles(pricing: PricingTable) -> None:
    report = compose_report(state_of([rec(0, latency=1234.0, cost=0.5)]), pricing)
    assert "You made 1 LLM calls between 2025-03-01 and 2025-03-01 (1.0 days), costing $0.50 " in (
        report
    )
    assert "(about $15.00 per 30 days) across 1 models from 1 providers." in report
    assert "Overall p50 / p95 / p99: 1,234 ms / 1,234 ms / 1,234 ms" in report
    assert "0.0% of calls failed (0 of 1)." in report
    assert "| Model | Failed |" not in report  # no failing model, no table of them
    assert report.endswith(
        f"*Prices as of {pricing.as_of}: {pricing.source} Monthly figures scale the 1.0 days of "
        "your data to 30 days; savings are estimates and can overlap.*\n"
    )


def test_the_caching_section_says_why_a_cache_would_not_help(pricing: PricingTable) -> None:
    unhashed = compose_report(state_of(THREE), pricing)
    assert "Your records carry no `prompt_hash`, so repeated prompts cannot be found." in unhashed
    distinct = [rec(0, prompt_hash="a"), rec(1, prompt_hash="b")]
    assert "No successful call repeated an earlier prompt: a cache would not help." in (
        compose_report(state_of(distinct), pricing)
    )
    repeated = [rec(0, prompt_hash="a", feature="chat"), rec(1, prompt_hash="a", feature="chat")]
    report = compose_report(state_of(repeated, Focus.CACHING), pricing)
    assert report.startswith(
        "## Caching: 50.0% of calls repeat a prompt, worth about $30.00 a month\n"
    )
    assert "| chat | 1 | 50.0% | $1.00 |" in report


def test_each_topic_leads_with_its_own_section(pricing: PricingTable) -> None:
    records = [rec(0, "a", latency=100), rec(1, "b", latency=900, status="error")]
    order = {
        Focus.COST: "### Recommended actions",
        Focus.SPEND: "### Cost by model",
        Focus.LATENCY: "### Latency",
        Focus.ERRORS: "### Errors",
        Focus.CACHING: "### Caching",
    }
    for focus, first in order.items():
        sections = [
            line
            for line in compose_report(state_of(records, focus), pricing).splitlines()
            if line.startswith("### ")
        ]
        assert sections[0] == first, focus


def test_latency_and_error_headlines_name_the_worst_model() -> None:
    records = [
        rec(0, "fast", latency=100),
        rec(1, "slow", latency=2500, status="error"),
        rec(1, "slow", latency=1500),
    ]
    assert headline(state_of(records, Focus.LATENCY)) == (
        "## Latency: p95 is 2,500 ms overall; slow is slowest at p95 2,500 ms"
    )
    assert headline(state_of(records, Focus.ERRORS)) == (
        "## Errors: 33.3% of calls failed; slow fails most (50.0%)"
    )


def test_a_latency_tie_names_the_first_model_in_the_table() -> None:
    # Equal p95: the table orders by provider then model, so "a" is named.
    records = [rec(0, "b", latency=700), rec(1, "a", latency=700)]
    assert headline(state_of(records, Focus.LATENCY)) == (
        "## Latency: p95 is 700 ms overall; a is slowest at p95 700 ms"
    )


def test_a_breakdown_by_feature_leads_the_spend_answer(pricing: PricingTable) -> None:
    records = [rec(0, cost=3.0, feature="chat"), rec(1, cost=1.0, feature="search")]
    asked = Question(Focus.SPEND, group_by="feature")
    state = state_of(
        records, Focus.SPEND, asked=asked, breakdown=analytics.breakdown(records, "feature")
    )
    report = compose_report(state, pricing)
    assert report.startswith("## Spend by feature: chat costs the most, $3.00 of $4.00 (75.0%)\n")
    assert "| chat | 1 | $3.00 | $3.00 | 75.0% |" in report
    assert "| **Total** | 2 | **$4.00** | | 100% |" in report
    # The one subject asked about gets its own line.
    one = Question(Focus.SPEND, subjects=(Subject("feature", "search"),), group_by="feature")
    state.asked = one
    assert headline(state) == (
        "## search cost $1.00 over 1.0 days (about $30.00 a month), 25.0% of your spend"
    )


def test_a_trend_headline_says_which_way_and_when_it_cannot(pricing: PricingTable) -> None:
    # $2 in the 7 days before the last 7, $3 in the last 7: up 50%.
    records = [rec(0, cost=2.0), rec(10, cost=1.0), rec(12, cost=2.0)]
    trend = analytics.trend(records, 7)
    state = state_of(records, Focus.TREND, asked=Question(Focus.TREND), usage_trend=trend)
    assert headline(state) == (
        "## The last 7 days against the 7 before: cost up 50.0% ($3.00 against $2.00)"
    )
    flat = [rec(0, cost=2.0), rec(12, cost=2.0)]
    state = state_of(flat, Focus.TREND, usage_trend=analytics.trend(flat, 7))
    assert headline(state) == (
        "## The last 7 days against the 7 before: cost unchanged ($2.00 against $2.00)"
    )
    from_nothing = [rec(0, cost=0.0), rec(12, cost=2.0)]
    state = state_of(from_nothing, Focus.TREND, usage_trend=analytics.trend(from_nothing, 7))
    assert headline(state).startswith("## The last 7 days against the 7 before: cost up from ")
    recent = [rec(0), rec(2)]
    state = state_of(recent, Focus.TREND, usage_trend=analytics.trend(recent, 7))
    assert headline(state) == (
        "## Not enough history for a trend: your data covers 2.0 days, with no calls in the 7 "
        "days before the last 7"
    )
    assert "All 2 of your calls are in the last 7 days (2025-03-01 to 2025-03-03)." in (
        compose_report(state, pricing)
    )


def test_an_error_trend_moves_in_points() -> None:
    records = [rec(0), rec(1, status="error"), rec(12, status="error"), rec(13, status="error")]
    asked = Question(Focus.TREND, topic=Focus.ERRORS)
    state = state_of(records, Focus.TREND, asked=asked, usage_trend=analytics.trend(records, 7))
    assert headline(state) == (
        "## The last 7 days against the 7 before: error rate up 50.0 points (100.0% against 50.0%)"
    )


def compared(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"group_by": "model", "rows": rows, "lowest": {}}


def row(name: str, per_call: float, p95: float | None) -> dict[str, Any]:
    return {"name": name, "cost_per_call_usd": per_call, "p95": p95, "error_rate_pct": 0.0}


def test_a_comparison_headline_names_each_measure_winner() -> None:
    one_wins = compared([row("big", 0.02, 900.0), row("small", 0.01, 400.0)])
    state = state_of(THREE, Focus.COMPARE, compare_usage=one_wins)
    assert headline(state) == (
        "## big vs small: small costs less per call ($0.01 against $0.02) and is faster at p95 "
        "(400 ms against 900 ms)"
    )
    split = compared([row("big", 0.02, 300.0), row("small", 0.01, 400.0)])
    state = state_of(THREE, Focus.COMPARE, compare_usage=split)
    assert headline(state) == (
        "## big vs small: small costs less per call ($0.01 against $0.02); big is faster at p95 "
        "(300 ms against 400 ms)"
    )
    # A model without latency figures is never the fastest; three rows show the winner alone.
    three = compared([row("a", 0.03, None), row("b", 0.02, 500.0), row("c", 0.01, 600.0)])
    state = state_of(THREE, Focus.COMPARE, compare_usage=three)
    assert headline(state) == (
        "## a, b, c compared: c costs less per call ($0.01); b is faster at p95 (500 ms)"
    )


def test_short_answers_say_what_is_missing_or_ask_back() -> None:
    check = {
        "calls": 3,
        "first_call": "2025-03-01T12:00:00Z",
        "last_call": "2025-03-03T12:00:00Z",
        "models": 1,
        "features": 0,
    }
    off = state_of(
        THREE,
        Focus.OFF_TOPIC,
        asked=Question(Focus.OFF_TOPIC, missing="who made each call"),
        check_usage_data=check,
    )
    short = compose_short(off)
    assert short.startswith("## Your usage data does not record who made each call\n\n")
    assert "From your 3 calls (2025-03-01 to 2025-03-03, 1 models) I can tell you" in short
    assert "**You can ask, for example:**" in short
    unclear = state_of(
        THREE,
        Focus.UNCLEAR,
        asked=Question(Focus.UNCLEAR, clarify="Which gpt-4 do you mean: gpt-4o or gpt-4.1?"),
        check_usage_data=check,
    )
    assert compose_short(unclear).startswith(
        "## Which gpt-4 do you mean: gpt-4o or gpt-4.1?\n\nYour usage data has 3 calls from "
        "2025-03-01 to 2025-03-03 across 1 models and 0 features."
    )
    # An analysis kind asked without analyses still gets a short answer, never a crash.
    assert compose_report(off, PricingTable.load()) == short


def test_the_data_answer_lists_what_the_records_hold() -> None:
    records = [rec(0, feature="chat", prompt_hash="x"), rec(1, "mini", status="error")]
    state = state_of(records, Focus.DATA, describe_data=analytics.inventory(records))
    answer = compose_short(state)
    assert answer.startswith(
        "## Your usage data: 2 LLM calls from 2025-03-01 to 2025-03-02 (1.0 days)\n"
    )
    assert "- **Models** (calls): gpt-4o (1), mini (1)" in answer
    assert "- **Features** (calls): chat (1)" in answer
    assert (
        "- 1 calls carry a prompt fingerprint (what finds repeated prompts), 1 a feature; 1 failed."
        in answer
    )
    none = [rec(0)]
    assert "- **Features** (calls): none recorded" in compose_short(
        state_of(none, Focus.DATA, describe_data=analytics.inventory(none))
    )


def test_the_next_steps_answer_counts_what_was_found() -> None:
    steps = ["Import your usage.", "Ask again."]
    empty = Blackboard(question="?", next_steps=steps)
    answer = compose_next_steps(empty)
    assert answer.startswith("## Add your usage data to get an answer\n\nI could not find any ")
    assert answer.endswith("**Next steps**\n\n1. Import your usage.\n2. Ask again.\n")
    few = Blackboard(question="?", record_count=1234, next_steps=steps)
    assert "I found only 1,234 LLM calls in your usage data" in compose_next_steps(few)
