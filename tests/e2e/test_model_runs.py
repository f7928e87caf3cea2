"""`runwire serve` with a model configured (RUNWIRE_LLM_BASE_URL): over real sockets, the model
chooses the tools and writes the answer, its tokens and cost are kept with the run, and a model
that cannot be reached ends the run with a clear agent_error."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator

import pytest
from playwright.sync_api import expect

from runwire.agents.formatting import format_usd
from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.test_browser import ask, chromium, load_sample, ms, sign_up
from tests.e2e.wire import Session
from tests.model_server import DROP, ReplayServer, stall

KEY = "sk-test-e2e-0123456789abcdef"
QUESTION = "Which models cost the most, and which are slow?"


@pytest.fixture(scope="module")
def replay() -> Iterator[ReplayServer]:
    with ReplayServer.running() as running:
        yield running


@pytest.fixture(scope="module")
def model_server(
    tmp_path_factory: pytest.TempPathFactory, replay: ReplayServer
) -> Iterator[ServerProcess]:
    env = {
        **BASE_ENV,
        "RUNWIRE_LLM_BASE_URL": replay.base_url,
        "RUNWIRE_LLM_API_KEY": KEY,
        "RUNWIRE_LLM_MAX_RETRIES": "0",
    }
    proc = ServerProcess(tmp_path_factory.mktemp("model"), env)
    yield proc
    proc.stop()


async def test_the_model_drives_the_tools_and_the_run_keeps_its_tokens(
    model_server: ServerProcess,
    replay: ReplayServer,
    sessions: Callable[[str], Awaitable[Session]],
) -> None:
    session = await sessions(model_server.url)
    await session.post("/api/usage/sample")
    replay.play("two_tool_calls.sse.http", "answer_after_tools.sse.http")
    sock = await session.connect()
    ack = await sock.ask(QUESTION)
    events = await sock.run_to_end(ack["run_id"])

    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    pairs = [(e["type"], e["agent_name"], e["tool_name"]) for e in events if "tool_name" in e]
    assert pairs == [
        ("tool_executing", "triage", "check_usage_data"),
        ("tool_completed", "triage", "check_usage_data"),
        ("tool_executing", "triage", "classify_question"),
        ("tool_completed", "triage", "classify_question"),
        ("tool_executing", "data", "cost_breakdown"),
        ("tool_completed", "data", "cost_breakdown"),
        ("tool_executing", "data", "latency_percentiles"),
        ("tool_completed", "data", "latency_percentiles"),
    ]
    answer = "".join(e["delta"] for e in events if e["type"] == "text_delta")
    assert answer.endswith("its p95 is the slowest: try a cheaper model.\n")
    last = events[-1]
    assert last["type"] == "agent_completed" and last["final_response"] == answer
    *_, usage = [e for e in events if e["type"] == "model_usage"]
    assert usage["agent_name"] == "supervisor" and usage["total_tokens"] == 4242
    assert usage["cost_usd"] > 0
    assert KEY not in json.dumps(events)
    assert replay.requests[0].headers["authorization"] == f"Bearer {KEY}"

    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["status"] == "completed"
    assert run["model_usage"] == {k: v for k, v in usage.items() if k in run["model_usage"]}
    assert run["model_usage"]["requests"] == 2


async def test_an_unreachable_model_ends_the_run_with_a_clear_agent_error(
    model_server: ServerProcess,
    replay: ReplayServer,
    sessions: Callable[[str], Awaitable[Session]],
) -> None:
    session = await sessions(model_server.url)
    await session.post("/api/usage/sample")
    replay.play(DROP)
    sock = await session.connect()
    ack = await sock.ask(QUESTION)
    events = await sock.run_to_end(ack["run_id"])
    last = events[-1]
    assert last["type"] == "agent_error" and last["agent_name"] == "supervisor"
    assert last["code"] == "model_unreachable"
    assert last["message"] == "the model server cannot be reached (1 try)"
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["status"] == "failed" and run["error_code"] == "model_unreachable"
    assert run["model_usage"] is None


async def test_a_stop_while_the_model_streams_keeps_what_it_wrote(
    model_server: ServerProcess,
    replay: ReplayServer,
    sessions: Callable[[str], Awaitable[Session]],
) -> None:
    session = await sessions(model_server.url)
    await session.post("/api/usage/sample")
    replay.play(stall("answer_after_tools.sse.http"))
    sock = await session.connect()
    try:
        ack = await sock.ask(QUESTION)
        before = await sock.until("text_delta")  # the model's first words, then it falls silent
        await sock.send(type="stop_agent", run_id=ack["run_id"])
        events = [e for e in before if e.get("run_id") == ack["run_id"]]
        events += await sock.run_to_end(ack["run_id"])
    finally:
        replay.release()
    last = events[-1]
    assert last["type"] == "agent_stopped" and last["code"] == "stopped"
    [writer_end] = [
        e for e in events if e["agent_name"] == "reporting" and e["type"] == "agent_error"
    ]
    assert writer_end["code"] == "stopped"
    history = (await session.get(f"/api/threads/{ack['thread_id']}/messages")).json()["messages"]
    assert history[-1]["content"] == "## Cost and latency\n\n" and history[-1]["partial"] is True


async def test_an_answer_the_gate_rejects_is_replaced_and_counted_on_the_socket(
    model_server: ServerProcess,
    replay: ReplayServer,
    sessions: Callable[[str], Awaitable[Session]],
) -> None:
    session = await sessions(model_server.url)
    await session.post("/api/usage/sample")
    # The model's tool calls all fail, yet it quotes costs and latencies.
    replay.play("bad_tool_calls.sse.http", "figures_answer.sse.http")
    sock = await session.connect()
    ack = await sock.ask(QUESTION)
    events = await sock.run_to_end(ack["run_id"])

    [warning] = [e for e in events if e["type"] == "quality_warning"]
    assert warning["agent_name"] == "supervisor" and warning["outcome"] == "replaced"
    assert warning["unsupported"] == ["$21.61", "$49.61", "43.6%", "37,775 ms"]
    at = events.index(warning)
    model_text = "".join(e["delta"] for e in events[:at] if e["type"] == "text_delta")
    replacement = "".join(e["delta"] for e in events[at:] if e["type"] == "text_delta")
    assert model_text.startswith("## Cost and latency") and replacement.startswith("## You spend")
    last = events[-1]
    assert last["type"] == "agent_completed" and last["final_response"] == replacement
    history = (await session.get(f"/api/threads/{ack['thread_id']}/messages")).json()["messages"]
    assert history[-1]["content"] == replacement
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["quality"]["outcome"] == "replaced"
    assert run["quality"]["reasons"] == warning["reasons"]

    await sock.send(type="get_quality_metrics", request_id="q-1")
    [metrics] = (await sock.until("quality_metrics"))[-1:]
    assert metrics == {
        "type": "quality_metrics",
        "request_id": "q-1",
        "checked": 1,
        "passed": 0,
        "replaced": 1,
        "failed": 0,
        "by_reason": {"unsupported_figure": 1},
    }

    # Any text, scored against the figures this run's tools computed (the sample is of today).
    [costs] = [
        e["result"]
        for e in events
        if e["type"] == "tool_completed" and e["tool_name"] == "cost_breakdown"
    ]
    top = costs["models"][0]
    await sock.send(
        type="validate_content",
        run_id=ack["run_id"],
        content=f"{top['model']} costs {format_usd(top['cost_usd'])} of your "
        f"{format_usd(costs['total_cost_usd'])} ({top['share_pct']}%), not $98,765.43.",
        request_id="v-1",
    )
    [scored] = (await sock.until("content_validated"))[-1:]
    assert scored["run_id"] == ack["run_id"] and scored["request_id"] == "v-1"
    assert scored["passed"] is False and scored["unsupported"] == ["$98,765.43"]
    assert (scored["figures"], scored["supported"]) == (4, 3)
    assert scored["reasons"] == [
        {"reason": "unsupported_figure", "message": "1 figure no tool computed: $98,765.43"}
    ]

    # Another user's run is not found, exactly like one that does not exist.
    other = await sessions(model_server.url)
    theirs = await other.connect()
    for run_id in (ack["run_id"], "run_missing"):
        await theirs.send(type="validate_content", run_id=run_id, content="$1", request_id="v-2")
        [refused] = (await theirs.until("error"))[-1:]
        assert (refused["code"], refused["request_id"]) == ("not_found", "v-2")
    await theirs.send(type="get_quality_metrics")
    [nothing] = (await theirs.until("quality_metrics"))[-1:]
    assert nothing["checked"] == 0 and nothing["by_reason"] == {}


async def test_a_model_that_restates_its_instructions_is_replaced_on_the_socket(
    model_server: ServerProcess,
    replay: ReplayServer,
    sessions: Callable[[str], Awaitable[Session]],
) -> None:
    session = await sessions(model_server.url)
    await session.post("/api/usage/sample")
    # A real small model (Gemma 3 270M on llama.cpp, recorded): no tool call, its instructions
    # and the summary of the data it was recorded over, word for word.
    replay.play("echo_instructions.sse.http")
    sock = await session.connect()
    ack = await sock.ask(QUESTION)
    events = await sock.run_to_end(ack["run_id"])

    [warning] = [e for e in events if e["type"] == "quality_warning"]
    assert warning["outcome"] == "replaced" and warning["replaced"] is True
    reasons = {r["reason"]: r["message"] for r in warning["reasons"]}
    assert reasons["echoes_instructions"] == (
        "the answer restates runwire's instructions to the model instead of answering: 50 of "
        "its 64 words quote them"
    )
    # This sample is of today; the recording's summary was of another: its figures are no tool's.
    assert list(reasons) == ["unsupported_figure", "echoes_instructions"]
    assert "restates runwire's instructions" in warning["message"]
    at = events.index(warning)
    model_text = "".join(e["delta"] for e in events[:at] if e["type"] == "text_delta")
    replacement = "".join(e["delta"] for e in events[at:] if e["type"] == "text_delta")
    assert model_text.startswith("You are runwire's analyst.")
    assert replacement.startswith("## You spend") and "runwire's analyst" not in replacement
    last = events[-1]
    assert last["type"] == "agent_completed" and last["final_response"] == replacement
    history = (await session.get(f"/api/threads/{ack['thread_id']}/messages")).json()["messages"]
    assert history[-1]["content"] == replacement
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["quality"]["reasons"] == warning["reasons"]

    await sock.send(type="get_quality_metrics", request_id="q-2")
    [metrics] = (await sock.until("quality_metrics"))[-1:]
    assert metrics["by_reason"] == {"echoes_instructions": 1, "unsupported_figure": 1}
    # The same text, scored against this run on the socket, fails for the same reason.
    await sock.send(
        type="validate_content", run_id=ack["run_id"], content=model_text, request_id="v-3"
    )
    [scored] = (await sock.until("content_validated"))[-1:]
    assert scored["reasons"] == warning["reasons"]


@pytest.mark.browser
def test_the_page_shows_the_runs_model_tokens_and_cost(
    model_server: ServerProcess, replay: ReplayServer
) -> None:
    replay.play("two_tool_calls.sse.http", "answer_after_tools.sse.http")
    with chromium() as browser:
        context = browser.new_context(base_url=model_server.url)
        context.set_default_timeout(ms(15))
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_up(page)
        load_sample(page)
        ask(page, QUESTION)
        answer = page.get_by_test_id("assistant-message").last
        expect(answer).to_contain_text("its p95 is the slowest", timeout=ms(15))
        shown = page.get_by_test_id("model-usage").last
        expect(shown).to_have_text(" · gpt-4o-mini: 4,242 tokens · $0.00068")
        expect(shown).to_have_attribute(
            "title", "2 model requests: 4154 prompt and 88 completion tokens, at list price"
        )
        # The tools the model chose are in the activity, under their agent, as offline.
        tools = page.locator('[data-testid="tool-call"]')
        # check_usage_data, classify_question, cost_breakdown, latency_percentiles
        expect(tools).to_have_count(4)
        expect(page.get_by_test_id("quality-warning").last).to_be_hidden()

        # An answer the quality gate rejects: the page says so and shows the replacement only.
        replay.play("bad_tool_calls.sse.http", "figures_answer.sse.http")
        ask(page, QUESTION)
        answer = page.get_by_test_id("assistant-message").last
        expect(answer).to_have_attribute("data-state", "done", timeout=ms(15))
        expect(answer).to_contain_text("You spend about")
        expect(answer).not_to_contain_text("Cost and latency")
        warning = page.get_by_test_id("quality-warning").last
        expect(warning).to_be_visible()
        expect(warning).to_contain_text("4 figures no tool computed: $21.61, $49.61, 43.6%")
        expect(warning).to_contain_text("replaced by the offline analysis")
        context.close()
    assert not errors, errors
