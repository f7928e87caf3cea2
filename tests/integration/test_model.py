"""A model that drives the tools, through the official openai SDK against an OpenAI-compatible
server on loopback that replays recorded responses (tests/recordings/openai, the exact wire
format): tool calls in pieces, several a turn, text between them, usage, errors, retries."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from runwire.agents import SUPERVISOR, AgentContext, OfflineProvider, Supervisor, analytics
from runwire.agents.blackboard import Blackboard
from runwire.agents.chat_model import RetryPolicy, TextPiece, TokenUsage, ToolCall
from runwire.agents.model_loop import ModelLoop
from runwire.agents.model_tools import analysis_tools
from runwire.agents.openai_model import OpenAIChatModel
from runwire.app.agent import build_agent
from runwire.config import Settings
from runwire.domain.ids import new_epoch, new_id
from runwire.domain.usage import UsageRecord
from runwire.errors import ModelFailed
from runwire.events.model import EventDraft, EventType
from runwire.events.redaction import Redactor
from runwire.runs.executor import RunInput
from runwire.store.store import Store
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample
from tests.model_server import DROP, HANG, ReplayServer, cut, stall
from tests.timing import unit

pytestmark = pytest.mark.integration

KEY = "sk-test-0123456789abcdef0123"
NOW = 1_746_000_000_000
QUESTION = "Which models cost the most, and which are slow?"
# What text_answer.sse.http streams.
TEXT_ANSWER = "Your spend is mostly claude-3-5-sonnet: try claude-3-5-haiku for its short prompts."


@pytest.fixture(scope="module")
def server() -> Iterator[ReplayServer]:
    with ReplayServer.running() as running:
        yield running


@pytest.fixture(scope="module")
def pricing() -> PricingTable:
    return PricingTable.load()


@pytest.fixture(scope="module")
def sample(pricing: PricingTable) -> list[UsageRecord]:
    return generate_sample(now_ms=NOW, pricing=pricing)


def model_at(base_url: str, *, timeout_s: float = 5.0, retries: int = 2) -> OpenAIChatModel:
    return OpenAIChatModel(
        base_url=base_url,
        api_key=KEY,
        model="gpt-4o-mini",
        timeout_s=timeout_s,
        retry=RetryPolicy(retries, base_s=0.01),
    )


@dataclass
class Run:
    """A context wired to in-memory records and an event list, as the run owner wires it."""

    records: Sequence[UsageRecord]
    pricing: PricingTable
    model: OpenAIChatModel
    fallback: bool = False
    llm_timeout_s: float = 5.0
    events: list[EventDraft] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)  # the gate's kept verdicts

    def context(self) -> AgentContext:
        async def load_usage() -> Sequence[UsageRecord]:
            return self.records

        async def emit(draft: EventDraft) -> None:
            self.events.append(draft)

        async def keep(usage: dict[str, Any]) -> None:
            self.kept.append(usage)

        async def keep_quality(verdict: dict[str, Any]) -> None:
            self.quality.append(verdict)

        return AgentContext(
            run_id="run_test",
            question=QUESTION,
            history=[("user", "hello"), ("assistant", "Hi! Ask me about your LLM usage.")],
            load_usage=load_usage,
            emit=emit,
            llm=OfflineProvider(0),
            tool_timeout_s=5.0,
            llm_timeout_s=self.llm_timeout_s,
            redactor=Redactor(),
            pricing=self.pricing,
            model=self.model,
            model_fallback=self.fallback,
            keep_model_usage=keep,
            keep_quality=keep_quality,
        )

    async def answer(self) -> str:
        async with self.model:
            return await Supervisor().run(self.context())

    def of(self, kind: EventType, agent: str | None = None) -> list[EventDraft]:
        return [e for e in self.events if e.type == kind and agent in (None, e.agent_name)]

    def streamed(self) -> str:
        return "".join(e.data["delta"] for e in self.of(EventType.TEXT_DELTA))


def assert_well_formed(events: list[EventDraft]) -> None:
    """Every sub-agent's events between its start and its end; every tool call closed."""
    open_agents: set[str] = set()
    open_tools: dict[str, str] = {}
    for e in events:
        if e.agent_name == SUPERVISOR:
            assert e.type in (
                EventType.AGENT_THINKING,
                EventType.MODEL_USAGE,
                EventType.QUALITY_WARNING,
            )
            continue
        if e.type == EventType.AGENT_STARTED:
            assert e.agent_name not in open_agents
            open_agents.add(e.agent_name)
            continue
        assert e.agent_name in open_agents, f"{e.type} of {e.agent_name} outside its start/end"
        if e.type in (EventType.AGENT_COMPLETED, EventType.AGENT_ERROR):
            open_agents.remove(e.agent_name)
        elif e.type == EventType.TOOL_EXECUTING:
            open_tools[e.data["tool_call_id"]] = e.agent_name
        elif e.type == EventType.TOOL_COMPLETED:
            assert open_tools.pop(e.data["tool_call_id"]) == e.agent_name
    assert not open_agents and not open_tools


