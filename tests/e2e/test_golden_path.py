"""The golden path over real sockets against the real server process, as a client sees it.

The main flow and the health checks run on each backend (``backend_url``: SQLite, PostgreSQL).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.e2e.wire import Session
from tests.timing import unit

CRITICAL = {
    "agent_started",
    "agent_thinking",
    "tool_executing",
    "tool_completed",
    "agent_completed",
}


@pytest.fixture
async def session(server_url: str, sessions: Callable[[str], Awaitable[Session]]) -> Session:
    return await sessions(server_url)


def check_run_shape(events: list[dict]) -> None:  # type: ignore[type-arg]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "agent_started" and events[0]["parent_agent"] is None
    last = events[-1]
    assert last["parent_agent"] is None and last["type"] in {
        "agent_completed",
        "agent_error",
        "agent_stopped",
    }
    open_tools: dict[str, str] = {}
    open_agents: list[str] = []
    for e in events:
        for key in ("type", "run_id", "thread_id", "seq", "agent_name", "timestamp"):
            assert key in e, (key, e)
        if e["type"] == "tool_executing":
            open_tools[e["tool_call_id"]] = e["tool_name"]
        elif e["type"] == "tool_completed":
            assert open_tools.pop(e["tool_call_id"]) == e["tool_name"]
        elif e["parent_agent"] is not None and e["type"] == "agent_started":
            open_agents.append(e["agent_name"])
        elif e["parent_agent"] is not None and e["type"] in ("agent_completed", "agent_error"):
            open_agents.remove(e["agent_name"])
    assert not open_tools and not open_agents


async def test_ask_about_costs_and_find_it_all_again(
    backend_url: str, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    session = await sessions(backend_url)
    r = await session.post("/api/usage/sample")
    assert r.status_code == 201 and r.json()["imported"] > 1000
    sock = await session.connect()
    await sock.send(
        type="user_message",
        content="Where can we cut our LLM costs?",
        client_message_id="m-1",
        request_id="req-1",
    )
    accepted = await sock.until("message_accepted")
    ack = accepted[-1]
    assert ack["request_id"] == "req-1"
    events = await sock.run_to_end(ack["run_id"])
    check_run_shape(events)
    assert {e["type"] for e in events} >= CRITICAL
    tools = [e for e in events if e["type"] == "tool_completed"]
    assert len(tools) >= 5 and all(t["success"] for t in tools)
    assert any(e["type"] == "tool_executing" and e["tool_args"] is not None for e in events)
    assert {e["agent_name"] for e in events} >= {
        "supervisor",
        "triage",
        "data",
        "optimization",
        "reporting",
    }
    streamed = "".join(e["delta"] for e in events if e["type"] == "text_delta")
    final = events[-1]
    assert final["type"] == "agent_completed"
    answer = final["final_response"]
    assert streamed == answer and "$" in answer
    # Everything is kept: threads, messages, the run and its events.
    threads = (await session.get("/api/threads")).json()["threads"]
    assert threads[0]["id"] == ack["thread_id"]
    messages = (await session.get(f"/api/threads/{ack['thread_id']}/messages")).json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == answer and messages[1]["id"] == final["message_id"]
    stored = (await session.get(f"/api/runs/{ack['run_id']}/events?after=0")).json()["events"]
    assert stored == events
    later = (await session.get(f"/api/runs/{ack['run_id']}/events?after=5")).json()["events"]
    assert later == events[5:]
    run = (await session.get(f"/api/runs/{ack['run_id']}")).json()["run"]
    assert run["status"] == "completed" and run["last_seq"] == len(events)
    # ...and over the socket.
    await sock.send(type="get_thread_history", thread_id=ack["thread_id"])
    history = (await sock.until("thread_history"))[-1]
    assert [m["content"] for m in history["messages"]] == [
        "Where can we cut our LLM costs?",
        answer,
    ]
    await sock.close()


async def test_without_data_the_agents_explain_how_to_import(session: Session) -> None:
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
    events = await sock.run_to_end(ack["run_id"])
    check_run_shape(events)
    assert "data_helper" in {e["agent_name"] for e in events}
    answer = events[-1]["final_response"]
    assert "runwire usage import" in answer and "sample" in answer.lower()
    await sock.close()


async def test_a_repeated_client_message_id_starts_nothing_new(session: Session) -> None:
    sock = await session.connect()
    first = await sock.ask("hello", client_message_id="same")
    await sock.run_to_end(first["run_id"])
    second = await sock.ask("hello", client_message_id="same")
    assert second["duplicate"] is True
    assert (second["run_id"], second["message_id"]) == (first["run_id"], first["message_id"])
    messages = (await session.get(f"/api/threads/{first['thread_id']}/messages")).json()["messages"]
    assert sum(m["role"] == "user" for m in messages) == 1
    await sock.close()


async def test_bad_frames_get_errors_and_the_socket_stays_usable(session: Session) -> None:
    sock = await session.connect()
    for raw, code in [
        ("{not json", "bad_json"),
        ('{"type":"fly"}', "unknown_type"),
        ('{"type":"user_message"}', "missing_field"),
        ('{"type":"resume","run_id":"r","after_seq":-2}', "invalid_field"),
        ('{"type":"stop_agent","run_id":"run_nope","request_id":"q"}', "not_found"),
        ('{"type":"get_thread_history","thread_id":"thr_nope"}', "not_found"),
        ('{"type":"user_message","content":"x","thread_id":"thr_nope"}', "not_found"),
    ]:
        await sock.ws.send(raw)
        reply = await sock.recv()
        assert reply["type"] == "error" and reply["code"] == code, (raw, reply)
        assert reply["message"]
    await sock.ws.send(b'{"type":"ping","request_id":"p1"}')
    assert await sock.recv() == {"type": "pong", "request_id": "p1"}
    await sock.close()


async def test_resume_after_the_end_and_mid_way(
    session: Session, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
    events = await sock.run_to_end(ack["run_id"])
    await sock.close()
    again = await session.connect()
    await again.send(type="resume", run_id=ack["run_id"], after_seq=3)
    replay = await again.run_to_end(ack["run_id"])
    assert replay == events[3:]
    other = await sessions(session.base)
    foreign = await other.connect()
    await foreign.send(type="resume", run_id=ack["run_id"], after_seq=0)
    reply = await foreign.recv()
    assert reply["type"] == "error" and reply["code"] == "not_found"
    await foreign.close()
    await again.close()


async def test_a_socket_cut_in_the_middle_of_a_streamed_batch_resumes_without_gap_or_duplicate(
    session: Session,
) -> None:
    # The answer's chunks go out in batches (a turn's worth through the run in one pass and one
    # write): a client cut off part way through one resumes and has each seq once.
    await session.post("/api/usage/sample")
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
    seen: list[dict] = []  # type: ignore[type-arg]
    while sum(e["type"] == "text_delta" for e in seen) < 10:
        frame = await sock.recv()
        if frame.get("run_id") == ack["run_id"] and "seq" in frame:
            seen.append(frame)
    sock.ws.transport.abort()  # the network drops: no close handshake
    again = await session.connect()
    await again.send(type="resume", run_id=ack["run_id"], after_seq=seen[-1]["seq"])
    rest = await again.run_to_end(ack["run_id"])
    # Live events may reach the new socket ahead of the replay (client rule 1: apply by seq).
    whole = sorted(seen + rest, key=lambda e: e["seq"])
    check_run_shape(whole)
    deltas = [e["delta"] for e in whole if e["type"] == "text_delta"]
    assert len(deltas) > 64  # more than one batch
    assert "".join(deltas) == whole[-1]["final_response"]
    stored = (await session.get(f"/api/runs/{ack['run_id']}/events")).json()["events"]
    assert stored == whole
    await again.close()


async def test_another_user_sees_nothing(
    session: Session, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    other = await sessions(session.base)
    watcher = await other.connect()
    sock = await session.connect()
    ack = await sock.ask("Where can we cut our LLM costs?")
    await sock.run_to_end(ack["run_id"])
    await watcher.send(type="ping")
    assert (await watcher.recv())["type"] == "pong"  # and no event of the other user before it
    assert (await other.get(f"/api/threads/{ack['thread_id']}/messages")).status_code == 404
    assert (await other.get(f"/api/runs/{ack['run_id']}/events")).status_code == 404
    assert (await other.get("/api/threads")).json()["threads"] == []
    await watcher.close()
    await sock.close()


async def test_every_connection_of_the_user_gets_the_events(session: Session) -> None:
    a = await session.connect()
    b = await session.connect()
    ack = await a.ask("hi")
    assert await a.run_to_end(ack["run_id"]) == await b.run_to_end(ack["run_id"])
    await a.close()
    await b.close()


async def test_handshake_authentication(session: Session) -> None:
    with pytest.raises(InvalidStatus) as missing:
        await connect(session.ws_url(), open_timeout=unit(5))
    assert missing.value.response.status_code == 401
    ticket = await session.ticket()
    async with connect(session.ws_url(ticket)) as ws:
        assert json.loads(await ws.recv())["type"] == "connection_established"
    with pytest.raises(InvalidStatus) as reused:
        await connect(session.ws_url(ticket), open_timeout=unit(5))
    assert reused.value.response.status_code == 401
    async with connect(session.ws_url(), additional_headers=session.auth) as ws:
        assert json.loads(await ws.recv())["user_id"] == session.user_id
    with pytest.raises(InvalidStatus) as cross_site:
        await connect(session.ws_url(await session.ticket()), origin="https://evil.example")  # type: ignore[arg-type]
    assert cross_site.value.response.status_code == 403


async def test_http_auth_contract(server_url: str) -> None:
    async with httpx.AsyncClient(base_url=server_url, timeout=unit(10)) as http:
        email = f"x-{uuid.uuid4().hex[:8]}@example.com"
        assert (
            await http.post("/auth/register", json={"email": email, "password": "short"})
        ).status_code == 422
        assert (
            await http.post("/auth/register", json={"email": "nope", "password": "longenough"})
        ).status_code == 422
        assert (
            await http.post("/auth/register", json={"email": email, "password": "longenough"})
        ).status_code == 201
        assert (
            await http.post("/auth/register", json={"email": email, "password": "longenough"})
        ).status_code == 409
        wrong = await http.post("/auth/login", json={"email": email, "password": "wrongwrong"})
        unknown = await http.post(
            "/auth/login", json={"email": "a" + email, "password": "longenough"}
        )
        assert wrong.status_code == unknown.status_code == 401 and wrong.json() == unknown.json()
        tokens = (
            await http.post("/auth/login", json={"email": email, "password": "longenough"})
        ).json()
        assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
        fresh = await http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert fresh.status_code == 200
        assert (
            await http.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        ).status_code == 401
        # reuse revoked the family: the new pair is dead too
        new_access = fresh.json()["access_token"]
        assert (
            await http.get("/api/threads", headers={"Authorization": f"Bearer {new_access}"})
        ).status_code == 401
        tokens = (
            await http.post("/auth/login", json={"email": email, "password": "longenough"})
        ).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert (await http.post("/auth/logout", headers=bearer)).status_code == 204
        assert (await http.get("/api/threads", headers=bearer)).status_code == 401
        assert (await http.post("/auth/logout")).status_code == 401
        assert (await http.get("/api/threads")).status_code == 401


async def test_usage_import_over_http(session: Session) -> None:
    good = {
        "timestamp": "2026-11-01T10:00:00Z",
        "provider": "openai",
        "model": "gpt-4o",
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "latency_ms": 850,
    }
    body = "\n".join(
        [
            json.dumps(good),
            "{broken",
            json.dumps({**good, "prompt_tokens": -1}),
            json.dumps({**good, "cost_usd": 0.5, "status": "error"}),
        ]
    )
    r = await session.post(
        "/api/usage/import", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["imported"] == 2
    assert [x["line"] for x in report["rejected"]] == [2, 3]
    assert "prompt_tokens" in report["rejected"][1]["error"]
    csv_body = (
        "timestamp,provider,model,prompt_tokens,completion_tokens,latency_ms\n"
        "2026-11-01T10:00:00Z,openai,gpt-4o-mini,10,5,120\n"
    )
    r = await session.post(
        "/api/usage/import", content=csv_body, headers={"Content-Type": "text/csv"}
    )
    assert r.json()["imported"] == 1 and r.json()["rejected"] == []
    r = await session.post("/api/usage/import", content="x", headers={"Content-Type": "image/png"})
    assert r.status_code == 415
    r = await session.post(
        "/api/usage/import", content=b"x" * (21 * 1024 * 1024), headers={"Content-Type": "text/csv"}
    )
    assert r.status_code == 413
    assert (await session.get("/api/usage/summary")).json() == {"records": 3}


async def test_usage_data_is_stored_once_and_can_be_deleted(
    session: Session, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    jsonl = "\n".join(
        json.dumps(
            {
                "timestamp": f"2026-11-01T10:00:0{i}Z",
                "provider": "openai",
                "model": "gpt-4o",
                "prompt_tokens": 1000,
                "completion_tokens": 200,
                "latency_ms": 850,
            }
        )
        for i in range(3)
    )
    ndjson = {"Content-Type": "application/x-ndjson"}
    r = await session.post("/api/usage/import?name=calls.jsonl", content=jsonl, headers=ndjson)
    first = r.json()
    assert (first["imported"], first["new"], first["already_present"]) == (3, 3, 0)
    r = await session.post("/api/usage/import?name=calls.jsonl", content=jsonl, headers=ndjson)
    again = r.json()
    assert (again["imported"], again["new"], again["already_present"]) == (3, 0, 3)
    assert again["batch_id"] is None
    sample = (await session.post("/api/usage/sample")).json()
    assert sample["new"] == sample["imported"] > 1000 and "rejected" not in sample
    twice = await session.post("/api/usage/sample")
    assert twice.status_code == 201
    assert (twice.json()["new"], twice.json()["already_present"]) == (0, sample["new"])
    total = 3 + sample["new"]
    assert (await session.get("/api/usage/summary")).json() == {"records": total}

    batches = (await session.get("/api/usage/batches")).json()["batches"]
    assert [(b["id"], b["source"], b["name"], b["records"]) for b in batches] == [
        (sample["batch_id"], "sample", None, sample["new"]),
        (first["batch_id"], "import", "calls.jsonl", 3),
    ]
    assert batches[0]["created_at"] >= batches[1]["created_at"]
    # Nobody else can delete (or see) them.
    other = await sessions(session.base)
    r = await other.http.delete(f"/api/usage/batches/{first['batch_id']}", headers=other.auth)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (await other.get("/api/usage/batches")).json() == {"batches": []}

    r = await session.http.delete(f"/api/usage/batches/{first['batch_id']}", headers=session.auth)
    assert r.json() == {"deleted": 3}
    r = await session.http.delete(f"/api/usage/batches/{first['batch_id']}", headers=session.auth)
    assert r.status_code == 404
    r = await session.http.delete("/api/usage/records", headers=session.auth)
    assert r.json() == {"deleted": sample["new"]}
    assert (await session.get("/api/usage/summary")).json() == {"records": 0}
    assert (await session.get("/api/usage/batches")).json() == {"batches": []}
    r = await session.post("/api/usage/import?name=" + "n" * 201, content=jsonl, headers=ndjson)
    assert r.status_code == 422
    assert (await session.http.delete("/api/usage/records")).status_code == 401


async def test_health_ready_and_docs(backend_url: str) -> None:
    async with httpx.AsyncClient(base_url=backend_url, timeout=unit(10)) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
        ready = (await http.get("/ready")).json()
        assert ready["status"] == "ready" and ready["checks"] == {"database": "ok", "schema": "ok"}
        assert (await http.get("/docs")).status_code == 200
        spec = (await http.get("/openapi.json")).json()
        assert "/api/usage/import" in spec["paths"] and "/auth/login" in spec["paths"]
        page = await http.get("/")
        assert page.status_code == 200 and "runwire" in page.text.lower()
        missing = await http.get("/api/nothing-here")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        wrong = await http.delete("/api/threads")
        assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
