"""The agent tree end to end on in-memory records: the events a user watches, and the answer."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runwire.agents import (
    SUPERVISOR,
    AgentContext,
    Blackboard,
    Focus,
    LLMRequest,
    OfflineProvider,
    Supervisor,
    analytics,
)
from runwire.agents.actions import rank_actions
from runwire.agents.formatting import format_count, format_ms, format_pct, format_usd, table_cell
from runwire.agents.question import detect_focus
from runwire.agents.tools import prepare
from runwire.agents.triage import analysable
from runwire.domain.clock import now_ms
from runwire.domain.usage import UsageRecord, UsageSet
from runwire.errors import InputError, RunTimeout, ToolFailed
from runwire.events.model import EventDraft, EventType
from runwire.events.redaction import REDACTED, Redactor
from runwire.usage.pricing import PricingTable
from tests.unit.conftest import SAMPLE_NOW

pytestmark = pytest.mark.unit

NOW = SAMPLE_NOW
T0 = 1_740_830_400_000
DAY = 86_400_000
SUB_AGENTS = ("triage", "data", "optimization", "actions", "reporting")


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


@pytest.fixture(scope="module")
def sample(sample_records: tuple[UsageRecord, ...]) -> list[UsageRecord]:
    return list(sample_records)  # generate_sample(now_ms=NOW)


def rec(
    day: float,
    model: str = "gpt-4o",
    *,
    provider: str = "openai",
    prompt: int = 2000,
    completion: int = 10,
    latency: float = 800.0,
    cost: float | None = None,
    status: str = "ok",
    prompt_hash: str | None = None,
    feature: str | None = "classify",
) -> UsageRecord:
    if cost is None:
        cost = PricingTable.load().cost(provider, model, prompt, completion) or 0.0
    return UsageRecord(
        timestamp=T0 + int(day * DAY),
        provider=provider,
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        latency_ms=latency,
        cost_usd=cost,
        status=status,
        prompt_hash=prompt_hash,
        feature=feature,
    )


@dataclass
class Run:
    """A context wired to in-memory records and an event list, like the run owner wires it."""

    records: Sequence[UsageRecord]
    pricing: PricingTable
    question: str = "Where can I cut my LLM costs?"
    llm: Any = field(default_factory=lambda: OfflineProvider(0))
    history: list[tuple[str, str]] = field(default_factory=list)
    tool_timeout_s: float = 5.0
    llm_timeout_s: float = 5.0
    load_error: Exception | None = None
    events: list[EventDraft] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)  # the gate's kept verdicts

    def context(self) -> AgentContext:
        async def load_usage() -> Sequence[UsageRecord]:
            if self.load_error is not None:
                raise self.load_error
            return self.records

        async def emit(draft: EventDraft) -> None:
            self.events.append(draft)

        async def keep_quality(verdict: dict[str, Any]) -> None:
            self.quality.append(verdict)

        return AgentContext(
            run_id="run_test",
            question=self.question,
            history=self.history,
            load_usage=load_usage,
            emit=emit,
            llm=self.llm,
            tool_timeout_s=self.tool_timeout_s,
            llm_timeout_s=self.llm_timeout_s,
            redactor=Redactor(),
            pricing=self.pricing,
            keep_quality=keep_quality,
        )

    async def answer(self) -> str:
        return await Supervisor().run(self.context())

    def of(self, kind: EventType, agent: str | None = None) -> list[EventDraft]:
        return [e for e in self.events if e.type == kind and agent in (None, e.agent_name)]

    def started(self) -> list[str]:
        return [e.agent_name for e in self.of(EventType.AGENT_STARTED)]

    def tools(self, agent: str) -> list[str]:
        return [e.data["tool_name"] for e in self.of(EventType.TOOL_EXECUTING, agent)]

    def streamed(self) -> str:
        return "".join(e.data["delta"] for e in self.of(EventType.TEXT_DELTA))


def assert_well_formed(events: list[EventDraft]) -> None:
    """PROTOCOL.md's per-run guarantees, as far as the agent tree is responsible for them."""
    open_agents: set[str] = set()
    open_tools: dict[str, tuple[str, str]] = {}
    seen_ids: set[str] = set()
    for e in events:
        if e.agent_name == SUPERVISOR:
            assert e.parent_agent is None
            # The run owner emits the root's start and end (it knows the stored reply's id).
            assert e.type == EventType.AGENT_THINKING
            continue
        assert e.parent_agent == SUPERVISOR
        if e.type == EventType.AGENT_STARTED:
            assert e.agent_name not in open_agents
            open_agents.add(e.agent_name)
            continue
        assert e.agent_name in open_agents, f"{e.type} of {e.agent_name} outside its start/end"
        if e.type in (EventType.AGENT_COMPLETED, EventType.AGENT_ERROR):
            open_agents.remove(e.agent_name)
            assert not any(agent == e.agent_name for agent, _ in open_tools.values())
        elif e.type == EventType.TOOL_EXECUTING:
            call_id = e.data["tool_call_id"]
            assert call_id not in seen_ids
            seen_ids.add(call_id)
            open_tools[call_id] = (e.agent_name, e.data["tool_name"])
        elif e.type == EventType.TOOL_COMPLETED:
            assert open_tools.pop(e.data["tool_call_id"]) == (e.agent_name, e.data["tool_name"])
            assert isinstance(e.data["success"], bool) and e.data["duration_ms"] >= 0
    assert not open_agents and not open_tools