async def collect(model: OpenAIChatModel, **kwargs: Any) -> list[Any]:
    async with model:
        return [e async for e in model.turn([{"role": "user", "content": "hi"}], [], **kwargs)]


# --- one turn ---------------------------------------------------------------------------------


def test_the_model_is_configured_sensibly_and_its_key_stays_out_of_repr() -> None:
    model = OpenAIChatModel(
        base_url="https://llm.example/v1", api_key=KEY, model="gpt-4o-mini", timeout_s=30
    )
    assert KEY not in repr(model) and "llm.example" in repr(model)
    assert model.name == "gpt-4o-mini"
    with pytest.raises(ValueError, match="base_url"):
        OpenAIChatModel(base_url="llm.example", api_key=KEY, model="m", timeout_s=1)
    with pytest.raises(ValueError, match="model"):
        OpenAIChatModel(base_url="http://x", api_key=KEY, model="", timeout_s=1)
    with pytest.raises(ValueError, match="timeout_s"):
        OpenAIChatModel(base_url="http://x", api_key="", model="m", timeout_s=0)
    with pytest.raises(ValueError, match="max_rounds"):
        ModelLoop(model, {}, max_rounds=-1)
    with pytest.raises(ValueError, match="result_max_chars"):
        ModelLoop(model, {}, result_max_chars=0)


async def test_a_streamed_answer_arrives_in_pieces_with_its_usage(server: ReplayServer) -> None:
    server.play("text_answer.sse.http")
    events = await collect(model_at(server.base_url))
    assert events == [
        TextPiece("Your"),
        TextPiece(" spend is"),
        TextPiece(" mostly claude-3-5-sonnet: try claude-3-5-haiku for its short prompts."),
        TokenUsage("gpt-4o-mini-2024-07-18", 812, 9),
    ]
    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.body["model"] == "gpt-4o-mini" and sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}
    assert "tools" not in sent.body and "tool_choice" not in sent.body


async def test_tool_calls_are_whole_once_their_pieces_arrived(server: ReplayServer) -> None:
    server.play("two_tool_calls.sse.http")
    events = await collect(model_at(server.base_url))
    assert events == [
        TextPiece("Let me measure"),
        TextPiece(" your usage."),
        ToolCall("call_Qm2vX8dL0aTz", "cost_breakdown", "{}"),
        ToolCall("call_Hr5kW1nB9cYe", "latency_percentiles", '{"percentiles":[50,95]}'),
        TokenUsage("gpt-4o-mini-2024-07-18", 1204, 61),
    ]


# --- the run, with the model choosing the tools ----------------------------------------------


