"""One walk of the golden path, as a client of any deployment (docs/operating.md, "The
golden-path probe: runwire check").

The steps themselves: what each sends and what it checks of the answer. Their order and
prerequisites, and how a step's end becomes its result, are :mod:`runwire.probe.steps`; signing
in, :mod:`runwire.probe.sessions`; the socket's exchanges, :mod:`runwire.probe.exchanges`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from runwire.errors import CheckFailed, TargetUnreachable
from runwire.probe import exchanges
from runwire.probe.client import (
    Api,
    Channel,
    Target,
    answer,
    as_object,
    body_of,
    describe_response,
    said,
)
from runwire.probe.report import Report
from runwire.probe.sessions import Credentials, Identities, Session, Sessions
from runwire.probe.steps import STEPS, Skip, Step, StepOutcome, go_through
from runwire.probe.transcript import (
    check_nesting,
    check_resumed,
    check_sequence,
    check_text,
    describe,
    in_seq_order,
    is_terminal,
)

__all__ = ["Walk"]

Frame = dict[str, Any]

QUESTION = "Where can we cut our LLM costs?"
# The first socket is cut once it has this many events of the run: early, so that on a
# deployment whose runs take a while the resume meets the run still going.
CUT_AFTER = 3
# A stop that finds its run ended (run_finished) is tried on a new run: this many runs in all.
STOP_ATTEMPTS = 3


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
        self._sessions: Sessions | None = None
        self._channels: list[Channel] = []
        self._main: Session | None = None
        self._ticket = ""
        self._channel: Channel | None = None
        self._thread_id = ""
        self._run_id = ""
        self._events: list[Frame] = []
        self._steps: dict[str, Step] = {
            "health": self._health,
            "ready": self._ready,
            "sign_in": self._sign_in,
            "sample_data": self._sample_data,
            "ticket": self._new_ticket_step,
            "websocket": self._websocket,
            "message_accepted": self._message_accepted,
            "cut_and_resume": self._cut_and_resume,
            "events": self._event_order,
            "seq": self._seq,
            "streamed_text": self._streamed_text,
            "stop_agent": self._stop_agent,
            "isolation": self._isolation,
        }
        assert tuple(self._steps) == STEPS

    async def run(self) -> Report:
        """Walk every step once; never raises for anything the target does."""
        report = Report(self.target.url, self.target.auth_url)
        async with Api.open(self.target) as api:
            self._sessions = Sessions(api, self.identities)
            try:
                await go_through(report, list(self._steps.items()), self._clock)
            finally:
                await self._leave()
        return report

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
            self._main = await self.sessions.bearer(self.identities.token, "--token")
            return f"{self._main.email} (the user of the token given with --token)"
        if self.identities.test_token_key is not None and self.identities.main is None:
            self._main = await self.sessions.test_user("check-main")
            return f"{self._main.email} (a test user, from POST /auth/test-token)"
        credentials = self.identities.main
        if credentials is None:
            credentials = await self.sessions.register("POST /auth/register (no --email given)")
            self.identities.main = credentials
            how = "signed up now"
        else:
            how = "signed up by an earlier walk" if credentials.registered else "given"
        self._main = await self.sessions.login(credentials)
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
        accepted = await exchanges.accepted(channel, request_id, self.target.timeout)
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
        state = as_object(run).get("status")
        channel = await self._open_channel(str((await self._new_ticket())["ticket"]))
        request_id = f"check-resume-{secrets.token_hex(4)}"
        await channel.send(
            type="resume",
            run_id=run_id,
            after_seq=cut_at,
            epoch=before[-1].get("epoch"),
            request_id=request_id,
        )
        events = await exchanges.resumed(channel, request_id, run_id, cut_at)
        self._events = before + in_seq_order(events)
        seen = check_resumed(cut_at, events)
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
        run = as_object(body.get("run"))
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
        listed = [as_object(m) for m in messages] if isinstance(messages, list) else []
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
            stopped = await exchanges.stop_once(
                channel, attempt, self._thread_id, self.target.timeout
            )
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
            other = await self.sessions.bearer(self.identities.other_token, "--other-token")
            if other.user_id == self.main.user_id:
                raise CheckFailed(
                    "a second user from --other-token", f"the same user as --token ({other.email})"
                )
            return await self._not_found_for(other)
        if self.identities.token is not None:
            return Skip("no second user: give --other-token (a token of another user)")
        if self.identities.test_token_key is not None and self.identities.other is None:
            other = await self.sessions.test_user("check-other")
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
        return await self._not_found_for(await self.sessions.login(self.identities.other))

    async def _not_found_for(self, other: Session) -> StepOutcome:
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
    def sessions(self) -> Sessions:
        assert self._sessions is not None
        return self._sessions

    @property
    def api(self) -> Api:
        return self.sessions.api

    @property
    def main(self) -> Session:
        assert self._main is not None
        return self._main

    @property
    def channel(self) -> Channel:
        assert self._channel is not None
        return self._channel

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

    async def _leave(self) -> None:
        """Close every socket and end every session the walk opened (best effort: the walk's
        result is already known)."""
        for channel in self._channels:
            await channel.close()
        await self.sessions.end()
