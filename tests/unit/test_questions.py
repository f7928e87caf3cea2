"""Questions the agents understand (issue 14, item 1): each kind of question gets the answer it
asks for, leading with its headline, offline and deterministically, over the sample data."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runwire.agents import Blackboard, Focus, analytics
from runwire.agents.data import question_tool
from runwire.agents.formatting import format_ms, format_pct, format_usd
from runwire.agents.model_tools import analysis_tools
from runwire.agents.names import Names, Subject
from runwire.agents.question import classify, detect_focus
from runwire.agents.toolbox import Toolbox, with_records
from runwire.agents.tools import TOOLS
from runwire.domain.usage import UsageRecord, UsageSet, UsageView
from runwire.errors import InputError
from runwire.events.model import EventType
from runwire.store.summary import UsageSummary
from runwire.usage.pricing import PricingTable
from tests.unit.test_agents import NOW, Run, assert_well_formed

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


@pytest.fixture(scope="module")
def sample(sample_records: tuple[UsageRecord, ...]) -> UsageSet:
    # One set for the module, as the store hands out: its memo keeps the aggregates between runs.
    return UsageSet(sample_records)  # generate_sample(now_ms=NOW)


Answered = Callable[[str], Awaitable[tuple[Run, str]]]


@pytest.fixture(scope="module")
def answered(sample: UsageSet, pricing: PricingTable) -> Answered:
    """Each question's run over the module's set and its answer, made once for the module: two
    tests read the same runs (nothing reads a run but to check it)."""
    runs: dict[str, tuple[Run, str]] = {}

    async def answer(question: str) -> tuple[Run, str]:
        if question not in runs:
            run = Run(sample, pricing, question=question)
            runs[question] = (run, await run.answer())
        return runs[question]

    return answer


# The question, the kind triage reads it as, and the headline (first line) the answer leads with,
# over generate_sample(now_ms=NOW): 4,071 calls from 2025-04-01 to 2025-04-30.
QUESTIONS = [
    (
        "Where can we cut our LLM costs?",
        "cost",
        "## You could save up to $40.60 a month (79.8% of your $50.89 monthly LLM spend)",
    ),
    (
        "How can I reduce my spend?",
        "cost",
        "## You could save up to $40.60 a month (79.8% of your $50.89 monthly LLM spend)",
    ),
    (
        "hello",
        "cost",
        "## You could save up to $40.60 a month (79.8% of your $50.89 monthly LLM spend)",
    ),
    (
        "How are we doing?",
        "cost",
        "## You could save up to $40.60 a month (79.8% of your $50.89 monthly LLM spend)",
    ),
    (
        "How much do we spend on LLMs?",
        "spend",
        "## You spend about $50.89 a month on LLM calls; claude-3-5-sonnet costs the most ($21.61, 43.6% of $49.61)",
    ),
    (
        "Which feature costs the most?",
        "spend",
        "## Spend by feature: support-chat costs the most, $23.77 of $49.61 (47.9%)",
    ),
    (
        "What does each provider cost us?",
        "spend",
        "## Spend by provider: anthropic costs the most, $23.77 of $49.61 (47.9%)",
    ),
    (
        "How much does gpt-4o cost?",
        "spend",
        "## gpt-4o cost $8.26 over 29.2 days (about $8.47 a month), 16.6% of your spend",
    ),
    (
        "Which models are slowest at p95?",
        "latency",
        "## Latency: p95 is 12,803 ms overall; mistral-large is slowest at p95 37,775 ms",
    ),
    (
        "What is our p99 latency?",
        "latency",
        "## Latency: p99 is 28,896 ms overall; mistral-large is slowest at p99 74,352 ms",
    ),
    (
        "Show median latency by feature",
        "latency",
        "## Latency by feature: p50 is 2,970 ms overall; code-review is slowest at p50 12,734 ms",
    ),
    (
        "p95 latency by provider",
        "latency",
        "## Latency by provider: p95 is 12,803 ms overall; mistral is slowest at p95 37,775 ms",
    ),
    (
        "How fast is claude-3-5-sonnet?",
        "latency",
        "## Latency of claude-3-5-sonnet: p95 is 13,122 ms against 12,803 ms overall",
    ),
    (
        "Why is everything so slow?",
        "latency",
        "## Latency: p95 is 12,803 ms overall; mistral-large is slowest at p95 37,775 ms",
    ),
    (
        "Which model fails the most?",
        "errors",
        "## Errors: 2.4% of calls failed; mistral-large fails most (13.0%)",
    ),
    (
        "What are our error rates by feature?",
        "errors",
        "## Errors by feature: 2.4% of calls failed; code-review fails most (6.8%)",
    ),
    (
        "How reliable is gpt-4.1?",
        "errors",
        "## Errors of gpt-4.1: 3.0% of its calls failed (5 of 165) against 2.4% overall",
    ),
    (
        "Would a cache help?",
        "caching",
        "## Caching: 9.7% of calls repeat a prompt, worth about $3.57 a month",
    ),
    (
        "Are we sending duplicate prompts in summarize?",
        "caching",
        "## Caching in summarize: 36.6% of its calls repeat a prompt, $2.68 spent on answers you already had",
    ),
    (
        "Compare gpt-4o and gpt-4o-mini",
        "compare",
        "## gpt-4o vs gpt-4o-mini: gpt-4o-mini costs less per call ($0.0004 against $0.0068) and is faster at p95 (900 ms against 1,521 ms)",
    ),
    (
        "gpt-4o vs claude-3-5-sonnet: which is faster?",
        "compare",
        "## gpt-4o vs claude-3-5-sonnet: gpt-4o is faster at p95 (1,521 ms against 13,122 ms) and costs less per call ($0.0068 against $0.02)",
    ),
    (
        "Compare openai with anthropic",
        "compare",
        "## openai vs anthropic: openai costs less per call ($0.0096 against $0.02) and is faster at p95 (10,834 ms against 12,310 ms)",
    ),
    (
        "Compare providers",
        "compare",
        "## openai, anthropic, google, mistral compared: google costs less per call ($0.0078) and is faster at p95 (8,939 ms)",
    ),
    (
        "Is gemini-1.5-pro or gemini-2.0-flash more reliable?",
        "compare",
        "## gemini-1.5-pro vs gemini-2.0-flash: gemini-2.0-flash fails less often (2.6% against 2.8%) and costs less per call ($0.0011 against $0.01)",
    ),
    (
        "How did this week compare with last week?",
        "trend",
        "## The last 7 days against the 7 before: cost down 0.6% ($11.78 against $11.85)",
    ),
    (
        "Is our spend going up?",
        "trend",
        "## The last 7 days against the 7 before: cost down 0.6% ($11.78 against $11.85)",
    ),
    (
        "Has latency changed over time?",
        "trend",
        "## The last 7 days against the 7 before: p95 latency down 4.4% (12,326 ms against 12,899 ms)",
    ),
    (
        "This month against last month",
        "trend",
        "## Not enough history for a trend: your data covers 29.2 days, with no calls in the 30 days before the last 30",
    ),
    (
        "Tell me about gpt-4o",
        "subject",
        "## gpt-4o: 1,208 calls costing $8.26 (16.6% of your spend), p95 1,521 ms, 2.1% errors",
    ),
    (
        "How is support-chat doing?",
        "subject",
        "## support-chat: 1,465 calls costing $23.77 (47.9% of your spend), p95 12,310 ms, 1.6% errors",
    ),
    (
        "Tell me about claude",
        "subject",
        "## anthropic: 1,465 calls costing $23.77 (47.9% of your spend), p95 12,310 ms, 1.6% errors",
    ),
    (
        "What about sonnet?",
        "subject",
        "## claude-3-5-sonnet: 1,073 calls costing $21.61 (43.6% of your spend), p95 13,122 ms, 1.7% errors",
    ),
    ("Tell me about claude-3-opus", "subject", "## No calls to claude-3-opus in your usage data"),
    (
        "What data do you have?",
        "data",
        "## Your usage data: 4,071 LLM calls from 2025-04-01 to 2025-04-30 (29.2 days)",
    ),
    (
        "What can you do?",
        "data",
        "## Your usage data: 4,071 LLM calls from 2025-04-01 to 2025-04-30 (29.2 days)",
    ),
    (
        "help",
        "data",
        "## Your usage data: 4,071 LLM calls from 2025-04-01 to 2025-04-30 (29.2 days)",
    ),
    (
        "How accurate are gpt-4o's answers?",
        "off_topic",
        "## Your usage data does not record how good the answers were",
    ),
    (
        "Which customer spends the most?",
        "off_topic",
        "## Your usage data does not record who made each call",
    ),
    (
        "What is the weather in Paris?",
        "off_topic",
        "## I can only answer questions about your LLM usage",
    ),
    (
        "Write me a poem about the sea",
        "off_topic",
        "## I can only answer questions about your LLM usage",
    ),
    (
        "Tell me about gpt-4",
        "unclear",
        "## Which gpt-4 do you mean: gpt-4.1, gpt-4o or gpt-4o-mini?",
    ),
    (
        "Compare gpt-4o",
        "unclear",
        "## Compare gpt-4o with which model? Your models: claude-3-5-sonnet, gemini-1.5-pro, gemini-2.0-flash, claude-3-5-haiku, gpt-4o-mini, gpt-4.1 or mistral-large.",
    ),
    (
        "compare them",
        "unclear",
        "## What should I compare? Your models: gpt-4o, claude-3-5-sonnet, gemini-1.5-pro, gemini-2.0-flash, claude-3-5-haiku, gpt-4o-mini, gpt-4.1 or mistral-large.",
    ),
    ("Is it better?", "unclear", "## What would you like to know about your LLM usage?"),
    (
        "Can you summarize my usage?",
        "cost",
        "## You could save up to $40.60 a month (79.8% of your $50.89 monthly LLM spend)",
    ),
    (
        "What is the carbon footprint of our usage?",
        "off_topic",
        "## Your usage data does not record energy use or hardware",
    ),
    (
        "How have errors changed since yesterday?",
        "trend",
        "## The last day against the day before: error rate down 3.1 points (0.6% against 3.7%)",
    ),
    (
        "Which provider fails most often?",
        "errors",
        "## Errors by provider: 2.4% of calls failed; mistral fails most (13.0%)",
    ),
    (
        "Compare the features",
        "compare",
        "## support-chat, classify-tickets, summarize, code-review compared: classify-tickets costs less per call ($0.0060) and is faster at p95 (1,448 ms)",
    ),
]


@pytest.mark.parametrize(
    ("question", "kind", "headline"), QUESTIONS, ids=[q for q, _, _ in QUESTIONS]
)
async def test_the_answer_leads_with_what_was_asked(
    answered: Answered, question: str, kind: str, headline: str
) -> None:
    run, answer = await answered(question)
    assert answer.splitlines()[0] == headline
    assert run.streamed() == answer
    assert_well_formed(run.events)
    [reading] = [
        e.data["result"]
        for e in run.of(EventType.TOOL_COMPLETED, "triage")
        if e.data["tool_name"] == "classify_question"
    ]
    assert reading["kind"] == kind
    [composed] = run.of(EventType.TOOL_COMPLETED, "reporting")
    assert composed.data["result"]["headline"] == headline.removeprefix("## ")
    # The offline answer passes the quality gate by construction: every figure is a tool's.
    [verdict] = run.quality
    assert (verdict["outcome"], verdict["score"], verdict["reasons"]) == ("passed", 1.0, [])
    assert verdict["figures"] > 0
    assert not run.of(EventType.QUALITY_WARNING)


# The tools a store-kept summary's digest does not answer (they read the records).
BEYOND_DIGEST = {"breakdown", "compare_usage", "usage_trend", "describe_subject"}


async def test_a_set_the_store_gave_with_its_summary_gets_the_very_same_answers(
    sample: UsageSet, pricing: PricingTable, answered: Answered
) -> None:
    # The store hands a set with its summary (store/summary.py): its first aggregates are read
    # from that, not the records; nothing a user sees may differ.
    def shape(run: Run) -> list[tuple[Any, ...]]:
        return [
            (e.type, e.agent_name, {k: v for k, v in e.data.items() if k != "duration_ms"})
            for e in run.events
        ]

    summarized = UsageSet(sample)
    digest = UsageSummary.of(summarized).digest()
    summarized.memo["usage_digest"] = digest
    reads: list[str] = []
    needed: dict[str, bool] = {}
    for question in dict.fromkeys(q for q, _, _ in QUESTIONS):
        # As the store hands a new user's data out: the digest, the records not read yet (a
        # fresh view per question, so each shows whether it needed them).
        async def read_sample(asked: str = question) -> tuple[UsageRecord, ...]:
            reads.append(asked)
            return tuple(sample)

        view = UsageView(len(sample), read_sample)
        view.memo["usage_digest"] = digest
        scanned, expected = await answered(question)  # from the records themselves
        read, lazy = (
            Run(summarized, pricing, question=question),
            Run(view, pricing, question=question),
        )
        assert await read.answer() == expected, question
        assert shape(read) == shape(scanned), question
        assert await lazy.answer() == expected, question
        assert shape(lazy) == shape(scanned), question
        called = {e.data["tool_name"] for e in lazy.of(EventType.TOOL_EXECUTING)}
        needed[question] = bool(called & BEYOND_DIGEST)
    # Only questions whose tools the digest does not answer read the records (once each): a
    # breakdown, a comparison, a trend, one subject.
    assert reads == [q for q, needs in needed.items() if needs]
    assert not {q for q, kind, _ in QUESTIONS if kind in ("cost", "caching")} & set(reads)


def test_the_table_covers_every_kind_of_question() -> None:
    assert len(QUESTIONS) >= 30
    assert {kind for _, kind, _ in QUESTIONS} == {focus.value for focus in Focus}


async def test_the_same_question_gets_the_same_answer_and_events(
    sample: UsageSet, pricing: PricingTable
) -> None:
    def shape(run: Run) -> list[tuple[Any, ...]]:
        return [
            (e.type, e.agent_name, {k: v for k, v in e.data.items() if k != "duration_ms"})
            for e in run.events
        ]

    first, second = (Run(sample, pricing, question="Compare gpt-4o and gpt-4.1") for _ in "ab")
    assert await first.answer() == await second.answer()
    assert shape(first) == shape(second)


async def test_headline_figures_are_the_records_own(
    sample: UsageSet, pricing: PricingTable
) -> None:
    # Recomputed from the records, independently of the analytics module.
    latencies = sorted(r.latency_ms for r in sample)
    p99 = latencies[math.ceil(0.99 * len(latencies)) - 1]
    answer = await Run(sample, pricing, question="What is our p99 latency?").answer()
    assert answer.startswith(f"## Latency: p99 is {format_ms(p99)} overall")

    by_feature: dict[str, float] = {}
    for r in sample:
        by_feature[r.feature or ""] = by_feature.get(r.feature or "", 0.0) + r.cost_usd
    top, cost = max(by_feature.items(), key=lambda item: item[1])
    answer = await Run(sample, pricing, question="Which feature costs the most?").answer()
    assert answer.startswith(f"## Spend by feature: {top} costs the most, {format_usd(cost)} of")

    calls = [r for r in sample if r.model == "gpt-4.1"]
    failed = sum(r.status == "error" for r in calls)
    answer = await Run(sample, pricing, question="How reliable is gpt-4.1?").answer()
    rate = format_pct(round(100 * failed / len(calls), 1))
    assert answer.startswith(f"## Errors of gpt-4.1: {rate} of its calls failed ({failed} of")

    end = max(r.timestamp for r in sample)
    week = sum(r.cost_usd for r in sample if r.timestamp > end - 7 * 86_400_000)
    answer = await Run(sample, pricing, question="Is our spend going up?").answer()
    assert f"({format_usd(week)} against " in answer.splitlines()[0]


async def test_each_kind_measures_what_it_needs(sample: UsageSet, pricing: PricingTable) -> None:
    compare = Run(sample, pricing, question="Compare gpt-4o and gpt-4o-mini")
    answer = await compare.answer()
    assert compare.tools("data")[-1] == "compare_usage"
    [executing] = [
        e
        for e in compare.of(EventType.TOOL_EXECUTING, "data")
        if e.data["tool_name"] == "compare_usage"
    ]
    assert executing.data["tool_args"] == {"group_by": "model", "names": ["gpt-4o", "gpt-4o-mini"]}
    assert "| gpt-4o-mini | 175 |" in answer
    assert "### Cost by model" not in answer  # the comparison, not the whole report

    subject = Run(sample, pricing, question="Tell me about gpt-4o")
    answer = await subject.answer()
    assert subject.tools("data")[-1] == "describe_subject"
    assert "- **A cheaper model**: gpt-4o-mini would cost" in answer
    assert "- **Features using it**: classify-tickets." in answer
    # Actions about the model asked about come first.
    assert "1. **Move classify-tickets from gpt-4o to gpt-4o-mini**" in answer

    absent = await Run(sample, pricing, question="Tell me about claude-3-opus").answer()
    assert absent.splitlines()[2].startswith("Your models: claude-3-5-sonnet, gpt-4o,")
    assert "claude-3-opus (anthropic, frontier tier) lists at $15.00 per 1M input tokens" in absent

    feature = await Run(sample, pricing, question="Tell me about summarize").answer()
    assert "- **Repeated prompts**: 341 of its calls (36.6%)" in feature

    inventory = Run(sample, pricing, question="What data do you have?")
    answer = await inventory.answer()
    assert inventory.started() == ["triage", "data", "reporting"]
    assert inventory.tools("data") == ["usage_overview", "describe_data"]
    assert "- **Models** (calls): gpt-4o (1,208), claude-3-5-sonnet (1,073)" in answer
    assert "**You can ask, for example:**" in answer


@pytest.mark.parametrize(
    ("question", "says"),
    [
        ("What is the weather in Paris?", "I can tell you about cost and savings, latency"),
        ("Which customer spends the most?", "the feature that made it"),
        ("Tell me about gpt-4", "Tell me which you mean"),
    ],
)
async def test_off_topic_and_unclear_questions_get_a_short_answer_without_analysis(
    sample: UsageSet, pricing: PricingTable, question: str, says: str
) -> None:
    run = Run(sample, pricing, question=question)
    answer = await run.answer()
    assert run.started() == ["triage", "reporting"]
    assert says in answer
    assert "Where can we cut our LLM costs?" in answer  # what to ask instead
    assert "4,071 calls" in answer and len(answer) < 1500
    assert_well_formed(run.events)


async def test_without_data_any_question_gets_the_next_steps(pricing: PricingTable) -> None:
    run = Run([], pricing, question="Which models are slowest at p95?")
    answer = await run.answer()
    assert run.started() == ["triage", "data_helper", "reporting"]
    assert run.tools("triage") == ["check_usage_data"]
    assert answer.startswith("## Add your usage data to get an answer")
    assert [v["outcome"] for v in run.quality] == ["passed"]


async def test_a_trend_needs_history(pricing: PricingTable) -> None:
    records = [
        UsageRecord(NOW - d * 3_600_000, "openai", "gpt-4o", 10, 10, 100.0, 0.01) for d in range(12)
    ]
    answer = await Run(
        records, pricing, question="How did this week go against last week?"
    ).answer()
    assert answer.startswith("## Not enough history for a trend: your data covers 1.0 days")
    assert "All 12 of your calls are in the last 7 days" in answer


# --- reading a question ------------------------------------------------------------------------

# Words that steer the reading, mixed at random by the property tests.
WORDS = (
    "compare",
    "vs",
    "gpt-4o",
    "gpt-4",
    "claude",
    "sonnet",
    "summarize",
    "my",
    "cost",
    "save",
    "p99",
    "latency",
    "by",
    "feature",
    "provider",
    "errors",
    "cache",
    "this",
    "week",
    "month",
    "it",
    "what",
    "data",
    "quality",
    "weather",
    "help",
    "and",
    "or",
    "today",
    "$",
    "(",
    "?",
)

NAMES = Names(
    models=("gpt-4o", "gpt-4o-mini", "gpt-4.1", "claude-3-5-sonnet", "claude-3-5-haiku"),
    providers=("openai", "anthropic"),
    features=("summarize", "support-chat"),
    priced_models=("claude-3-opus", "gpt-4o", "gpt-4.1-mini"),
    model_providers={
        "gpt-4o": "openai",
        "gpt-4o-mini": "openai",
        "gpt-4.1": "openai",
        "claude-3-5-sonnet": "anthropic",
        "claude-3-5-haiku": "anthropic",
    },
)


@pytest.mark.parametrize(
    ("question", "kind", "subjects"),
    [
        ("Can you summarize my costs?", Focus.SPEND, ()),  # a verb, not the feature
        ("What does summarize cost?", Focus.SPEND, (Subject("feature", "summarize"),)),
        ("GPT 4o latency", Focus.LATENCY, (Subject("model", "gpt-4o"),)),
        ("gpt-4o-mini errors?", Focus.ERRORS, (Subject("model", "gpt-4o-mini"),)),
        ("haiku", Focus.SUBJECT, (Subject("model", "claude-3-5-haiku"),)),
        ("claude sonnet?", Focus.SUBJECT, (Subject("model", "claude-3-5-sonnet"),)),
        ("gpt-4.1-mini", Focus.SUBJECT, (Subject("model", "gpt-4.1-mini", in_data=False),)),
        (
            "gpt-4.1-mini vs gpt-4o",
            Focus.SUBJECT,
            (Subject("model", "gpt-4.1-mini", False),),
        ),
        (
            "compare gpt-4o and support-chat",
            Focus.UNCLEAR,
            (Subject("model", "gpt-4o"), Subject("feature", "support-chat")),
        ),
        (
            "compare features",
            Focus.COMPARE,
            (Subject("feature", "summarize"), Subject("feature", "support-chat")),
        ),
        (
            "claude vs gpt",
            Focus.COMPARE,
            (Subject("provider", "anthropic"), Subject("provider", "openai")),
        ),
        ("compare", Focus.UNCLEAR, ()),
        ("what's the 90th percentile?", Focus.LATENCY, ()),
    ],
)
def test_questions_are_read_against_the_users_names(
    question: str, kind: Focus, subjects: tuple[Subject, ...]
) -> None:
    asked = classify(question, NAMES)
    assert (asked.kind, asked.subjects) == (kind, subjects)


def test_a_reading_carries_its_angle() -> None:
    assert classify("what's the 90th percentile?", NAMES).percentile == 90
    assert classify("p99.9 by feature", NAMES).public()["group_by"] == "feature"
    assert classify("p99.9 by feature", NAMES).percentile == 99
    assert classify("median by provider", NAMES).percentile == 50
    assert classify("cost this month against last", NAMES).window_days == 30
    unclear = classify("tell me about gpt-4", NAMES).public()
    assert unclear["candidates"] == ["gpt-4.1", "gpt-4o", "gpt-4o-mini"]
    assert unclear["clarify"] == "Which gpt-4 do you mean: gpt-4.1, gpt-4o or gpt-4o-mini?"
    assert classify("claude-3-5-s", NAMES).subject == Subject("model", "claude-3-5-sonnet")
    assert classify("hello", NAMES).public() == {
        "kind": "cost",
        "named": False,
        "topic": None,
        "subjects": [],
        "group_by": "model",
        "percentile": 95,
        "window_days": 7,
    }
    assert detect_focus("any duplicates?") == (Focus.CACHING, True)


# --- the tools ---------------------------------------------------------------------------------


def test_every_tool_is_a_function_definition() -> None:
    box = Toolbox([], PricingTable.load())
    definitions = box.definitions()
    assert (
        [d["function"]["name"] for d in definitions] == [t.name for t in TOOLS] == list(box.names)
    )
    for d in definitions:
        assert d["type"] == "function"
        assert d["function"]["description"]
        assert d["function"]["parameters"]["type"] == "object"
    compare = next(d for d in definitions if d["function"]["name"] == "compare_usage")
    params = compare["function"]["parameters"]
    assert params["required"] == ["names"]
    assert params["properties"]["group_by"]["enum"] == ["model", "provider", "feature"]


async def test_tools_check_their_arguments(sample: UsageSet, pricing: PricingTable) -> None:
    box = Toolbox(sample, pricing)
    with pytest.raises(InputError, match="no tool named 'drop_tables'"):
        await box.call("drop_tables", {})
    with pytest.raises(InputError, match=r"bad arguments for breakdown: group_by: Input should be"):
        await box.call("breakdown", {"group_by": "user"})
    with pytest.raises(InputError, match="bad arguments for usage_overview: extra: Extra inputs"):
        await box.call("usage_overview", {"extra": 1})
    with pytest.raises(InputError, match="no calls of model gpt-5; known: "):
        await box.call("compare_usage", {"names": ["gpt-4o", "gpt-5"]})
    # A failing tool is closed like any other, with the reason.
    run = Run(sample, pricing)
    with pytest.raises(Exception, match="percentiles"):
        await run.context().call_tool(
            "data", "breakdown", {"percentiles": [0]}, box.function("breakdown")
        )
    [done] = run.of(EventType.TOOL_COMPLETED)
    assert done.data["success"] is False and "greater than 0" in done.data["error"]


async def test_a_tool_answers_at_once_unless_it_must_read_the_records_first(
    sample: UsageSet, pricing: PricingTable
) -> None:
    # What the memo answers comes back as the result itself (AgentContext.call_tool then arms
    # no timeout); records not read yet come back as an awaitable that reads them first.
    reads: list[int] = []

    async def read() -> tuple[UsageRecord, ...]:
        reads.append(1)
        await asyncio.sleep(0)
        return tuple(sample)

    box = Toolbox(UsageView(len(sample), read), pricing)
    pending = box.function("breakdown")(group_by="provider")
    assert inspect.isawaitable(pending) and reads == []
    rows = await pending
    assert reads == [1] and rows == analytics.breakdown(sample, "provider")
    assert box.function("breakdown")(group_by="provider") == rows  # read: at once now
    assert reads == [1]
    # Toolbox.call awaits either way.
    assert await Toolbox(UsageView(len(sample), read), pricing).call("usage_overview", {}) == (
        analytics.overview(sample)
    )
    assert reads == [1, 1]
    view = UsageView(len(sample), read)
    assert await with_records(view, lambda: analytics.overview(view)) == analytics.overview(sample)
    assert reads == [1, 1, 1]


async def test_tool_results_are_the_analytics(sample: UsageSet, pricing: PricingTable) -> None:
    box = Toolbox(sample, pricing)
    assert await box.call("usage_overview", {}) == analytics.overview(sample)
    assert await box.call("describe_import_formats", {}) == (
        await box.call("describe_import_formats", {})
    )
    by_provider: dict[str, Any] = await box.call("breakdown", {"group_by": "provider"})
    assert sum(row["calls"] for row in by_provider["rows"]) == len(sample)
    assert by_provider["rows"][0]["top_models"] == ["claude-3-5-sonnet", "claude-3-5-haiku"]
    missing = await box.call("describe_subject", {"kind": "feature", "name": "nope"})
    assert missing["found"] is False and missing["list_price"] is None


async def test_small_data_answers_stay_honest(pricing: PricingTable) -> None:
    day = 86_400_000
    end = NOW - day
    # Ten days of two models without features; the earlier days' calls were free (a credit).
    records = [
        UsageRecord(end - d * day, "openai", m, 100, 10, 100.0 + d, 0.0 if d >= 7 else 0.01)
        for d in range(10)
        for m in ("gpt-4o", "gpt-4o-mini")
    ]
    trend = await Run(records, pricing, question="Is our spend going up this week?").answer()
    assert trend.startswith("## The last 7 days against the 7 before: cost up from nothing")
    assert "| Cost | $0.14 | $0.00 | n/a |" in trend
    assert "inside the earlier 7 days, so that period is only partly covered" in trend
    assert "- gpt-4o: $0.07 against $0.00 (+$0.07)" in trend

    same = await Run(records, pricing, question="Has the error rate changed this week?").answer()
    assert same.startswith("## The last 7 days against the 7 before: error rate unchanged (0.0%")

    compare = await Run(records, pricing, question="compare gpt-4o").answer()
    assert compare.startswith("## Compare gpt-4o with which model? Your models: gpt-4o-mini.")

    about = await Run(records, pricing, question="tell me about gpt-4o").answer()
    assert "Features using it" not in about and "- **Errors**: 0 of 10 calls failed" in about

    cache = await Run(records, pricing, question="is the cache any use for gpt-4o?").answer()
    assert cache.startswith("## Caching: 0.0% of calls repeat a prompt")

    # A model the user never called, beside one they did: said plainly, not a failed run.
    versus = await Run(
        records, pricing, question="gpt-4o vs claude-3-5-sonnet: which is faster?"
    ).answer()
    assert "claude-3-5-sonnet" in versus.splitlines()[0]
    never = await Run(records, pricing, question="How fast is claude-3-5-sonnet?").answer()
    assert never.startswith("## No calls to claude-3-5-sonnet in your usage data"), never


def test_a_question_needs_a_reading_to_measure_more() -> None:
    assert question_tool(None) is None
    assert question_tool(classify("Where can we cut costs?", NAMES)) is None
    assert question_tool(classify("p90 latency", NAMES)) == (
        "breakdown",
        {"group_by": "model", "percentiles": [50, 90, 95, 99]},
    )


def test_odd_names_are_still_found_once() -> None:
    names = Names(models=("42", "gpt-4o"), providers=("acme",), model_providers={"42": "acme"})
    assert classify("tell me about 42", names).subject == Subject("model", "42")
    asked = classify("gpt-4o latency, gpt-4o!", names)
    assert (asked.kind, asked.subjects) == (Focus.LATENCY, (Subject("model", "gpt-4o"),))
    # "gpt" stands for openai only when the data says which provider its models come from.
    assert classify("tell me about gpt", names).subjects == ()


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=80) | st.lists(st.sampled_from(WORDS), max_size=8).map(" ".join))
def test_any_text_gets_a_reading(question: str) -> None:
    asked = classify(question, NAMES)
    assert asked.kind in Focus
    assert (asked.kind is Focus.UNCLEAR) == bool(asked.clarify)
    assert all(s.kind in ("model", "provider", "feature") for s in asked.subjects)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join))
def test_any_question_gets_a_well_formed_answer(
    sample: UsageSet, pricing: PricingTable, question: str
) -> None:
    run = Run(sample, pricing, question=question)
    answer = asyncio.run(run.answer())
    assert answer.startswith("## ") and run.streamed() == answer
    assert_well_formed(run.events)
    assert [v["outcome"] for v in run.quality] == ["passed"]  # the gate passes any of them


async def test_the_headline_is_one_line_whatever_the_names(pricing: PricingTable) -> None:
    records = [
        UsageRecord(NOW - d * 3_600_000, "acme", "big\n## model", 10, 10, 100.0, 0.01)
        for d in range(12)
    ]
    answer = await Run(records, pricing, question="How much does each model cost?").answer()
    assert answer.splitlines()[0].startswith("## You spend about $")
    assert answer.splitlines()[0].endswith("big ## model costs the most ($0.12, 100.0% of $0.12)")


async def test_the_model_path_offers_the_registry_and_keeps_the_facts(
    sample: UsageSet, pricing: PricingTable
) -> None:
    state = Blackboard(question="q", records=sample)
    offered = analysis_tools(state, pricing)
    registry = {t.name: t for t in TOOLS}
    for tool in offered["data"] + offered["optimization"]:
        assert tool.parameters == registry[tool.name].parameters
    compare = next(t for t in offered["data"] if t.name == "compare_usage")
    result = await compare.call(names=["gpt-4o", "gpt-4.1"])
    assert state.facts["compare_usage"] == result
    assert result["lowest"]["cost_per_call_usd"] == "gpt-4o"


async def test_the_gate_checks_an_offline_answer_once_per_version_of_the_data(
    sample: UsageSet, pricing: PricingTable
) -> None:
    first, again = (Run(sample, pricing, question="Is gpt-4o or gpt-4.1 cheaper?") for _ in "ab")
    answer = await first.answer()
    assert await again.answer() == answer
    # The same answer to the same question over the same data: the same verdict, kept.
    [verdict] = first.quality
    assert again.quality == [verdict] and verdict["outcome"] == "passed"
    assert ("quality_verdict", "Is gpt-4o or gpt-4.1 cheaper?", answer) in sample.memo
    # New data is a new set with an empty memo: checked afresh.
    fresh = Run(UsageSet(sample[:2000]), pricing, question="Is gpt-4o or gpt-4.1 cheaper?")
    await fresh.answer()
    assert [v["outcome"] for v in fresh.quality] == ["passed"]