# --- the full run -----------------------------------------------------------------------------


async def test_full_run_events_are_well_formed_and_in_plan_order(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    run = Run(sample, pricing)
    answer = await run.answer()
    assert_well_formed(run.events)
    assert run.started() == list(SUB_AGENTS)
    assert run.events[0].agent_name == SUPERVISOR  # the plan comes first
    assert run.tools("triage") == ["check_usage_data", "classify_question"]
    assert run.tools("data") == [
        "usage_overview",
        "cost_breakdown",
        "latency_percentiles",
        "error_rates",
    ]
    assert run.tools("optimization") == ["find_cache_candidates", "find_cheaper_models"]
    assert run.tools("actions") == ["rank_actions"]
    for agent in SUB_AGENTS:
        assert run.of(EventType.AGENT_THINKING, agent), agent
        [done] = run.of(EventType.AGENT_COMPLETED, agent)
        assert done.data["final_response"]
    assert all(e.data["success"] for e in run.of(EventType.TOOL_COMPLETED))
    assert [e.data["tool_call_id"] for e in run.of(EventType.TOOL_EXECUTING)] == [
        f"call_{n}" for n in range(1, 11)
    ]
    # The answer is streamed by the reporting agent, then returned whole.
    deltas = run.of(EventType.TEXT_DELTA)
    assert len(deltas) > 20
    assert all(e.agent_name == "reporting" for e in deltas)
    assert run.streamed() == answer
    last_delta = run.events.index(deltas[-1])
    assert run.events[last_delta + 1].type == EventType.AGENT_COMPLETED


async def test_the_answer_shows_figures_computed_from_the_records(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    answer = await Run(sample, pricing).answer()
    # Recompute independently of the analytics module.
    by_model: dict[str, float] = {}
    for r in sample:
        by_model[r.model] = by_model.get(r.model, 0.0) + r.cost_usd
    top_model, top_cost = max(by_model.items(), key=lambda item: item[1])
    total = sum(by_model.values())
    assert f"| {top_model} |" in answer
    assert format_usd(top_cost) in answer
    assert f"**{format_usd(total)}**" in answer
    latencies = sorted(r.latency_ms for r in sample)
    p95 = latencies[math.ceil(0.95 * len(latencies)) - 1]
    assert f"/ {format_ms(p95)} /" in answer
    errors = sum(r.status == "error" for r in sample)
    assert f"({format_count(errors)} of {format_count(len(sample))})" in answer
    assert f"You made {format_count(len(sample))} LLM calls" in answer
    assert f"Prices as of {pricing.as_of}" in answer
    # The sample overuses gpt-4o for classification: the actions say so, with a saving.
    assert "Move classify-tickets from gpt-4o to gpt-4o-mini" in answer
    assert "Cache responses for summarize" in answer
    assert answer.startswith("## You could save up to $")


async def test_different_data_gives_a_different_answer(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    small = [rec(day, latency=500 + 10 * day) for day in range(12)]
    small_answer = await Run(small, pricing).answer()
    assert small_answer != await Run(sample[:500], pricing).answer()
    cost = sum(r.cost_usd for r in small)
    assert "You made 12 LLM calls" in small_answer
    assert (
        f"| gpt-4o | openai | 12 | {format_count(12 * 2010)} | {format_usd(cost)} | 100.0% |"
        in small_answer
    )
    saving = (
        cost * 30 / 11 - PricingTable.load().cost("openai", "gpt-4o-mini", 24000, 120) * 30 / 11
    )
    assert f"about {format_usd(saving)} a month" in small_answer


async def test_the_question_decides_what_the_answer_leads_with(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    latency = await Run(sample, pricing, question="Why is everything so slow?").answer()
    assert latency.startswith("## Latency: p95 is ")
    assert latency.index("### Latency") < latency.index("### Recommended actions")
    assert latency.index("### Recommended actions") < latency.index("### Cost by model")
    assert "1. **Cut the tail latency of mistral-large" in latency

    errors = await Run(sample, pricing, question="which model fails the most?").answer()
    assert errors.startswith("## Errors: ")
    assert "mistral-large fails most" in errors.splitlines()[0]
    assert "1. **Fix mistral-large's" in errors

    caching = await Run(sample, pricing, question="would a cache help?").answer()
    assert caching.startswith("## Caching: ")
    assert caching.index("### Caching") < caching.index("### Cost by model")


# --- too little data --------------------------------------------------------------------------


async def test_no_data_routes_to_the_data_helper_and_still_answers(pricing: PricingTable) -> None:
    run = Run([], pricing)
    answer = await run.answer()
    assert_well_formed(run.events)
    assert run.started() == ["triage", "data_helper", "reporting"]
    assert run.tools("data_helper") == ["describe_import_formats"]
    assert not run.tools("data")
    assert "could not find any LLM usage data" in answer
    for step in (
        "runwire usage import FILE --user EMAIL",
        "POST /api/usage/import",
        "runwire usage sample --user EMAIL",
        "Load sample data",
        "POST /api/usage/sample",
        "`prompt_tokens`",
    ):
        assert step in answer
    assert run.streamed() == answer
    [triage_thought] = run.of(EventType.AGENT_THINKING, "triage")
    assert "no usage records" in triage_thought.data["reasoning"]


async def test_a_handful_of_records_is_not_enough(pricing: PricingTable) -> None:
    run = Run([rec(0), rec(1), rec(2)], pricing)
    answer = await run.answer()
    assert run.started() == ["triage", "data_helper", "reporting"]
    assert "I found only 3 LLM calls" in answer
    [check] = run.of(EventType.TOOL_COMPLETED, "triage")
    assert check.data["result"]["calls"] == 3 and check.data["result"]["enough_data"] is False


@pytest.mark.parametrize(
    ("hashed", "caching_says"),
    [(False, "carry no `prompt_hash`"), (True, "No successful call repeated an earlier prompt")],
)
async def test_a_lean_setup_gets_no_invented_actions(
    pricing: PricingTable, hashed: bool, caching_says: str
) -> None:
    lean = [
        rec(
            day,
            "gpt-4.1-nano",
            prompt=100,
            completion=20,
            latency=300,
            feature=None,
            prompt_hash=f"h{day}" if hashed else None,
        )
        for day in range(10)
    ]
    run = Run(lean, pricing, question="hello")
    answer = await run.answer()
    assert answer.startswith("## Your LLM spend is about $")
    assert "no obvious waste" in answer
    assert "Nothing stands out" in answer
    assert caching_says in answer
    assert "### Errors" in answer and "| Model | Failed |" not in answer
    [thought] = run.of(EventType.AGENT_THINKING, "triage")
    assert "names no particular angle" in thought.data["reasoning"]


# --- failures ---------------------------------------------------------------------------------


async def test_a_failing_tool_is_closed_and_its_agent_reports_the_error(
    pricing: PricingTable,
) -> None:
    run = Run([], pricing, load_error=ConnectionError("db down"))
    with pytest.raises(ToolFailed) as info:
        await run.answer()
    assert "check_usage_data failed: ConnectionError: db down" in info.value.message
    assert_well_formed(run.events)
    [done] = run.of(EventType.TOOL_COMPLETED)
    assert done.data["success"] is False
    assert done.data["error"] == "ConnectionError: db down"
    [error] = run.of(EventType.AGENT_ERROR)
    assert (error.agent_name, error.data["code"]) == ("triage", "tool_failed")
    assert run.started() == ["triage"]


@dataclass
class SlowLLM:
    name: str = "slow"

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        yield "Partial "
        await asyncio.sleep(10)
        yield "never"


@dataclass
class SilentLLM:
    name: str = "silent"
    requests: list[LLMRequest] = field(default_factory=list)

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        self.requests.append(request)
        for chunk in ("", " "):
            yield chunk


@dataclass
class BrokenLLM:
    name: str = "broken"

    async def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        yield "ok so far"
        raise ValueError("internal detail sk-abcdefghijklmnopqrstuv")


async def test_an_llm_past_its_timeout_fails_the_reporting_agent(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    run = Run(sample[:200], pricing, llm=SlowLLM(), llm_timeout_s=0.02)
    with pytest.raises(RunTimeout, match=r"language model \(slow\) did not finish"):
        await run.answer()
    assert_well_formed(run.events)
    [error] = run.of(EventType.AGENT_ERROR)
    assert (error.agent_name, error.data["code"]) == ("reporting", "timeout")
    assert run.streamed() == "Partial "


async def test_an_empty_llm_reply_falls_back_to_the_draft(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    llm = SilentLLM()
    run = Run(
        sample[:300],
        pricing,
        llm=llm,
        question="and the cost?",
        history=[("user", "hi"), ("assistant", "hello")],
    )
    answer = await run.answer()
    # "the cost?" asks what is spent, not where to save.
    assert answer.startswith("## You spend about $")
    assert run.streamed() == " " + answer
    [request] = llm.requests
    assert request.messages == [("user", "hi"), ("assistant", "hello"), ("user", "and the cost?")]
    assert request.draft == answer
    assert request.facts["pricing"]["as_of"] == pricing.as_of
    assert request.facts["actions"] and "cost_breakdown" in request.facts


async def test_an_unexpected_error_is_reported_without_its_text(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    run = Run(sample[:200], pricing, llm=BrokenLLM())
    with pytest.raises(ValueError, match="internal detail"):
        await run.answer()
    assert_well_formed(run.events)
    [error] = run.of(EventType.AGENT_ERROR)
    assert error.data == {"code": "internal", "message": "the reporting agent failed unexpectedly"}


# --- tool calls -------------------------------------------------------------------------------


async def test_tool_args_and_results_are_redacted(pricing: PricingTable) -> None:
    run = Run([], pricing)
    ctx = run.context()

    def lookup(api_key: str, query: str) -> dict[str, Any]:
        return {"password": api_key, "echo": query, "rows": list(range(80))}

    result = await ctx.call_tool(
        "data", "lookup", {"api_key": "sk-live-abcdefghijklmnop1234", "query": "a"}, lookup
    )
    assert result["password"] == "sk-live-abcdefghijklmnop1234"  # the tool itself gets the value
    executing, completed = run.events
    assert executing.data["tool_args"] == {"api_key": REDACTED, "query": "a"}
    assert completed.data["result"]["password"] == REDACTED
    assert len(completed.data["result"]["rows"]) == 51  # bounded: 50 items and a note
    assert "sk-live" not in repr(run.events)


async def test_tool_calls_of_every_kind_get_unique_ids(pricing: PricingTable) -> None:
    run = Run([], pricing)
    ctx = run.context()

    async def native(x: int) -> int:
        return x + 1

    async def later() -> str:
        return "deferred"

    assert await ctx.call_tool("data", "native", {"x": 1}, native) == 2
    assert await ctx.call_tool("data", "sync", {}, lambda: "thread") == "thread"
    assert await ctx.call_tool("data", "deferred", {}, lambda: later()) == "deferred"
    assert await ctx.call_tool(SUPERVISOR, "root_tool", {}, lambda: None) is None
    ids = [e.data["tool_call_id"] for e in run.of(EventType.TOOL_COMPLETED)]
    assert ids == ["call_1", "call_2", "call_3", "call_4"]
    root = run.of(EventType.TOOL_EXECUTING, SUPERVISOR)[0]
    assert root.parent_agent is None


async def test_the_loop_writes_tool_executing_before_an_inline_tool_runs(
    pricing: PricingTable,
) -> None:
    # A socket writes what it was given once per loop turn (the flush is a call_soon): a plain
    # tool runs inline, so without a turn in between the user would see it start only when it
    # had finished.
    loop = asyncio.get_running_loop()
    written: list[EventType] = []
    ctx = Run([], pricing).context()
    emit = ctx.emit

    async def emit_and_flush_next_turn(draft: EventDraft) -> None:
        await emit(draft)
        loop.call_soon(written.append, draft.type)

    ctx.emit = emit_and_flush_next_turn
    seen_while_running: list[EventType] = []
    await ctx.call_tool("data", "sync", {}, lambda: seen_while_running.extend(written))
    assert seen_while_running == [EventType.TOOL_EXECUTING]


async def test_a_tool_raising_a_runwire_error_becomes_tool_failed(pricing: PricingTable) -> None:
    run = Run([], pricing)

    def reject() -> None:
        raise InputError("bad token=Bearer abcdefghijklmnop")

    with pytest.raises(ToolFailed) as info:
        await run.context().call_tool("data", "reject", {}, reject)
    [completed] = run.of(EventType.TOOL_COMPLETED)
    assert completed.data["success"] is False
    assert "abcdefghijklmnop" not in completed.data["error"]
    assert "abcdefghijklmnop" not in info.value.message


async def test_a_slow_tool_times_out_and_is_still_closed(pricing: PricingTable) -> None:
    run = Run([], pricing, tool_timeout_s=0.02)

    async def stuck() -> None:
        await asyncio.sleep(10)

    with pytest.raises(RunTimeout, match=r"stuck did not finish within 0\.02s"):
        await run.context().call_tool("data", "stuck", {}, stuck)
    [completed] = run.of(EventType.TOOL_COMPLETED)
    assert completed.data["success"] is False
    assert completed.data["error"] == "stuck did not finish within 0.02s"
    assert completed.data["duration_ms"] >= 20


async def test_a_plain_tool_handing_back_a_slow_awaitable_times_out(pricing: PricingTable) -> None:
    # A plain function runs inline with no timeout armed (none could fire while it runs); what
    # it hands back to wait for is waited for under the timeout, counted from the call.
    run = Run([], pricing, tool_timeout_s=0.02)
    calls: list[str] = []

    def deferred() -> Awaitable[None]:
        calls.append("called")
        return asyncio.sleep(10)

    with pytest.raises(RunTimeout, match=r"deferred did not finish within 0\.02s"):
        await run.context().call_tool("data", "deferred", {}, deferred)
    assert calls == ["called"]
    [completed] = run.of(EventType.TOOL_COMPLETED)
    assert completed.data["success"] is False and completed.data["duration_ms"] >= 20


async def test_cancelling_mid_tool_emits_nothing_more(pricing: PricingTable) -> None:
    run = Run([], pricing)
    entered = asyncio.Event()

    async def wait_forever() -> None:
        entered.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(run.context().call_tool("data", "wait", {}, wait_forever))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.type for e in run.events] == [EventType.TOOL_EXECUTING]


# --- pieces -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "focus", "named"),
    [
        ("What does this cost me?", Focus.SPEND, True),
        ("Where can I save money?", Focus.COST, True),
        ("Latency and cost, please", Focus.LATENCY, True),
        ("cost and latency, please", Focus.SPEND, True),
        ("cut the cost and latency", Focus.COST, True),
        ("Which calls FAIL?", Focus.ERRORS, True),
        ("any duplicate prompts?", Focus.CACHING, True),
        ("hello", Focus.COST, False),
    ],
)
def test_focus_is_the_earliest_topic_named(question: str, focus: Focus, named: bool) -> None:
    assert detect_focus(question) == (focus, named)


def test_actions_rank_the_asked_topic_first_then_by_saving(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    facts = {
        "find_cheaper_models": analytics.cheaper_models(sample, pricing),
        "find_cache_candidates": analytics.cache_candidates(sample),
        "error_rates": analytics.error_rate(sample),
        "latency_percentiles": analytics.latency_percentiles(sample),
    }
    by_cost = rank_actions(facts, sample, Focus.COST, max_actions=20)
    savings = [a.monthly_savings_usd for a in by_cost]
    assert savings == sorted(savings, reverse=True)
    assert {a.kind for a in by_cost} == {"switch_model", "cache", "reliability", "latency"}
    assert rank_actions(facts, sample, Focus.CACHING)[0].kind == "cache"
    assert len(rank_actions(facts, sample, Focus.COST, max_actions=2)) == 2
    reliability = rank_actions(facts, sample, Focus.ERRORS)[0]
    failed_cost = sum(
        r.cost_usd for r in sample if r.model == "mistral-large" and r.status == "error"
    )
    assert reliability.monthly_savings_usd == pytest.approx(
        failed_cost * analytics.monthly_factor(sample), abs=1e-3
    )
    assert "like timeouts" in reliability.detail


def test_same_tier_and_fast_failing_models_are_described_as_such(pricing: PricingTable) -> None:
    records = [rec(d, "gpt-4-turbo", completion=400, latency=900) for d in range(8)]
    records += [rec(d, "gpt-4.1-nano", status="error", latency=200) for d in range(4)]
    records += [rec(d, "gpt-4.1-nano", latency=200) for d in range(4)]
    facts = {
        "find_cheaper_models": analytics.cheaper_models(records, pricing),
        "find_cache_candidates": analytics.cache_candidates(records),
        "error_rates": analytics.error_rate(records),
        "latency_percentiles": analytics.latency_percentiles(records),
    }
    actions = rank_actions(facts, records)
    switch = next(a for a in actions if a.kind == "switch_model")
    assert "from gpt-4-turbo to gpt-4o-mini" in switch.title
    assert "Closer alternatives: gpt-4.1-mini" in switch.detail
    reliability = next(a for a in actions if a.kind == "reliability")
    assert "most of them fast" in reliability.detail
    assert not any(a.kind == "latency" for a in actions)


def test_a_same_tier_swap_is_described_as_such() -> None:
    table = PricingTable.from_mapping(
        {
            "as_of": "2025-01-01",
            "source": "test",
            "tiers": ["frontier", "mid"],
            "models": [
                {"provider": "acme", "model": "big", "input": 10, "output": 20, "tier": "frontier"},
                {"provider": "acme", "model": "big2", "input": 5, "output": 10, "tier": "frontier"},
            ],
        }
    )
    records = [
        rec(d, "big", provider="acme", completion=400, cost=0.03, feature=None) for d in range(5)
    ]
    facts = {
        "find_cheaper_models": analytics.cheaper_models(records, table),
        "find_cache_candidates": analytics.cache_candidates(records),
        "error_rates": analytics.error_rate(records),
        "latency_percentiles": analytics.latency_percentiles(records),
    }
    [action] = rank_actions(facts, records)
    assert action.title == "Move its calls from big to big2"
    assert "big2 is in the same quality tier" in action.detail
    assert "alternatives" not in action.detail


def test_nothing_to_rank_on_uniform_data(pricing: PricingTable) -> None:
    # gpt-4o could move to gpt-4o-mini, but a saving under a cent a month is not an action.
    records = [rec(d, "gpt-4.1-nano") for d in range(3)] + [rec(0, prompt=10, completion=1)]
    empty_latency = analytics.latency_percentiles([])
    facts = {
        "find_cheaper_models": analytics.cheaper_models(records, pricing),
        "find_cache_candidates": analytics.cache_candidates(records),
        "error_rates": analytics.error_rate([]),
        "latency_percentiles": empty_latency,
    }
    assert rank_actions(facts, records) == []


@dataclass
class IteratorLLM:
    """A provider whose stream is a plain async iterator (no aclose), as the port allows."""

    name: str = "iterator"

    def stream(self, request: LLMRequest) -> AsyncIterator[str]:
        chunks = iter(["plain ", "iterator"])

        class Chunks:
            def __aiter__(self) -> Chunks:
                return self

            async def __anext__(self) -> str:
                try:
                    return next(chunks)
                except StopIteration:
                    raise StopAsyncIteration from None

        return Chunks()


async def test_any_async_iterator_can_be_a_provider_stream(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    assert await Run(sample[:100], pricing, llm=IteratorLLM()).answer() == "plain iterator"


def test_triage_needs_a_positive_threshold() -> None:
    with pytest.raises(ValueError, match="min_records"):
        Supervisor(min_records=0)


def test_run_state_starts_empty() -> None:
    state = Blackboard(question="q")
    assert (state.focus, state.has_data, state.answer, state.actions) == (Focus.COST, False, "", [])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0.00"),
        (0.00004, "<$0.0001"),
        (0.0042, "$0.0042"),
        (0.42, "$0.42"),
        (1234.567, "$1,234.57"),
        (-2.5, "-$2.50"),
    ],
)
def test_money_is_written_readably(value: float, text: str) -> None:
    assert format_usd(value) == text


def test_other_figures_are_written_readably() -> None:
    assert (format_pct(12.34), format_ms(1234.4), format_ms(None), format_count(12345)) == (
        "12.3%",
        "1,234 ms",
        "n/a",
        "12,345",
    )
    assert table_cell("evil|name\nwith  newline") == "evil\\|name with newline"


async def test_many_models_are_summarised_in_one_row(pricing: PricingTable) -> None:
    models = [m.model for m in pricing.models[:10]]
    records = [rec(i, m, provider="any", cost=1.0 + i) for i, m in enumerate(models)]
    answer = await Run(records, pricing).answer()
    assert "| *2 more models* |" in answer


# --- whatever the store holds ---------------------------------------------------------------

INT64, INT32 = 2**63, 2**31
# Any record the columns of store/schema.py can hold (texts kept short: the agents cut names
# anyway): 64-bit times, 32-bit counts (negative
# too), any float (SQLite keeps infinities, PostgreSQL NaN as well), any status text.
stored_record = st.builds(
    UsageRecord,
    timestamp=st.integers(-INT64, INT64 - 1),
    provider=st.sampled_from(["openai", "anthropic"]) | st.text(max_size=12),
    model=st.sampled_from(["gpt-4o", "gpt-4o-mini", "claude-3-5-haiku"]) | st.text(max_size=12),
    prompt_tokens=st.integers(-INT32, INT32 - 1),
    completion_tokens=st.integers(-INT32, INT32 - 1),
    latency_ms=st.floats(),
    cost_usd=st.floats(),
    status=st.sampled_from(["ok", "error"]) | st.text(max_size=10),
    prompt_hash=st.none() | st.text(max_size=12),
    feature=st.none() | st.text(max_size=12),
)
YEAR_ONE_PLUS_14 = -62_135_596_800_000 - 14 * 3_600_000  # 0001-01-01T00:00:00+14:00


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(odd=st.lists(stored_record, min_size=1, max_size=3), usual=st.integers(0, 12))
@example(odd=[UsageRecord(YEAR_ONE_PLUS_14, "openai", "gpt-4o", 1, 1, 1.0, 0.01)], usual=12)
@example(odd=[UsageRecord(T0, "openai", "gpt-4o", 1, 1, 1.0, 1.7e308)] * 2, usual=12)
def test_any_stored_record_still_gets_a_normal_answer(
    odd: list[UsageRecord], usual: int, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    # A UsageSet, as the store hands out: its memo (and the JSON copies made of its results)
    # is what a NaN or an infinity would break.
    records = UsageSet([*sample[-usual:][:usual], *odd])
    run = Run(records, pricing)
    answer = asyncio.run(run.answer())
    assert answer and not run.of(EventType.AGENT_ERROR)
    assert_well_formed(run.events)
    kept = analysable(records, now_ms())
    [check] = [
        e for e in run.of(EventType.TOOL_COMPLETED) if e.data["tool_name"] == "check_usage_data"
    ]
    assert check.data["result"]["calls"] == len(kept)
    assert check.data["result"].get("left_out", 0) == len(records) - len(kept)


def test_only_records_an_import_would_take_are_analysed(pricing: PricingTable) -> None:
    good = [rec(day) for day in range(3)]
    odd = [
        UsageRecord(YEAR_ONE_PLUS_14, "openai", "gpt-4o", 1, 1, 1.0, 0.01),
        UsageRecord(now_ms() + 2 * DAY, "openai", "gpt-4o", 1, 1, 1.0, 0.01),
        UsageRecord(T0, "openai", "gpt-4o", -1, 1, 1.0, 0.01),
        UsageRecord(T0, "openai", "gpt-4o", 1, 1, float("nan"), 0.01),
        UsageRecord(T0, "openai", "gpt-4o", 1, 1, 1.0, 1e300),
    ]
    records = UsageSet([*good, *odd])
    kept = analysable(records, now_ms())
    assert list(kept) == good
    assert analysable(records, now_ms()) is kept  # kept in the set's memo for the next run
    all_good = UsageSet(good)
    assert analysable(all_good, now_ms()) is all_good  # the same set, and so its memo
    assert analysable(good, now_ms()) is good  # any sequence will do


def test_a_prepared_set_gives_the_same_answer_without_scanning_again(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    # What triage prepares off the event loop is every aggregate a cost question reads, so the
    # run's tools on the loop only copy results; and the answer is the one a plain list gets.
    records = UsageSet(sample)
    prepare(records, pricing)
    prepared = dict(records.memo)
    run, plain = Run(records, pricing), Run(list(sample), pricing)
    answer, expected = asyncio.run(run.answer()), asyncio.run(plain.answer())
    assert answer == expected
    added = {key if isinstance(key, str) else key[0] for key in set(records.memo) - set(prepared)}
    # Triage's check of the records runs off the loop with the preparing (and marks the set
    # prepared); failures_of is the one figure that depends on the others (the worst model's);
    # the quality gate's verdict on the offline answer is kept once per version of the data.
    assert added == {"analysable", "prepared", "failures_of", "quality_verdict"}
    prepare(list(sample), pricing)  # a plain sequence has no memo to fill: nothing to do


def test_a_set_is_prepared_once_then_read_from_its_memo(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    records = UsageSet(sample)
    first, again = Run(records, pricing), Run(records, pricing)
    assert asyncio.run(first.answer()) == asyncio.run(again.answer())
    aggregates = dict(records.memo)
    asyncio.run(Run(records, pricing).answer())
    assert records.memo.keys() == aggregates.keys()  # a third run computes nothing new
