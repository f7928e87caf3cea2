"""The probe catches a deployment that breaks the golden path: a stand-in runwire, on a real socket,
wrong in one chosen way at a time, and the walk's verdict on each.

The stand-in speaks the protocol as docs/protocol.md states it (faithful, it passes every step);
each fault is one thing a broken server could do that a user would notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from runwire.probe.client import Target
from runwire.probe.exchanges import STOP_QUESTION
from runwire.probe.report import Outcome, Report, Status
from runwire.probe.sessions import Credentials, Identities
from runwire.probe.walk import Walk
from tests.ports import loopback_listener
from tests.timing import unit

Frame = dict[str, Any]
DELTAS = ["## You could ", "save $40 ", "a month."]


@dataclass
class StandIn:
    """The state of a stand-in deployment, and the one ``fault`` it has ("" for none)."""

    fault: str = ""
    users: dict[str, tuple[str, str]] = field(default_factory=dict)  # email: (password, id)
    tokens: dict[str, str] = field(default_factory=dict)  # token (and ticket): user id
    records: dict[str, int] = field(default_factory=dict)
    runs: dict[str, tuple[str, str, list[Frame]]] = field(default_factory=dict)  # user, thread

    def user(self, request: Request) -> str | None:
        return self.tokens.get(request.headers.get("authorization", "").removeprefix("Bearer "))

    # -- HTTP --

    async def health(self, request: Request) -> Response:
        if self.fault == "redirect":
            return Response(
                status_code=301, headers={"location": "https://chat.example.com/health"}
            )
        return JSONResponse({"status": "ok"})

    async def ready(self, request: Request) -> Response:
        if self.fault == "ready_page":
            return HTMLResponse("<!doctype html><title>Ready?</title>")
        if self.fault == "not_ready":
            checks = {"database": "database unreachable (OSError)"}
            body = {"status": "unavailable", "checks": checks, "failing": ["database"]}
            return JSONResponse(body, 503)
        return JSONResponse({"status": "ready", "checks": {"database": "ok", "schema": "ok"}})

    async def register(self, request: Request) -> Response:
        if self.fault == "no_signup":
            return JSONResponse({"detail": "Not Found"}, 404)
        if self.fault == "one_signup" and self.users:
            detail = "too many sign-ups from your network address; try again in 120 s"
            return JSONResponse({"detail": detail, "code": "rate_limited"}, 429)
        body = await request.json()
        user_id = f"usr_{uuid.uuid4().hex}"
        self.users[body["email"]] = (body["password"], user_id)
        return JSONResponse({"user": {"id": user_id, "email": body["email"]}}, 201)

    async def login(self, request: Request) -> Response:
        body = await request.json()
        password, user_id = self.users.get(body["email"], ("", ""))
        if not user_id or password != body["password"]:
            return JSONResponse({"detail": "wrong e-mail or password", "code": "unauthorized"}, 401)
        token = uuid.uuid4().hex
        self.tokens[token] = user_id
        return JSONResponse({"access_token": token, "user": {"id": user_id}})

    async def logout(self, request: Request) -> Response:
        return Response(status_code=204)

    async def summary(self, request: Request) -> Response:
        return JSONResponse({"records": self.records.get(self.user(request) or "", 0)})

    async def sample(self, request: Request) -> Response:
        self.records[self.user(request) or ""] = 4000
        return JSONResponse({"imported": 4000}, 201)

    async def ticket(self, request: Request) -> Response:
        ticket = uuid.uuid4().hex
        self.tokens[ticket] = self.user(request) or ""
        return JSONResponse({"ticket": ticket, "expires_in": 60}, 201)

    def owned(self, request: Request, run_id: str | None, thread_id: str | None = None) -> bool:
        user = self.user(request)
        for owner, thread, _ in [self.runs[run_id]] if run_id in self.runs else self.runs.values():
            if (thread_id is None or thread == thread_id) and (
                owner == user or self.fault == "leak"
            ):
                return True
        return False

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not self.owned(request, run_id):
            return JSONResponse({"detail": "no such run", "code": "not_found"}, 404)
        events = self.runs[run_id][2]
        last = len(events) - (1 if self.fault == "last_seq" else 0)
        return JSONResponse({"run": {"id": run_id, "status": "completed", "last_seq": last}})

    async def events(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        if not self.owned(request, run_id):
            return JSONResponse({"detail": "no such run", "code": "not_found"}, 404)
        return JSONResponse({"run_id": run_id, "events": self.runs[run_id][2]})

    async def messages(self, request: Request) -> Response:
        thread_id = request.path_params["thread_id"]
        if not self.owned(request, None, thread_id):
            return JSONResponse({"detail": "no such thread", "code": "not_found"}, 404)
        if self.fault == "unstored":
            return JSONResponse({"thread_id": thread_id, "messages": []})
        content = "".join(DELTAS) + ("!" if self.fault == "stored" else "")
        replies = [
            {"id": f"msg_{run_id}", "role": "assistant", "content": content}
            for run_id, (_, thread, _) in self.runs.items()
            if thread == thread_id
        ]
        return JSONResponse({"thread_id": thread_id, "messages": replies})

    # -- WebSocket --

    def script(self, user: str, thread: str, *, stopped: bool = False) -> tuple[str, list[Frame]]:
        run_id = f"run_{uuid.uuid4().hex}"
        events: list[Frame] = []

        def add(kind: str, agent: str, **fields: Any) -> None:
            parent = None if agent == "supervisor" else "supervisor"
            if self.fault == "orphan" and kind == "tool_executing":
                parent = None
            events.append({"type": kind, "run_id": run_id, "thread_id": thread, "epoch": "e1",
                           "seq": len(events) + 1, "agent_name": agent, "parent_agent": parent,
                           **fields})  # fmt: skip

        add("agent_started", "supervisor")
        if self.fault == "short":
            add("agent_completed", "supervisor", final_response="", message_id=f"msg_{run_id}")
        elif stopped:
            add("agent_stopped", "supervisor", code="stopped", message="stopped")
        else:
            add("agent_thinking", "supervisor", reasoning="plan")
            add("agent_started", "reporting")
            add("tool_executing", "reporting", tool_name="compose_answer", tool_call_id="call_1")
            add("tool_completed", "reporting", tool_name="compose_answer", tool_call_id="call_1")
            for delta in DELTAS:
                add("text_delta", "reporting", delta=delta)
            add("agent_completed", "reporting", final_response="wrote it")
            answer = "".join(DELTAS) + (" (and more)" if self.fault == "text" else "")
            add("agent_completed", "supervisor", final_response=answer, message_id=f"msg_{run_id}")
        self.runs[run_id] = (user, thread, events)
        return run_id, events

    async def socket(self, ws: WebSocket) -> None:
        user = self.tokens.get(ws.query_params.get("ticket", ""))
        if not user or self.fault == "ws_refused":
            body = {"detail": "origin not allowed", "code": "forbidden_origin"}
            await ws.send_denial_response(JSONResponse(body, 403))
            return
        await ws.accept()
        if self.fault == "mute":
            await ws.close(1000)
            return
        who = "usr_someone_else" if self.fault == "wrong_user" else user
        await ws.send_json({"type": "connection_established", "user_id": who})
        stoppable: set[str] = set()
        with contextlib.suppress(Exception):  # the probe cuts sockets mid-run
            while True:
                frame = await ws.receive_json()
                kind, request_id = frame["type"], frame.get("request_id")
                if kind == "user_message" and self.fault == "busy":
                    await ws.send_json({"type": "error", "code": "too_many_runs",
                                        "message": "you already have 3 runs in progress; wait or stop one",
                                        "request_id": request_id})  # fmt: skip
                elif kind == "user_message" and self.fault == "garbage":
                    await ws.send_text("hello")
                elif kind == "user_message" and self.fault == "hang_up":
                    await ws.close(1011, "internal error")
                elif kind == "user_message":
                    thread = frame.get("thread_id") or f"thr_{uuid.uuid4().hex}"
                    stop_me = frame["content"] == STOP_QUESTION and self.fault not in (
                        "ignore_stop",
                        "finished",
                    )
                    run_id, events = self.script(user, thread, stopped=stop_me)
                    await ws.send_json({"type": "message_accepted", "thread_id": thread,
                                        "message_id": "msg_u", "run_id": run_id,
                                        "request_id": request_id})  # fmt: skip
                    if stop_me:
                        stoppable.add(run_id)
                        continue
                    for event in events:
                        if self.fault == "crowd":  # the same user's other run, meanwhile
                            await ws.send_json({**event, "run_id": "run_of_another_tab"})
                        await ws.send_json(event)
                elif kind == "stop_agent":
                    if self.fault == "stop_refused":
                        await ws.send_json({"type": "error", "code": "not_found",
                                            "message": "no such run", "request_id": request_id})  # fmt: skip
                    elif frame["run_id"] in stoppable:
                        if self.fault == "two_answers":  # it has ended, and yet it stops
                            await ws.send_json({"type": "error", "code": "run_finished",
                                                "message": "the run has already ended",
                                                "run_id": frame["run_id"], "request_id": request_id})  # fmt: skip
                        for event in self.runs[frame["run_id"]][2]:
                            await ws.send_json(event)
                    elif self.fault == "finished":
                        await ws.send_json({"type": "error", "code": "run_finished",
                                            "message": "the run has already ended",
                                            "run_id": frame["run_id"], "request_id": request_id})  # fmt: skip
                elif kind == "resume" and self.fault == "reload":
                    await ws.send_json({"type": "error", "code": "reload_required",
                                        "message": "the run's events were renumbered",
                                        "run_id": frame["run_id"], "reason": "epoch_changed",
                                        "epoch": "e2", "request_id": request_id})  # fmt: skip
                elif kind == "resume":
                    after = frame["after_seq"] - (1 if self.fault == "repeat" else 0)
                    for event in self.runs[frame["run_id"]][2][after:]:
                        if not (self.fault == "lose" and event["seq"] == after + 2):
                            await ws.send_json(event)
                elif kind == "ping":
                    await ws.send_json({"type": "pong", "request_id": request_id})

    def app(self, *, api: bool = True, auth: bool = True) -> Starlette:
        routes: list[Route | WebSocketRoute] = []
        if auth:
            routes += [
                Route("/auth/register", self.register, methods=["POST"]),
                Route("/auth/login", self.login, methods=["POST"]),
                Route("/auth/logout", self.logout, methods=["POST"]),
            ]
        if api:
            routes += [
                Route("/health", self.health),
                Route("/ready", self.ready),
                Route("/api/usage/summary", self.summary),
                Route("/api/usage/sample", self.sample, methods=["POST"]),
                Route("/api/ws-ticket", self.ticket, methods=["POST"]),
                Route("/api/runs/{run_id}", self.run),
                Route("/api/runs/{run_id}/events", self.events),
                Route("/api/threads/{thread_id}/messages", self.messages),
                WebSocketRoute("/ws", self.socket),
            ]
        return Starlette(routes=routes)


@contextlib.asynccontextmanager
async def listening(app: Starlette) -> AsyncIterator[str]:
    """``app`` behind a real socket on loopback; yields its URL."""
    listener = loopback_listener()
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        async with asyncio.timeout(unit(10)):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event to wait on
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        listener.close()


async def walk(stand_in: StandIn, identities: Identities | None = None) -> Report:
    async with listening(stand_in.app()) as url:
        return await Walk(Target(url, url, unit(5)), identities or Identities()).run()


def verdicts(report: Report) -> dict[str, tuple[str, str]]:
    return {
        step.name: (step.status.value, step.got or step.detail)
        for step in report.steps
        if step.status is not Status.OK
    }


async def test_a_faithful_stand_in_passes_every_step() -> None:
    report = await walk(StandIn())
    assert verdicts(report) == {}
    assert report.outcome is Outcome.PASSED


async def test_the_same_users_other_runs_streaming_meanwhile_are_passed_over() -> None:
    # Every event comes twice, once under another run id: as if the account had another tab.
    report = await walk(StandIn("crowd"))
    assert verdicts(report) == {}
    assert report.step("seq").detail.startswith("seq 1..10, no gap")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("fault", "step", "got"),
    [
        ("lose", "cut_and_resume", "seq 5 lost"),
        ("repeat", "cut_and_resume", "seq 3 again (repeated)"),
        ("orphan", "events", "seq 4 tool_executing of 'reporting' (parent_agent null)"),
        ("text", "streamed_text", "30 characters, differing from character 30: '' where the answer has ' (and more)'"),
        ("stored", "streamed_text", "a stored reply of 31 characters"),
        ("last_seq", "seq", "status completed, last_seq 9"),
        ("not_ready", "ready", "503 unavailable: database database unreachable (OSError)"),
        ("leak", "isolation", "200 application/json: {\"thread_id\":"),
        ("ws_refused", "websocket", "403: {\"detail\":\"origin not allowed\",\"code\":\"forbidden_origin\"}"),
        ("ready_page", "ready", "answers, but not as runwire: GET /ready gave 200 text/html: <!doctype html><title>Ready?</title>"),
        ("mute", "websocket", "the socket closed (1000"),
        ("wrong_user", "websocket", "connection_established for usr_someone_else"),
        ("reload", "cut_and_resume", "error reload_required: the run's events were renumbered"),
        ("unstored", "streamed_text", "not there"),
        ("busy", "message_accepted", "error too_many_runs: you already have 3 runs in progress"),
        ("garbage", "message_accepted", "the frame 'hello'"),
        ("hang_up", "message_accepted", "the socket closed (1011 internal error)"),
        ("short", "cut_and_resume", "seq 2 agent_completed of 'supervisor' (parent_agent null) ended it"),
        ("stop_refused", "stop_agent", "error not_found: no such run"),
        ("ignore_stop", "stop_agent", "completed, and stop_agent got no reply"),
        ("two_answers", "stop_agent", "run_finished, then seq 2 agent_stopped of 'supervisor'"),
    ],
)  # fmt: skip
async def test_each_fault_fails_its_step_and_says_what_came(
    fault: str, step: str, got: str
) -> None:
    report = await walk(StandIn(fault))
    assert report.outcome is (Outcome.UNREACHABLE if fault == "ready_page" else Outcome.FAILED)
    failed = [s for s in report.steps if s.status is Status.FAILED]
    # The first step to fail is the one the fault breaks (a later one may break on it too).
    assert failed[0].name == step, verdicts(report)
    assert failed[0].got is not None and got in failed[0].got, failed[0].got


async def test_runs_that_always_end_before_the_stop_pass_when_the_server_says_so() -> None:
    # The protocol's answer to a stop that comes after its run has ended: run_finished.
    report = await walk(StandIn("finished"))
    assert verdicts(report) == {}
    assert report.step("stop_agent").detail == (  # type: ignore[union-attr]
        "each of 3 runs had ended when stop_agent reached it: run_finished, and its "
        "agent_completed (runs here finish within a round trip)"
    )
    assert report.outcome is Outcome.PASSED


async def test_a_second_user_refused_by_the_sign_up_limit_skips_isolation_and_says_why() -> None:
    report = await walk(StandIn("one_signup"))
    assert verdicts(report) == {
        "isolation": (
            "skipped",
            "no second user: sign-ups are limited here (429 rate_limited: too many sign-ups from "
            "your network address; try again in 120 s)",
        )
    }


async def test_without_sign_ups_given_credentials_walk_and_isolation_is_skipped() -> None:
    stand_in = StandIn("no_signup")
    stand_in.users["ada@example.com"] = ("correct horse", "usr_ada")
    given = Identities(main=Credentials("ada@example.com", "correct horse"))
    report = await walk(stand_in, given)
    assert report.outcome is Outcome.PASSED
    (status, why) = verdicts(report)["isolation"]
    assert status == "skipped" and why.startswith("no second user: sign-up at http://127.0.0.1:")
    assert why.endswith(" answered 404")
    assert report.step("sign_in") is not None
    assert report.step("sign_in").detail == "ada@example.com (given)"  # type: ignore[union-attr]


async def test_auth_served_elsewhere_is_found_with_auth_url() -> None:
    stand_in = StandIn()
    async with (
        listening(stand_in.app(auth=False)) as api,
        listening(stand_in.app(api=False)) as auth,
    ):
        split = await Walk(Target(api, auth, unit(5)), Identities()).run()
        assert split.outcome is Outcome.PASSED, verdicts(split)
        assert split.to_json()["auth_url"] == auth
        alone = await Walk(Target(api, api, unit(5)), Identities()).run()
    assert verdicts(alone)["sign_in"] == ("failed", "404 text/plain: Not Found")
    assert alone.step("sign_in").expected == (  # type: ignore[union-attr]
        "201 from POST /auth/register (no --email given)"
    )


@contextlib.asynccontextmanager
async def tcp_server(answer: bytes | None) -> AsyncIterator[str]:
    """A TCP port on loopback that sends ``answer`` and hangs up, or (None) never says a word."""

    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        if answer is None:
            await reader.read()  # until the client gives up
        else:
            writer.write(answer)
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        # Each connection ends once the client has hung up.
        await asyncio.wait_for(asyncio.gather(*handlers), unit(5))


@pytest.mark.parametrize(
    ("answer", "scheme", "said"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "http", "cannot be reached: no HTTP answer ("),
        (None, "http", "cannot be reached: no answer within "),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "https", "cannot be reached: TLS failed ("),
    ],
)
async def test_a_port_that_does_not_speak_http_is_unreachable_within_the_timeout(
    answer: bytes | None, scheme: str, said: str
) -> None:
    async with tcp_server(answer) as plain:
        url = plain.replace("http://", f"{scheme}://")
        report = await Walk(Target(url, url, unit(0.5)), Identities()).run()
    assert report.outcome is Outcome.UNREACHABLE
    assert report.unreachable is not None and report.unreachable.startswith(f"{url} {said}")
    assert [s.status for s in report.steps] == [Status.FAILED] + [Status.SKIPPED] * 12


async def test_a_redirect_is_named_with_where_it_points() -> None:
    report = await walk(StandIn("redirect"))
    assert report.outcome is Outcome.UNREACHABLE
    assert report.unreachable is not None
    assert report.unreachable.endswith(
        "answers, but not as runwire: GET /health gave 301 redirect to https://chat.example.com/health"
    )