async def test_the_model_chooses_the_tools_and_its_text_is_the_answer(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("two_tool_calls.sse.http", "answer_after_tools.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    answer = await run.answer()

    assert_well_formed(run.events)
    # Triage as offline; then the tools' agent as the model calls them; then the writer.
    assert [e.agent_name for e in run.of(EventType.AGENT_STARTED)] == [
        "triage",
        "reporting",
        "data",
    ]
    executing = run.of(EventType.TOOL_EXECUTING, "data")
    assert [(e.data["tool_name"], e.data["tool_args"]) for e in executing] == [
        ("cost_breakdown", {}),
        ("latency_percentiles", {"percentiles": [50, 95]}),
    ]
    completed = run.of(EventType.TOOL_COMPLETED, "data")
    assert [e.data["success"] for e in completed] == [True, True]
    assert completed[0].data["result"] == Redactor().clean(analytics.cost_by_model(sample))
    assert completed[1].data["result"] == Redactor().clean(
        analytics.latency_percentiles(sample, [50, 95])
    )
    # Every piece of text the model streamed, before and after its tool calls, is the answer.
    assert (
        answer
        == run.streamed()
        == (
            "Let me measure your usage.## Cost and latency\n\ngpt-4o takes most of your spend; "
            "its p95 is the slowest: try a cheaper model.\n"
        )
    )
    assert all(e.agent_name == "reporting" for e in run.of(EventType.TEXT_DELTA))
    [done] = run.of(EventType.AGENT_COMPLETED, "data")
    assert done.data["final_response"] == "Ran 2 tool calls for the model."

    # The second turn got the history, the tools, the assistant's calls and their results.
    first, second = server.requests
    assert [m["role"] for m in first.body["messages"]] == ["system", "user", "assistant", "user"]
    assert first.body["messages"][-1]["content"] == QUESTION
    # The system prompt carries triage's reading of the question, so the model leads with it.
    assert '"kind": "spend", "named": true' in first.body["messages"][0]["content"]
    assert first.body["tool_choice"] == "auto"
    names = [t["function"]["name"] for t in first.body["tools"]]
    assert names == [  # the registry's (agents/tools.py), in its order, then rank_actions
        "usage_overview",
        "describe_data",
        "cost_breakdown",
        "latency_percentiles",
        "error_rates",
        "breakdown",
        "compare_usage",
        "usage_trend",
        "describe_subject",
        "find_cache_candidates",
        "find_cheaper_models",
        "rank_actions",
    ]
    assistant, tool_1, tool_2 = second.body["messages"][-3:]
    assert assistant["content"] == "Let me measure your usage."
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_Qm2vX8dL0aTz", "call_Hr5kW1nB9cYe"]
    assert tool_1["tool_call_id"] == "call_Qm2vX8dL0aTz" and tool_1["role"] == "tool"
    assert '"total_cost_usd"' in tool_1["content"]
    assert tool_2["tool_call_id"] == "call_Hr5kW1nB9cYe" and '"p95"' in tool_2["content"]

    # Tokens and cost so far after each turn, as an event and kept with the run.
    first_turn, usage = run.of(EventType.MODEL_USAGE)
    assert (first_turn.data["requests"], first_turn.data["total_tokens"]) == (1, 1265)
    cost = (pricing.cost("openai", "gpt-4o-mini", 1204, 61) or 0) + (
        pricing.cost("openai", "gpt-4o-mini", 2950, 27) or 0
    )
    assert usage.data == {
        "model": "gpt-4o-mini",
        "requests": 2,
        "prompt_tokens": 4154,
        "completion_tokens": 88,
        "total_tokens": 4242,
        "cost_usd": pytest.approx(cost),
    }
    assert run.kept == [first_turn.data, usage.data]
    assert run.events.index(first_turn) < run.events.index(executing[0])  # as soon as counted


async def test_bad_tool_calls_are_refused_to_the_model_which_answers_anyway(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("bad_tool_calls.sse.http", "answer_after_tools.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    await run.answer()
    assert_well_formed(run.events)
    completed: dict[str, EventDraft] = {}
    for e in run.of(EventType.TOOL_COMPLETED):  # the model's calls, before the offline agents'
        completed.setdefault(e.data["tool_name"], e)
    wrong_type = completed["find_cache_candidates"]
    assert wrong_type.agent_name == "optimization" and wrong_type.data["success"] is False
    assert wrong_type.data["error"] == "argument 'top_n' must be of type integer"
    unknown = completed["delete_everything"]
    assert unknown.agent_name == "reporting"
    assert unknown.data["error"] == "there is no tool named 'delete_everything'"
    assert completed["error_rates"].data["error"] == "the arguments are not valid JSON"
    executing, *_ = [  # the model's call; the offline agents' follow (the answer is replaced)
        e for e in run.of(EventType.TOOL_EXECUTING) if e.data["tool_name"] == "error_rates"
    ]
    assert executing.data["tool_args"] == {"arguments": "{not json"}
    # The model was told what was wrong with each call, in order.
    results = [m for m in server.requests[1].body["messages"] if m["role"] == "tool"]
    assert [r["tool_call_id"] for r in results] == [
        "call_Zx81bad",
        "call_Zx82nope",
        "call_Zx83json",
    ]
    assert "must be of type integer" in results[0]["content"]
    assert run.streamed().startswith("## Cost and latency")


async def test_an_answer_with_figures_no_tool_computed_is_replaced_by_the_offline_one(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    # The model's tool calls all fail, yet its answer quotes costs and latencies.
    server.play("bad_tool_calls.sse.http", "figures_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    answer = await run.answer()
    assert_well_formed(run.events)

    [warning] = run.of(EventType.QUALITY_WARNING)
    assert warning.agent_name == SUPERVISOR
    assert warning.data["outcome"] == "replaced" and warning.data["replaced"] is True
    assert warning.data["unsupported"] == ["$21.61", "$49.61", "43.6%", "37,775 ms"]
    assert warning.data["reasons"] == [
        {
            "reason": "unsupported_figure",
            "message": "4 figures no tool computed: $21.61, $49.61, 43.6%, 37,775 ms",
        }
    ]
    assert warning.data["score"] < 1 and warning.data["passed"] is False
    assert run.quality == [warning.data]  # the model's verdict is what the run keeps
    # The model's text went out before the warning; the replacement's after it, and it is the
    # answer: the offline agents' answer to the same question, as without a model.
    at = run.events.index(warning)
    before = "".join(e.data["delta"] for e in run.events[:at] if e.type == EventType.TEXT_DELTA)
    after = "".join(e.data["delta"] for e in run.events[at:] if e.type == EventType.TEXT_DELTA)
    assert before.startswith("## Cost and latency") and "$21.61" in before
    offline = await Supervisor().run(dataclasses.replace(run.context(), model=None))
    assert answer == after == offline
    assert answer.startswith(
        "## You spend about $50.89 a month on LLM calls; claude-3-5-sonnet costs the most "
        "($21.61, 43.6% of $49.61)"
    )
    # The supervisor says why, and the agents that answer instead run as offline.
    assert any(
        "failed the quality gate" in e.data["reasoning"]
        for e in run.events[at:]
        if e.type == EventType.AGENT_THINKING and e.agent_name == SUPERVISOR
    )


async def test_an_answer_that_restates_its_instructions_is_replaced_by_the_offline_one(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    # What Gemma 3 270M streamed through tests/llm/serve.mjs (llama.cpp) for runwire's prompt
    # over this sample: no tool call, its system prompt and the data's summary word for word
    # until the token cap. Its figures are the summary's, a tool's; it talks about cost.
    server.play("echo_instructions.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    answer = await run.answer()
    assert_well_formed(run.events)

    [warning] = run.of(EventType.QUALITY_WARNING)
    assert warning.data["outcome"] == "replaced" and warning.data["unsupported"] == []
    assert warning.data["reasons"] == [
        {
            "reason": "echoes_instructions",
            "message": "the answer restates runwire's instructions to the model instead of "
            "answering: 50 of its 64 words quote them",
        }
    ]
    assert warning.data["score"] == pytest.approx(2 / 3, abs=0.001)
    assert run.quality == [warning.data]
    at = run.events.index(warning)
    before = "".join(e.data["delta"] for e in run.events[:at] if e.type == EventType.TEXT_DELTA)
    after = "".join(e.data["delta"] for e in run.events[at:] if e.type == EventType.TEXT_DELTA)
    assert before.startswith("You are runwire's analyst. You help a team cut the cost")
    offline = await Supervisor().run(dataclasses.replace(run.context(), model=None))
    assert answer == after == offline and answer.startswith("## You spend about $50.89 a month")


async def test_an_answer_grounded_in_the_tools_passes_and_is_kept(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    # Its figures are those of the tools it called (the sample of NOW), as the agents write them.
    server.play("two_tool_calls.sse.http", "figures_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    await run.answer()
    assert not run.of(EventType.QUALITY_WARNING)
    [verdict] = run.quality
    assert (verdict["outcome"], verdict["score"], verdict["reasons"]) == ("passed", 1.0, [])
    assert (verdict["figures"], verdict["supported"]) == (4, 4)


async def test_a_model_that_keeps_calling_tools_is_made_to_answer(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("one_tool_call.sse.http", "one_tool_call.sse.http", "text_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    state = Blackboard(QUESTION, records=sample, has_data=True, record_count=len(sample))
    async with run.model:
        loop = ModelLoop(
            run.model, analysis_tools(state, pricing), max_rounds=2, result_max_chars=50
        )
        answer = await loop.run(run.context(), state)
    assert answer == TEXT_ANSWER
    assert [r.body["tool_choice"] for r in server.requests] == ["auto", "auto", "none"]
    # A long result goes back to the model cut, and says so.
    results = [m["content"] for m in server.requests[2].body["messages"] if m["role"] == "tool"]
    assert len(results) == 2 and all(len(r) == 57 and r.endswith(" …(cut)") for r in results)


async def test_a_server_that_sends_no_usage_still_drives_the_tools(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("no_usage_tool_calls.sse.http", "no_usage_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    assert await run.answer() == "Switch to the cheaper model."
    assert_well_formed(run.events)
    calls = {e.data["tool_name"]: e for e in run.of(EventType.TOOL_EXECUTING)}
    assert calls["rank_actions"].agent_name == "actions"
    assert calls["rank_actions"].data["tool_args"] == {"max_actions": 3}
    assert calls["find_cheaper_models"].agent_name == "optimization"
    assert calls["usage_overview"].data["tool_args"] == {"arguments": [1, 2]}
    done = {e.data["tool_name"]: e for e in run.of(EventType.TOOL_COMPLETED)}
    ranked = done["rank_actions"].data["result"]
    assert done["rank_actions"].data["success"] and 1 <= len(ranked) <= 3
    assert ranked[0]["monthly_savings_usd"] > 0
    assert done["usage_overview"].data["error"] == "the arguments must be a JSON object"
    assert not run.of(EventType.MODEL_USAGE) and run.kept == []


async def test_a_model_that_answers_nothing_fails_or_is_replaced(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("empty_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    with pytest.raises(ModelFailed) as failed:
        await run.answer()
    assert failed.value.message == "the model answered with no text"
    [usage] = run.of(EventType.MODEL_USAGE)  # the tokens were spent all the same
    assert usage.data["requests"] == 1 and usage.data["total_tokens"] == 641

    server.play("empty_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url), fallback=True)
    answer = await run.answer()
    assert answer.startswith("## ") and answer == run.streamed()


# --- failures, retries and the fallback -------------------------------------------------------


async def test_429_is_retried_after_the_wait_it_asks_for(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("rate_limited.http", "text_answer.sse.http")
    run = Run(sample, pricing, model_at(server.base_url))
    started = time.monotonic()
    assert await run.answer() == TEXT_ANSWER
    waited = time.monotonic() - started
    assert len(server.requests) == 2
    assert 1.0 <= waited < 1.0 + unit(2)  # Retry-After: 1, not the 0.01 s backoff


async def test_5xx_is_retried_with_backoff_then_fails_clearly(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("server_error.http", "server_error.http", "server_error.http")
    run = Run(sample, pricing, model_at(server.base_url, retries=2))
    with pytest.raises(ModelFailed) as failed:
        await run.answer()
    assert failed.value.code == "model_error"
    assert failed.value.message == "the model server answered HTTP 503 (3 tries)"
    assert len(server.requests) == 3
    assert not run.of(EventType.TEXT_DELTA) and not run.of(EventType.MODEL_USAGE)


async def test_a_wait_past_the_deadline_is_not_taken(server: ReplayServer) -> None:
    server.play("rate_limited_long.http")
    started = time.monotonic()
    with pytest.raises(ModelFailed) as failed:
        await collect(model_at(server.base_url, timeout_s=2))
    assert time.monotonic() - started < unit(1)
    assert failed.value.code == "model_rate_limited"
    assert "HTTP 429 (1 try); the next try, in 30s, would be past the 2s limit" in str(failed.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "unknown_model.http",
            "the model server does not know the model or the path (HTTP 404): check "
            "RUNWIRE_LLM_MODEL and RUNWIRE_LLM_BASE_URL",
        ),
        ("context_too_long.http", "the model server refused the request (HTTP 400)"),
    ],
)
async def test_other_refusals_are_not_retried(
    server: ReplayServer, name: str, message: str
) -> None:
    server.play(name)
    with pytest.raises(ModelFailed) as failed:
        await collect(model_at(server.base_url))
    assert len(server.requests) == 1
    assert failed.value.message == message and failed.value.code == "model_error"


@pytest.mark.parametrize(
    ("script", "code", "message", "text"),
    [
        (HANG, "model_timeout", "the model server did not answer in time (1 try)", []),
        (
            stall("text_answer.sse.http"),
            "model_timeout",
            "the model server did not answer within 0.3s",
            [TextPiece("Your")],
        ),
        (
            "malformed_event.sse.http",
            "model_error",
            "the model server sent a malformed stream event",
            [TextPiece("Your")],
        ),
        (
            cut("text_answer.sse.http"),
            "model_unreachable",
            "the connection to the model server broke mid-answer",
            [TextPiece("Your")],
        ),
    ],
)
async def test_a_server_that_falls_silent_or_hangs_up_fails_the_turn(
    server: ReplayServer, script: str, code: str, message: str, text: list[TextPiece]
) -> None:
    server.play(script)
    got: list[Any] = []
    model = model_at(server.base_url, timeout_s=unit(0.3), retries=0)
    try:
        with pytest.raises(ModelFailed) as failed:
            async with model:
                async for event in model.turn([{"role": "user", "content": "hi"}], []):
                    got.append(event)
    finally:
        server.release()
    assert (failed.value.code, failed.value.message) == (
        code,
        message.replace("0.3", f"{unit(0.3):g}"),
    )
    assert got == text


async def test_a_refused_key_is_not_retried_and_not_echoed(server: ReplayServer) -> None:
    server.play("invalid_key.http")
    with pytest.raises(ModelFailed) as failed:
        await collect(model_at(server.base_url))
    assert len(server.requests) == 1
    assert failed.value.message == (
        "the model server refused the API key (HTTP 401): check RUNWIRE_LLM_API_KEY"
    )
    assert "cdef" not in repr(failed.value)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_an_unreachable_model_is_a_clear_error(
    sample: list[UsageRecord], pricing: PricingTable
) -> None:
    run = Run(sample, pricing, model_at(f"http://127.0.0.1:{free_port()}/v1", retries=1))
    with pytest.raises(ModelFailed) as failed:
        await run.answer()
    assert failed.value.code == "model_unreachable"
    assert failed.value.message == "the model server cannot be reached (2 tries)"


async def test_the_offline_agents_answer_when_the_model_fails_and_fallback_is_on(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play(DROP, DROP)
    run = Run(sample, pricing, model_at(server.base_url, retries=1), fallback=True)
    answer = await run.answer()
    assert answer.startswith("## ") and answer == run.streamed()
    said = [e.data["reasoning"] for e in run.of(EventType.AGENT_THINKING, SUPERVISOR)]
    assert any(
        text
        == "The model failed (the model server cannot be reached (2 tries)): answering with the "
        "offline analysis instead."
        for text in said
    )
    assert [e.agent_name for e in run.of(EventType.AGENT_STARTED)] == [
        "triage",
        "data",
        "optimization",
        "actions",
        "reporting",
    ]


async def test_an_error_mid_answer_fails_the_run_even_with_fallback(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play("error_mid_stream.sse.http")
    run = Run(sample, pricing, model_at(server.base_url), fallback=True)
    with pytest.raises(ModelFailed) as failed:
        await run.answer()
    assert failed.value.message == "the model server reported an error mid-answer"
    assert run.streamed() == "Your spend"  # what went out stays; nothing is appended to it
    [error] = run.of(EventType.AGENT_ERROR)
    assert error.agent_name == "reporting" and error.data["code"] == "model_error"
    assert_well_formed(run.events)


async def test_a_silent_model_times_out_within_the_turn_limit(
    server: ReplayServer, sample: list[UsageRecord], pricing: PricingTable
) -> None:
    server.play(HANG)
    run = Run(sample, pricing, model_at(server.base_url, retries=0), llm_timeout_s=unit(0.2))
    started = time.monotonic()
    try:
        with pytest.raises(ModelFailed) as failed:
            await run.answer()
    finally:
        server.release()
    assert time.monotonic() - started < unit(1)
    assert failed.value.code == "model_timeout"


# --- kept with the run ------------------------------------------------------------------------


async def ended(store: Store, run: RunInput) -> None:
    """The run's end recorded as the executor records it: with the verdict its agent kept."""
    await store.runs.finish(
        run.run_id, "completed", last_seq=1, started_at=None, quality=run.keeps.quality
    )


async def test_the_runs_model_usage_is_stored_with_it(
    server: ReplayServer, store: Store, settings: Settings, pricing: PricingTable
) -> None:
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    await store.usage.add(user.id, generate_sample(days=5))
    run_id = new_id("run")
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content=QUESTION, run_id=run_id, epoch=new_epoch()
    )
    server.play("text_answer.sse.http")
    async with model_at(server.base_url) as model:
        agent = build_agent(settings, store, pricing, model=model)
        events: list[EventDraft] = []

        async def emit(draft: EventDraft) -> None:
            events.append(draft)

        run = RunInput(run_id, thread.id, user.id, QUESTION, epoch="e")
        answer = await agent(run, emit)
    assert answer == TEXT_ANSWER
    # Written as the model's turns end, not with the run's end: it was spent either way.
    record = await store.runs.get(user.id, run_id)
    assert record is not None
    assert record.public()["model_usage"] == {
        "model": "gpt-4o-mini",
        "requests": 1,
        "prompt_tokens": 812,
        "completion_tokens": 9,
        "total_tokens": 821,
        "cost_usd": pytest.approx(pricing.cost("openai", "gpt-4o-mini", 812, 9)),
    }


async def test_the_gates_verdicts_are_kept_with_the_runs_and_counted(
    server: ReplayServer, store: Store, settings: Settings, pricing: PricingTable
) -> None:
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    await store.usage.add(user.id, generate_sample(days=5))

    async def ask(*recordings: str) -> str:
        run_id = new_id("run")
        thread, _ = await store.conversations.accept(
            user_id=user.id, thread=None, content=QUESTION, run_id=run_id, epoch=new_epoch()
        )
        server.play(*recordings)
        async with model_at(server.base_url) as model:
            agent = build_agent(settings, store, pricing, model=model)

            async def emit(draft: EventDraft) -> None:
                pass

            run = RunInput(run_id, thread.id, user.id, QUESTION, epoch="e")
            await agent(run, emit)
        await ended(store, run)
        return run_id

    grounded = await ask("text_answer.sse.http")
    invented = await ask("bad_tool_calls.sse.http", "figures_answer.sse.http")
    # Recorded over another sample: the figures of the summary it echoes are no tool's here.
    echoed = await ask("echo_instructions.sse.http")
    kept = await store.runs.get(user.id, grounded)
    assert kept is not None and kept.public()["quality"] == {
        "score": 1.0,
        "outcome": "passed",
        "reasons": [],
    }
    replaced = await store.runs.get(user.id, invented)
    assert replaced is not None
    quality = replaced.public()["quality"]
    assert quality["outcome"] == "replaced" and quality["score"] < 1
    assert [r["reason"] for r in quality["reasons"]] == ["unsupported_figure"]
    restated = await store.runs.get(user.id, echoed)
    assert restated is not None
    assert [r["reason"] for r in restated.public()["quality"]["reasons"]] == [
        "unsupported_figure",
        "echoes_instructions",
    ]
    assert await store.runs.quality_metrics(user.id) == {
        "checked": 3,
        "passed": 1,
        "replaced": 2,
        "failed": 0,
        "by_reason": {"echoes_instructions": 1, "unsupported_figure": 2},
    }
    # Another user's answers are not counted for this one.
    other = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    assert (await store.runs.quality_metrics(other.id))["checked"] == 0
