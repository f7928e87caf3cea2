"""Questions the agents understand (issue 14, item 1): each kind of question gets the answer it
asks for, leading with its headline, offline and deterministically, over the sample data."""

from __future__ import annotations

import math
from typing import Any

import pytest

from runwire.agents import Focus, analytics
from runwire.agents.formatting import format_ms, format_pct, format_usd
from runwire.agents.question import Names, Subject, classify, detect_focus
from runwire.agents.tools import TOOLS, Toolbox
from runwire.errors import InputError
from runwire.events.model import EventType
from runwire.store.records import UsageRecord, UsageSet
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample
from tests.unit.test_agents import NOW, Run, assert_well_formed

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


@pytest.fixture(scope="module")
def sample(pricing: PricingTable) -> UsageSet:
    # One set for the module, as the store hands out: its memo keeps the aggregates between runs.
    return UsageSet(generate_sample(now_ms=NOW, pricing=pricing))


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
    sample: UsageSet, pricing: PricingTable, question: str, kind: str, headline: str
) -> None:
    run = Run(sample, pricing, question=question)
    answer = await run.answer()
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


def test_the_table_covers_every_kind_of_question() -> None:
    assert len(QUESTIONS) >= 30
    assert {kind for _, kind, _ in QUESTIONS} == {focus.value for focus in Focus}
