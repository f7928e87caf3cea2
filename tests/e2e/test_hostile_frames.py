"""Hostile frames over a real socket: each gets its documented error, and nothing else changes.

A few hundred generated frames (malformed JSON, JSON that is not an object, missing and
mistyped fields, unknown types, binary frames, lone surrogates, deep nesting, huge numbers,
resumes from positions a run never had, and the ids of another user's run and thread) go to the
real server on one authenticated connection. Each frame is built to break exactly one rule, so its code is known in advance
(docs/protocol.md, "Error codes"). The error echoes ``request_id`` exactly when the frame had a
readable one; the socket stays open and answers ``ping``; no thread, message or run of either
user changes; the server stays healthy and logs no traceback.
"""

from __future__ import annotations

import dataclasses
import json
import random
import string
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import BASE_ENV, ServerProcess
from tests.e2e.wire import Session
from tests.timing import unit

SEED = 9  # fixed: a failure names its frame, and the same frames come back on the next run
FRAMES = 300
KNOWN_TYPES = ("user_message", "stop_agent", "resume", "get_thread_history", "ping")
KNOWN_FIELDS = (
    "type",
    "request_id",
    "content",
    "thread_id",
    "client_message_id",
    "policy",
    "run_id",
    "after_seq",
    "epoch",
)


@dataclasses.dataclass(frozen=True)
class Hostile:
    raw: str | bytes
    code: str
    request_id: str | None  # what the error must echo; None: no request_id in the reply
    why: str
    reason: str | None = None  # of a reload_required refusal


def dumps(body: Any) -> str:
    # ensure_ascii: lone surrogates travel as "\udc00" escapes inside valid UTF-8
    return json.dumps(body, allow_nan=True)


