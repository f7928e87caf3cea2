"""One walk of the golden path, as a client of any deployment (docs/operating.md, "The
golden-path probe: runwire check").

The steps run in order, each timed; a step whose prerequisite did not pass is skipped and says
which. A step ends ``ok`` with a line of what it saw, ``skipped`` with why it could not be tried
here, or ``failed`` with what it expected and what came instead. Whatever the other end sends, a
step fails; the walk itself never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from runwire.errors import CheckFailed, TargetUnreachable
from runwire.probe.client import Api, Channel, Target, answer, body_of, describe_response, said
from runwire.probe.report import Report, Status, StepResult
from runwire.probe.transcript import (
    check_nesting,
    check_resumed,
    check_sequence,
    check_text,
    describe,
    in_seq_order,
    is_terminal,
)

__all__ = ["STEPS", "Credentials", "Identities", "Skip", "Walk"]

Frame = dict[str, Any]

QUESTION = "Where can we cut our LLM costs?"
STOP_QUESTION = "Which model costs us the most?"
# The first socket is cut once it has this many events of the run: early, so that on a
# deployment whose runs take a while the resume meets the run still going.
CUT_AFTER = 3
# A stop that finds its run ended (run_finished) is tried on a new run: this many runs in all.
STOP_ATTEMPTS = 3
# The step names, in order; the metrics' ``step`` label and the JSON's ``step`` take these values.
STEPS = (
    "health",
    "ready",
    "sign_in",
    "sample_data",
    "ticket",
    "websocket",
    "message_accepted",
    "cut_and_resume",
    "events",
    "seq",
    "streamed_text",
    "stop_agent",
    "isolation",
)


@dataclass(frozen=True)
class Credentials:
    """An e-mail and password to sign in with; ``registered`` when the probe signed it up."""

    email: str
    password: str = field(repr=False)
    registered: bool = False

    @classmethod
    def fresh(cls) -> Credentials:
        # example.com is reserved for examples and accepts no mail; e-mail validation refuses
        # special-use names such as example.invalid.
        return cls(
            f"check-{secrets.token_hex(6)}@example.com", secrets.token_urlsafe(24), registered=True
        )


@dataclass
class Identities:
    """Who a walk signs in as: ``main`` walks the path, ``other`` must not see main's thread.

    Either may be given; one that is not is registered by the first walk that needs it and kept
    here, so a monitor signs up once rather than at every walk. With ``test_token_key`` (a
    staging deployment's ``RUNWIRE_TEST_TOKEN_KEY``) each walk gets new sessions of two test
    users from ``POST /auth/test-token`` instead, and needs no sign-up."""

    main: Credentials | None = None
    other: Credentials | None = None
    test_token_key: str | None = field(default=None, repr=False)
    # Access tokens got elsewhere (a chat node that trusts an outside OpenID Connect issuer has
    # no /auth/*): the walk uses them as they are, and ends no session of theirs.
    token: str | None = field(default=None, repr=False)
    other_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Skip:
    """A step's result when it could not be tried here (``reason`` says why)."""

    reason: str


@dataclass(frozen=True)
class _Session:
    email: str
    user_id: str
    token: str = field(repr=False)


StepOutcome = str | Skip


class Walk:
    """One walk of the golden path against ``target``; :meth:`run` gives its :class:`Report`."""

    def __init__(
        self,
        target: Target,
        identities: Identities,
        *,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.target = target
        self.identities = identities
        self._clock = clock
        self._api: Api | None = None
        self._sessions: list[_Session] = []
        self._channels: list[Channel] = []
        self._main: _Session | None = None
        self._ticket = ""
        self._channel: Channel | None = None
        self._thread_id = ""
        self._run_id = ""
        self._events: list[Frame] = []
        self._steps: list[tuple[str, Callable[[], Awaitable[StepOutcome]], tuple[str, ...]]] = [
            ("health", self._health, ()),
            ("ready", self._ready, ("health",)),
            ("sign_in", self._sign_in, ("health",)),
            ("sample_data", self._sample_data, ("sign_in",)),
            ("ticket", self._new_ticket_step, ("sign_in",)),
            ("websocket", self._websocket, ("ticket",)),
            ("message_accepted", self._message_accepted, ("websocket",)),
            ("cut_and_resume", self._cut_and_resume, ("message_accepted",)),
            ("events", self._event_order, ("cut_and_resume",)),
            ("seq", self._seq, ("cut_and_resume",)),
            ("streamed_text", self._streamed_text, ("cut_and_resume",)),
            ("stop_agent", self._stop_agent, ("websocket",)),
            ("isolation", self._isolation, ("message_accepted",)),
        ]
        assert tuple(name for name, _, _ in self._steps) == STEPS

    async def run(self) -> Report:
        """Walk every step once; never raises for anything the target does."""
        report = Report(self.target.url, self.target.auth_url)
        # Per step that did not pass, the step at the root of it (itself, or what it needed).
        cause: dict[str, StepResult] = {}
        async with Api.open(self.target) as api:
            self._api = api
            try:
                for name, step, needs in self._steps:
                    blocked = [cause[need] for need in needs if need in cause]
                    if report.unreachable is not None:
                        result = StepResult.not_run(name, "the target could not be checked")
                    elif blocked:
                        how = "failed" if blocked[0].status is Status.FAILED else "was skipped"
                        result = StepResult.not_run(name, f"{blocked[0].name} {how}")
                    else:
                        result = await self._timed(report, name, step)
                    if result.status is not Status.OK:
                        cause[name] = blocked[0] if blocked else result
                    report.steps.append(result)
            finally:
                await self._leave()
        return report

    async def _timed(
        self, report: Report, name: str, step: Callable[[], Awaitable[StepOutcome]]
    ) -> StepResult:
        started = self._clock()
        try:
            outcome = await step()
        except TargetUnreachable as exc:
            if name in ("health", "ready"):
                report.unreachable = exc.message
            return StepResult(
                name, Status.FAILED, self._clock() - started, expected=exc.expected, got=exc.got
            )
        except CheckFailed as exc:
            return StepResult(
                name, Status.FAILED, self._clock() - started, expected=exc.expected, got=exc.got
            )
        except Exception as exc:
            # A probe reports what broke; an answer of a shape nobody foresaw is a failed step.
            got = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return StepResult(
                name, Status.FAILED, self._clock() - started, expected="the step to finish", got=got
            )
        seconds = self._clock() - started
        if isinstance(outcome, Skip):
            return StepResult(name, Status.SKIPPED, seconds, outcome.reason)
        return StepResult(name, Status.OK, seconds, outcome)

    # -- the steps -------------------------------------------------------------------------------

    async def _health(self) -> StepOutcome:
        response = await self.api.call("GET", "/health")
        body = body_of(response)
        if response.status_code != 200 or body is None or body.get("status") != "ok":
            raise TargetUnreachable(
                f"{self.target.url} answers, but not as runwire: "
                f"GET /health gave {describe_response(response)}",
                expected='200 {"status": "ok"} from GET /health',
            )
        return '200 {"status": "ok"}'

    async def _ready(self) -> StepOutcome:
        response = await self.api.call("GET", "/ready")
        body = body_of(response)
        state = None if body is None else body.get("status")
        if body is None or state not in ("ready", "unavailable"):
            raise TargetUnreachable(
                f"{self.target.url} answers, but not as runwire: "
                f"GET /ready gave {describe_response(response)}",
                expected='{"status": "ready"} from GET /ready',
            )
        checks = body.get("checks")
        shown = (
            ", ".join(f"{name} {value}" for name, value in checks.items())
            if isinstance(checks, dict)
            else "no checks listed"
        )
        if response.status_code != 200 or state != "ready":
            raise CheckFailed(
                '200 {"status": "ready"} from GET /ready',
                f"{response.status_code} {state}: {shown}",
            )
        return shown

    async def _sign_in(self) -> StepOutcome:
        if self.identities.token is not None:
            self._main = await self._bearer_session(self.identities.token, "--token")
            return f"{self._main.email} (the user of the token given with --token)"
        if self.identities.test_token_key is not None and self.identities.main is None:
            self._main = await self._test_session("check-main")
            return f"{self._main.email} (a test user, from POST /auth/test-token)"
        credentials = self.identities.main
        if credentials is None:
            credentials = await self._register("POST /auth/register (no --email given)")
            self.identities.main = credentials
            how = "signed up now"
        else:
            how = "signed up by an earlier walk" if credentials.registered else "given"
        self._main = await self._login(credentials)
        return f"{credentials.email} ({how})"

    async def _sample_data(self) -> StepOutcome:
        token = self.main.token
        summary = answer(
            await self.api.call("GET", "/api/usage/summary", token=token),
            200,
            "GET /api/usage/summary",
        )
        records = summary.get("records")
        if not isinstance(records, int):
            raise CheckFailed('{"records": <count>} from GET /api/usage/summary', str(summary))
        if records > 0:
            return f"the user has {records:,} usage records"
        loaded = answer(
            await self.api.call("POST", "/api/usage/sample", token=token),
            201,
            "POST /api/usage/sample",
        )
        imported = loaded.get("imported")
        if not isinstance(imported, int) or imported <= 0:
            raise CheckFailed("sample records imported", str(loaded))
        return f"the user had none; loaded {imported:,} sample records"

    async def _new_ticket_step(self) -> StepOutcome:
        body = await self._new_ticket()
        self._ticket = str(body["ticket"])
        return f"single use, expires in {body.get('expires_in')} s"

    async def _websocket(self) -> StepOutcome:
        self._channel = await self._open_channel(self._ticket)
        return f"connection_established for {self.main.user_id}"

    async def _message_accepted(self) -> StepOutcome:
        channel = self.channel
        request_id = f"check-{secrets.token_hex(4)}"
        await channel.send(
            type="user_message",
            content=QUESTION,
            client_message_id=f"check-{secrets.token_hex(8)}",
            request_id=request_id,
        )
        accepted = await self._accepted(channel, request_id)
        self._thread_id, self._run_id = accepted["thread_id"], accepted["run_id"]
        return f"run {self._run_id} in thread {self._thread_id}"

    async def _cut_and_resume(self) -> StepOutcome:
        run_id = self._run_id
        before: list[Frame] = []
        while len(before) < CUT_AFTER:
            frame = await self.channel.recv()
            if frame.get("run_id") != run_id or "seq" not in frame:
                continue
            before.append(frame)
            if is_terminal(frame):
                raise CheckFailed(
                    f"more than {CUT_AFTER} events, to cut the run in the middle",
                    f"{describe(frame)} ended it",
                )
        await self.channel.close()  # the cut: events sent meanwhile are lost to this socket
        cut_at = before[-1].get("seq")
        if not isinstance(cut_at, int):
            raise CheckFailed("an integer seq", describe(before[-1]))
        run = answer(
            await self.api.call("GET", f"/api/runs/{run_id}", token=self.main.token),
            200,
            "GET /api/runs/{run_id}",
        ).get("run")
        state = _object(run).get("status")
        channel = await self._open_channel(str((await self._new_ticket())["ticket"]))
        request_id = f"check-resume-{secrets.token_hex(4)}"
        await channel.send(
            type="resume",
            run_id=run_id,
            after_seq=cut_at,
            epoch=before[-1].get("epoch"),
            request_id=request_id,
        )
        resumed = await self._resumed(channel, request_id, cut_at)
        self._events = before + in_seq_order(resumed)
        seen = check_resumed(cut_at, resumed)
        return f"cut after seq {cut_at} (the run was {state}); resumed on a new socket: {seen}"

    async def _event_order(self) -> StepOutcome:
        return check_nesting(self._events, completed=True)

    async def _seq(self) -> StepOutcome:
        seen = check_sequence(self._events)
        body = answer(
            await self.api.call("GET", f"/api/runs/{self._run_id}", token=self.main.token),
            200,
            "GET /api/runs/{run_id}",
        )
        run = _object(body.get("run"))
        last = len(self._events)
        if run.get("status") != "completed" or run.get("last_seq") != last:
            raise CheckFailed(
                f"GET /api/runs/{{run_id}}: status completed, last_seq {last}",
                f"status {run.get('status')}, last_seq {run.get('last_seq')}",
            )
        return f"{seen}; GET /api/runs: completed, last_seq {last}"

    async def _streamed_text(self) -> StepOutcome:
        text, chunks = check_text(self._events)
        message_id = self._events[-1].get("message_id")
        body = answer(
            await self.api.call(
                "GET", f"/api/threads/{self._thread_id}/messages", token=self.main.token
            ),
            200,
            "GET /api/threads/{thread_id}/messages",
        )
        messages = body.get("messages")
        listed = [_object(m) for m in messages] if isinstance(messages, list) else []
        stored = next((m for m in listed if m.get("id") == message_id), None)
        if stored is None:
            raise CheckFailed(f"the reply {message_id} among the thread's messages", "not there")
        if stored.get("content") != text:
            content = stored.get("content")
            size = len(content) if isinstance(content, str) else content
            raise CheckFailed(
                f"the stored reply equal to the streamed text ({len(text)} characters)",
                f"a stored reply of {size} characters",
            )
        return (
            f"{len(text):,} characters in {chunks} text_delta, "
            "equal to the final answer and to the stored reply"
        )

    async def _stop_agent(self) -> StepOutcome:
        channel = await self._open_channel(str((await self._new_ticket())["ticket"]))
        for attempt in range(1, STOP_ATTEMPTS + 1):
            stopped = await self._stop_once(channel, attempt)
            if stopped is not None:
                earlier = "" if attempt == 1 else f" (attempt {attempt}: the runs before had ended)"
                return stopped + earlier
        # The protocol's answer to a stop that comes after its run has ended: correct, and on a
        # server that answers within a round trip the only one a stop sent on accept can get.
        return (
            f"each of {STOP_ATTEMPTS} runs had ended when stop_agent reached it: run_finished, "
            "and its agent_completed (runs here finish within a round trip)"
        )

    async def _isolation(self) -> StepOutcome:
        if self.identities.other_token is not None:
            other = await self._bearer_session(self.identities.other_token, "--other-token")
            if other.user_id == self.main.user_id:
                raise CheckFailed(
                    "a second user from --other-token", f"the same user as --token ({other.email})"
                )
            return await self._not_found_for(other)
        if self.identities.token is not None:
            return Skip("no second user: give --other-token (a token of another user)")
        if self.identities.test_token_key is not None and self.identities.other is None:
            other = await self._test_session("check-other")
            return await self._not_found_for(other)
        if self.identities.other is None:
            credentials = Credentials.fresh()
            response = await self.api.call(
                "POST",
                "/auth/register",
                json_body={"email": credentials.email, "password": credentials.password},
            )
            if response.status_code in (403, 404, 405, 501):
                return Skip(
                    f"no second user: sign-up at {self.target.auth_url} answered "
                    f"{response.status_code}"
                )
            if response.status_code == 429:
                return Skip(f"no second user: sign-ups are limited here ({said(response)})")
            answer(response, 201, "POST /auth/register (a second user)")
            self.identities.other = credentials
        return await self._not_found_for(await self._login(self.identities.other))

    async def _not_found_for(self, other: _Session) -> StepOutcome:
        paths = {
            "thread": f"/api/threads/{self._thread_id}/messages",
            "run": f"/api/runs/{self._run_id}",
            "run's events": f"/api/runs/{self._run_id}/events",
        }
        for what, path in paths.items():
            response = await self.api.call("GET", path, token=other.token)
            body = body_of(response)
            if response.status_code != 404 or body is None or body.get("code") != "not_found":
                raise CheckFailed(
                    f"404 not_found for the first user's {what} (GET {path})",
                    describe_response(response),
                )
        return "a second user got 404 not_found for the thread, the run and its events"

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def api(self) -> Api:
        assert self._api is not None
        return self._api

    @property
    def main(self) -> _Session:
        assert self._main is not None
        return self._main

    @property
    def channel(self) -> Channel:
        assert self._channel is not None
        return self._channel

    async def _register(self, call: str) -> Credentials:
        credentials = Credentials.fresh()
        answer(
            await self.api.call(
                "POST",
                "/auth/register",
                json_body={"email": credentials.email, "password": credentials.password},
            ),
            201,
            call,
        )
        return credentials

    async def _login(self, credentials: Credentials) -> _Session:
        call = "POST /auth/login"
        body = answer(
            await self.api.call(
                "POST",
                "/auth/login",
                json_body={"email": credentials.email, "password": credentials.password},
            ),
            200,
            f"{call} as {credentials.email}",
        )
        return self._session(body, call, credentials.email)

    async def _test_session(self, name: str) -> _Session:
        """A new session of the test user ``name`` (made by the deployment on first use)."""
        call = "POST /auth/test-token"
        key = self.identities.test_token_key
        assert key is not None
        response = await self.api.call(
            "POST",
            "/auth/test-token",
            json_body={"name": name},
            headers={"X-Runwire-Test-Key": key},
        )
        if response.status_code == 404:
            raise CheckFailed(
                f"200 from {call} (--test-token-key given)",
                "404: the deployment serves no test tokens (RUNWIRE_TEST_TOKEN_KEY is not set "
                "there, or it runs in production)",
            )
        body = answer(response, 200, f"{call} for e2e-{name}")
        user = body.get("user")
        email = user.get("email") if isinstance(user, dict) else None
        return self._session(body, call, str(email or f"e2e-{name}"))

    async def _bearer_session(self, token: str, option: str) -> _Session:
        """The user a given access token names (``GET /api/me``); nothing signs it out."""
        call = f"GET /api/me with the {option} token"
        body = answer(await self.api.call("GET", "/api/me", token=token), 200, call)
        found = _object(body.get("user"))
        user_id, email = found.get("id"), found.get("email")
        if not isinstance(user_id, str):
            raise CheckFailed(f"user.id from {call}", f"{sorted(found)}")
        return _Session(email if isinstance(email, str) else f"user {user_id}", user_id, token)

    def _session(self, body: dict[str, Any], call: str, email: str) -> _Session:
        token, user = body.get("access_token"), body.get("user")
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(token, str) or not token or not isinstance(user_id, str):
            raise CheckFailed(f"access_token and user.id from {call}", f"{sorted(body)}")
        session = _Session(email, user_id, token)
        self._sessions.append(session)
        return session

    async def _new_ticket(self) -> dict[str, Any]:
        body = answer(
            await self.api.call("POST", "/api/ws-ticket", token=self.main.token),
            201,
            "POST /api/ws-ticket",
        )
        if not isinstance(body.get("ticket"), str) or not body["ticket"]:
            raise CheckFailed("a ticket from POST /api/ws-ticket", f"{sorted(body)}")
        return body

    async def _open_channel(self, ticket: str) -> Channel:
        channel, first = await Channel.open(self.target, ticket)
        self._channels.append(channel)
        user_id = self.main.user_id
        if first.get("type") != "connection_established" or first.get("user_id") != user_id:
            raise CheckFailed(
                f"connection_established for {user_id}",
                f"{first.get('type')} for {first.get('user_id')}",
            )
        return channel

    async def _reply(self, channel: Channel, request_id: str) -> Frame:
        """The direct reply to the frame sent with ``request_id`` (other frames are passed over:
        the user's other runs, if a person is using the account meanwhile)."""
        try:
            async with asyncio.timeout(self.target.timeout):
                while True:
                    frame = await channel.recv()
                    if frame.get("request_id") == request_id and "seq" not in frame:
                        return frame
        except TimeoutError:
            raise CheckFailed(
                f"a reply to {request_id}", f"none within {self.target.timeout:g} s"
            ) from None

    async def _accepted(self, channel: Channel, request_id: str) -> Frame:
        frame = await self._reply(channel, request_id)
        if frame.get("type") == "error":
            raise CheckFailed(
                "message_accepted", f"error {frame.get('code')}: {frame.get('message')}"
            )
        ids = [frame.get(key) for key in ("thread_id", "message_id", "run_id")]
        if frame.get("type") != "message_accepted" or not all(isinstance(i, str) for i in ids):
            raise CheckFailed("message_accepted with thread_id, message_id, run_id", str(frame))
        return frame

    async def _resumed(self, channel: Channel, request_id: str, after_seq: int) -> list[Frame]:
        """The run's events on a new socket after ``resume``, up to the terminal event.

        Live events may come before replayed ones, the terminal event too. A ``ping`` sent right
        after the ``resume`` is answered once the replay has been sent (frames are handled one at
        a time, in order), so a seq still missing when both the pong and the terminal event are
        in has been lost, not delayed: no wait for it."""
        await channel.send(type="ping", request_id=f"{request_id}-ping")
        resumed: list[Frame] = []
        pong = ended = False
        while not (pong and ended):
            frame = await channel.recv()
            if frame.get("request_id") == f"{request_id}-ping":
                pong = True
            elif frame.get("type") == "error" and frame.get("request_id") == request_id:
                raise CheckFailed(
                    f"the run's events after seq {after_seq}",
                    f"error {frame.get('code')}: {frame.get('message')}",
                )
            elif frame.get("run_id") == self._run_id and "seq" in frame:
                resumed.append(frame)
                ended = ended or is_terminal(frame)
        return resumed

    async def _stop_once(self, channel: Channel, attempt: int) -> str | None:
        """Start a run and stop it at once: a line saying so when it ends stopped; None when
        the server answered that the run had ended (run_finished) and it ended otherwise."""
        request_id = f"check-stop-{attempt}-{secrets.token_hex(4)}"
        # Into the first run's thread when there is one (a conversation goes on); else a new one.
        thread = {"thread_id": self._thread_id} if self._thread_id else {}
        await channel.send(
            type="user_message", content=STOP_QUESTION, request_id=request_id, **thread
        )
        run_id = (await self._accepted(channel, request_id))["run_id"]
        await channel.send(type="stop_agent", run_id=run_id, request_id=f"{request_id}-stop")
        # Frames are handled in order: the pong comes after any reply to stop_agent.
        await channel.send(type="ping", request_id=f"{request_id}-ping")
        events: list[Frame] = []
        finished = pong = False
        while not (pong and events and is_terminal(events[-1])):
            frame = await channel.recv()
            if frame.get("request_id") == f"{request_id}-stop":
                if frame.get("code") != "run_finished":
                    raise CheckFailed(
                        "agent_stopped after stop_agent",
                        f"{frame.get('type')} {frame.get('code')}: {frame.get('message')}",
                    )
                finished = True
            elif frame.get("request_id") == f"{request_id}-ping":
                pong = True
            elif frame.get("run_id") == run_id and "seq" in frame:
                events.append(frame)
        terminal = events[-1]
        stopped = terminal.get("type") == "agent_stopped" and terminal.get("code") == "stopped"
        # Exactly one answer to each stop: agent_stopped, or run_finished for a run that ended
        # otherwise (docs/protocol.md, stop_agent).
        if stopped and not finished:
            check_sequence(events)
            check_nesting(events, completed=False)
            return (
                f"run {run_id} ended with agent_stopped at seq {terminal.get('seq')}, "
                "open agents and tools closed"
            )
        if finished and terminal.get("type") == "agent_completed":
            return None
        expected = 'agent_stopped (code "stopped"), or run_finished for a run that had ended'
        if not finished and terminal.get("type") == "agent_completed":
            raise CheckFailed(expected, f"run {run_id} completed, and stop_agent got no reply")
        raise CheckFailed(
            expected,
            ("run_finished, then " if finished else "")
            + f"{describe(terminal)} code {terminal.get('code')!r}",
        )

    async def _leave(self) -> None:
        """Close every socket and end every session the walk opened (best effort: the walk's
        result is already known)."""
        for channel in self._channels:
            await channel.close()
        for session in self._sessions:
            with contextlib.suppress(CheckFailed):
                await self.api.call("POST", "/auth/logout", token=session.token)


def _object(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a wrong shape then fails the check
    that reads it, with what came)."""
    return value if isinstance(value, dict) else {}