class Forge:
    """Frames that each break one rule, from a seeded generator."""

    def __init__(
        self,
        rng: random.Random,
        own_run: tuple[str, int],
        foreign_run: str,
        foreign_thread: str,
    ) -> None:
        self.rng = rng
        self.own_run, self.own_last_seq = own_run
        self.foreign_run = foreign_run
        self.foreign_thread = foreign_thread

    # -- parts --

    def text(self, low: int = 0, high: int = 12) -> str:
        alphabet = string.printable + "é漢字🙂\u00a0\u2028\x00\x7f"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(low, high)))

    def junk_value(self, depth: int = 0) -> Any:
        pick = self.rng.randrange(9 if depth < 3 else 6)
        if pick == 0:
            return None
        if pick == 1:
            return self.rng.choice([True, False])
        if pick == 2:
            return self.rng.choice([0, -1, 2**31, 2**63, -(2**63), 10**30, 10**300, 1.5])
        if pick == 3:
            return self.rng.choice([float("nan"), float("inf"), float("-inf"), 1e308])
        if pick == 4:
            return self.text()
        if pick == 5:
            return self.rng.choice(["\ud800", "a\udfffb", "x" * 101, "", "   "])
        if pick == 6:
            return [self.junk_value(depth + 1) for _ in range(self.rng.randint(0, 3))]
        if pick == 7:
            return {self.text(1, 6): self.junk_value(depth + 1) for _ in range(3)}
        deep: list[Any] = []
        for _ in range(50):
            deep = [deep]
        return deep

    def extras(self) -> dict[str, Any]:
        """Unknown fields, which the server ignores, with hostile values."""
        names = [self.text(1, 8) for _ in range(self.rng.randint(0, 3))]
        return {n: self.junk_value() for n in names if n not in KNOWN_FIELDS}

    def bad_string(self, max_chars: int = 100) -> Any:
        """A value a string field refuses with invalid_field."""
        return self.rng.choice(
            [
                5,
                1.5,
                True,
                False,
                [],
                ["x"],
                {"a": 1},
                "",
                "x" * (max_chars + 1),
                "\udc00",
                "a\ud800",
                "a\x00b",  # NUL: no database backend can keep it
            ]
        )

    def unknown_id(self, prefix: str) -> str:
        return self.rng.choice(
            [
                prefix + "_" + "".join(self.rng.choice("0123456789abcdef") for _ in range(32)),
                prefix + "_' OR '1'='1",
                "\x7f\u2028",
                "é" * 100,
                "🙂",
                "%",
            ]
        )

    def request_id(self) -> str | None:
        if self.rng.random() < 0.4:
            return None
        return self.rng.choice(
            [
                "r" + str(self.rng.randrange(10**6)),
                "x" * 100,
                "é🙂 " + self.text(0, 10).replace("\x00", ""),  # NUL: see bad_string
                '"quoted"\\',
            ]
        )

    # -- frames --

    def frame(self) -> Hostile:
        family = self.rng.choice(
            [
                self.not_json,
                self.not_an_object,
                self.no_type,
                self.type_not_a_string,
                self.unknown_type,
                self.bad_request_id,
                self.bad_user_message,
                self.bad_id_field,
                self.bad_after_seq,
                self.refused_position,
                self.foreign_or_unknown_id,
            ]
        )
        hostile = family()
        if isinstance(hostile.raw, str) and self.rng.random() < 0.3:
            # The same as a binary frame. A frame that fails to parse then echoes no request_id
            # (only a JSON text object is searched for one); a later failure still does.
            parsed_ok = hostile.code in ("not_found", "reload_required")
            return Hostile(
                hostile.raw.encode(),
                hostile.code,
                hostile.request_id if parsed_ok else None,
                hostile.why + " (binary)",
                hostile.reason,
            )
        return hostile

    def with_rid(self, body: dict[str, Any], code: str, why: str) -> Hostile:
        rid = self.request_id()
        if rid is not None:
            body["request_id"] = rid
        body = {**self.extras(), **body} if self.rng.random() < 0.5 else body
        return Hostile(dumps(body), code, rid, why)

    def not_json(self) -> Hostile:
        valid = dumps({"type": "ping", "request_id": "r1", **self.extras()})
        raw: str | bytes = self.rng.choice(
            [
                valid[: self.rng.randrange(len(valid))],  # cut short: never valid JSON
                "{not json",
                "",
                "{'type': 'ping'}",
                '{"type": ping}',
                '{"type":"ping",}',
                "\ufeff" + valid,
                "ping",
                '{"type":"ping","x":' + "[" * 3000 + "]" * 3000 + "}",  # too deep to read
                "[" * 20_000,
            ]
        )
        if self.rng.random() < 0.3:
            # Binary and not UTF-8: an invalid byte somewhere in it.
            data = valid.encode()
            at = self.rng.randrange(len(data) + 1)
            raw = data[:at] + self.rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80"]) + data[at:]
        return Hostile(raw, "bad_json", None, "not JSON")

    def not_an_object(self) -> Hostile:
        raw = self.rng.choice(
            [
                "[]",
                '[{"type":"ping"}]',
                "null",
                "true",
                "0",
                "-1e999",
                "NaN",
                "Infinity",
                str(10**300),
                '"ping"',
                dumps([self.junk_value() for _ in range(3)]),
            ]
        )
        return Hostile(raw, "bad_frame", None, "JSON but not an object")

    def no_type(self) -> Hostile:
        body: dict[str, Any] = {"content": "hi"} if self.rng.random() < 0.5 else {}
        if self.rng.random() < 0.5:
            body["type"] = None
        return self.with_rid(body, "missing_field", "no type")

    def type_not_a_string(self) -> Hostile:
        kind = self.rng.choice([5, 1.5, True, ["ping"], {"type": "ping"}, float("nan")])
        return self.with_rid({"type": kind}, "invalid_field", "type not a string")

    def unknown_type(self) -> Hostile:
        kind = self.rng.choice(
            [
                "PING",
                " ping",
                "ping ",
                "user_message\x00",
                "\udc00",
                "resume\ud800",
                "🙂",
                "",
                "x" * 5000,
                self.text(1, 20),
            ]
        )
        if kind in KNOWN_TYPES:
            kind = kind + "!"
        return self.with_rid({"type": kind}, "unknown_type", "unknown type")

    def bad_request_id(self) -> Hostile:
        body = {"type": self.rng.choice(KNOWN_TYPES), "request_id": self.bad_string()}
        if body["type"] == "user_message":
            body["content"] = "hi"
        body = {**self.extras(), **body}
        return Hostile(dumps(body), "invalid_field", None, "bad request_id")

    def bad_user_message(self) -> Hostile:
        body: dict[str, Any] = {"type": "user_message", "content": "Where can we cut costs?"}
        broken = self.rng.choice(["content", "thread_id", "client_message_id", "policy"])
        code = "invalid_field"
        if broken == "content":
            pick = self.rng.randrange(4)
            if pick == 0:
                code = "missing_field"
                if self.rng.random() < 0.5:
                    del body["content"]
                else:
                    body["content"] = self.rng.choice([None, "", " ", "\t\n", "\u3000", "\r"])
            elif pick == 1:
                body["content"] = self.rng.choice([5, 1.5, True, ["hi"], {"text": "hi"}])
            elif pick == 2:
                body["content"] = "hi \udfff"
            else:
                body["content"] = "x" * 32_001
        elif broken == "policy":
            body["policy"] = self.rng.choice(["ENQUEUE", "shove", "", 3, ["reject"], True])
        else:
            body[broken] = self.bad_string()
        return self.with_rid(body, code, f"user_message with a bad {broken}")

    def bad_id_field(self) -> Hostile:
        kind, field = self.rng.choice(
            [
                ("stop_agent", "run_id"),
                ("resume", "run_id"),
                ("resume", "epoch"),
                ("get_thread_history", "thread_id"),
            ]
        )
        body: dict[str, Any] = {"type": kind}
        pick = self.rng.randrange(3)
        if field == "epoch":
            body["run_id"] = self.own_run  # epoch is optional: only a bad value is refused
            pick = max(pick, 1)
        if pick == 0:
            code = "missing_field"  # left out, or null, which is the same
            if self.rng.random() < 0.5:
                body[field] = None
        else:
            code = "invalid_field"
            body[field] = self.bad_string()
        return self.with_rid(body, code, f"{kind} with a bad {field}")

    def bad_after_seq(self) -> Hostile:
        # Checked before the run is looked up: another user's run gets invalid_field too.
        too_large = [2**31, 2**63, 10**30]  # past the largest seq a run can have
        after = self.rng.choice(
            [-1, -(2**63), *too_large, 1.5, 1e300, "3", True, False, None, [], {}, "<literal>"]
        )
        run = self.own_run if self.rng.random() < 0.7 else self.foreign_run
        body = {"type": "resume", "run_id": run, "after_seq": after}
        hostile = self.with_rid(body, "invalid_field", f"after_seq {after!r}")
        if after == "<literal>":
            literal = self.rng.choice(["NaN", "Infinity", "-Infinity", "1e400", "-0.0"])
            raw = str(hostile.raw).replace('"<literal>"', literal)
            return Hostile(raw, "invalid_field", hostile.request_id, f"after_seq {literal}")
        return hostile

    def refused_position(self) -> Hostile:
        """A resume of its own ended run from a position it cannot be served from whole."""
        body: dict[str, Any] = {"type": "resume", "run_id": self.own_run}
        if self.rng.random() < 0.6:
            after = self.rng.choice([self.own_last_seq + 1, 2**31 - 1])  # the largest seq
            body["after_seq"] = after
            hostile = self.with_rid(body, "reload_required", f"resume after {after}")
            return dataclasses.replace(hostile, reason="position_unknown")
        body["after_seq"] = self.rng.randint(0, self.own_last_seq)
        body["epoch"] = self.rng.choice(["0badc0de", "é", "x" * 100])
        hostile = self.with_rid(body, "reload_required", "resume under another epoch")
        return dataclasses.replace(hostile, reason="epoch_changed")

    def foreign_or_unknown_id(self) -> Hostile:
        foreign = self.rng.random() < 0.5
        kind = self.rng.choice(["stop_agent", "resume", "get_thread_history", "user_message"])
        if kind in ("stop_agent", "resume"):
            body: dict[str, Any] = {
                "type": kind,
                "run_id": self.foreign_run if foreign else self.unknown_id("run"),
            }
            if kind == "resume":
                body["after_seq"] = self.rng.choice([0, 3, 2**31 - 1])
        else:
            body = {
                "type": kind,
                "thread_id": self.foreign_thread if foreign else self.unknown_id("thr"),
            }
            if kind == "user_message":
                body["content"] = "Where can we cut costs?"
                body["policy"] = self.rng.choice(["enqueue", "reject", "interrupt"])
        whose = "another user's" if foreign else "an unknown"
        return self.with_rid(body, "not_found", f"{kind} for {whose} id")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server that lets one connection send frames as fast as it likes: the per-connection
    rate limit (tested in test_limits.py) would otherwise answer most of them rate_limited."""
    env = {
        **BASE_ENV,
        "RUNWIRE_WS_MESSAGES_PER_SECOND": "100000",
        "RUNWIRE_WS_MESSAGE_BURST": "1000",
    }
    proc = ServerProcess(tmp_path_factory.mktemp("hostile"), env)
    yield proc
    proc.stop()


async def test_hostile_frames_get_documented_errors_and_change_nothing(
    server: ServerProcess, sessions: Callable[[str], Awaitable[Session]]
) -> None:
    victim = await sessions(server.url)
    theirs = await victim.connect()
    ack = await theirs.ask("Where can we cut our LLM costs?")
    their_events = await theirs.run_to_end(ack["run_id"])
    await theirs.close()
    their_messages = (await victim.get(f"/api/threads/{ack['thread_id']}/messages")).json()

    attacker = await sessions(server.url)
    sock = await attacker.connect()
    own = await sock.ask("hi")  # a run of its own, ended: resumes of it are judged, not refused
    own_events = await sock.run_to_end(own["run_id"])
    own_threads = (await attacker.get("/api/threads")).json()
    own_messages = (await attacker.get(f"/api/threads/{own['thread_id']}/messages")).json()
    log_before = len(server.log())
    forge = Forge(
        random.Random(SEED), (own["run_id"], len(own_events)), ack["run_id"], ack["thread_id"]
    )
    codes: dict[str, int] = {}
    for n in range(FRAMES):
        hostile = forge.frame()
        await sock.ws.send(hostile.raw)
        sent = f"frame {n} ({hostile.why}): {hostile.raw[:200]!r}"
        try:
            reply = await sock.recv(timeout=unit(5))
        except ConnectionClosed as closed:
            raise AssertionError(f"{sent} closed the socket: {closed}") from None
        about = f"{sent} -> {reply}"
        assert reply["type"] == "error" and reply["code"] == hostile.code, about
        assert isinstance(reply["message"], str) and reply["message"], about
        assert reply.get("request_id") == hostile.request_id, about
        fields = {"type", "code", "message", "request_id"}
        if hostile.code == "reload_required":
            fields |= {"run_id", "reason", "epoch"}
            assert reply["run_id"] == forge.own_run and reply["reason"] == hostile.reason, about
        assert set(reply) <= fields, about
        codes[hostile.code] = codes.get(hostile.code, 0) + 1

    # Every family was sent, the socket is still open and answers in order.
    assert set(codes) == {
        "bad_json",
        "bad_frame",
        "missing_field",
        "invalid_field",
        "unknown_type",
        "not_found",
        "reload_required",
    }, codes
    await sock.send(type="ping", request_id="after")
    assert await sock.recv() == {"type": "pong", "request_id": "after"}

    # No frame stored or started anything: both users' threads and runs are as they were.
    assert (await victim.get(f"/api/threads/{ack['thread_id']}/messages")).json() == their_messages
    replayed = (await victim.get(f"/api/runs/{ack['run_id']}/events")).json()["events"]
    assert replayed == their_events
    assert (await attacker.get("/api/threads")).json() == own_threads
    mine = (await attacker.get(f"/api/threads/{own['thread_id']}/messages")).json()
    assert mine == own_messages

    # The server is healthy and did not take any frame for an internal failure.
    assert server.proc.poll() is None
    async with httpx.AsyncClient(base_url=server.url, timeout=unit(5)) as http:
        assert (await http.get("/health")).json() == {"status": "ok"}
    assert "Traceback" not in server.log()[log_before:]
    await sock.close()
