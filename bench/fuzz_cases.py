"""What the fuzz benchmark sends, drawn by hypothesis: WebSocket frames and HTTP requests.

The strategies of the unit layer's property tests are reused as they are (hostile frames from
tests/unit/test_inbound_fuzz.py, hostile usage lines from tests/unit/test_import_fuzz.py), and
schemathesis draws requests for every operation of the live server's OpenAPI document; added
here is what only a real socket can carry: frames as the wire sees them (opcodes, fragments,
reserved bits, unmasked frames, control frames, oversized frames, frames sent before the
handshake is answered) and protocol messages in any order that name real ids, the caller's own
and another user's, which exist only at run time (:class:`Ref`, filled in as each is sent).

Everything drawn is plain data (picklable): cases are drawn in worker processes, in chunks of a
fixed seed each, so a run draws the same cases again.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from tests.unit.test_import_fuzz import (
    GOOD,
    GOOD_LINE,
    csv_cell,
    hostile_line,
)
from tests.unit.test_import_fuzz import any_text as any_record_text
from tests.unit.test_inbound_fuzz import (
    any_text,
    hostile_frame,
    huge_number,
    json_value,
    valid_command,
)
from tests.unit.test_inbound_fuzz import nested as nested_frame

MAX_FRAME = 64 * 1024  # RUNWIRE_MAX_FRAME_BYTES's default: the server runs with it
MAX_BODY = 16 * 1024  # the cap on JSON bodies (transport/body_limit.py)
TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
WIRE_TYPES = ("user_message", "stop_agent", "resume", "get_thread_history", "ping")


@dataclass(frozen=True)
class Ref:
    """A value known only while the benchmark runs, filled in by the lane that sends it:
    ``own_run`` (a run of the lane's user, often still going), ``done_run`` (one that ended),
    ``own_thread``, ``own_seq`` (a position in ``done_run``), ``own_epoch``, ``foreign_run``,
    ``foreign_thread`` and ``foreign_epoch`` (another user's), ``own_batch``,
    ``foreign_batch``, ``refresh_token`` (of a session made for it)."""

    name: str


@dataclass(frozen=True)
class Json:
    """A frame or body written as JSON when sent (its :class:`Ref` values filled in first)."""

    body: Any
    ascii: bool = True


@dataclass(frozen=True)
class Piece:
    """A slice of a :class:`Json` message once written, as fractions of its length: a
    message sent in fragments."""

    whole: Json
    start: float
    end: float


@dataclass(frozen=True)
class Wire:
    """One WebSocket frame as the client writes it, rule-breaking bits included."""

    opcode: int
    payload: bytes | Json | Piece = b""
    fin: bool = True
    rsv: int = 0
    masked: bool = True
    # A length header larger than the frame sent (only ever past the frame limit, which the
    # server refuses on reading the header: no payload follows).
    claimed: int | None = None


@dataclass(frozen=True)
class FrameCase:
    """Frames sent together; ``early``: with the upgrade request, before its answer."""

    kind: str
    frames: tuple[Wire, ...]
    early: bool = False


@dataclass(frozen=True)
class HttpCase:
    """One request. ``auth``: ``lane`` (the lane's bearer token), ``fresh`` (a session made for
    this request, which it may end), or ``as_drawn`` (whatever the case holds, maybe none)."""

    kind: str
    method: str
    path: str | tuple[str | Ref, ...]  # a tuple is joined after its refs are filled in
    params: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | Json | None = None
    auth: str = "lane"
    chunked: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- drawing many cases from a strategy --


def draw_many(strategy: st.SearchStrategy[Any], count: int, chunk_seed: int) -> list[Any]:
    """Up to ``count`` values of ``strategy`` (hypothesis stops early on a small space), the
    same ones for the same seed."""
    drawn: list[Any] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @seed(chunk_seed)
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


def cases(strategy: st.SearchStrategy[Any], count: int, chunk_seed: int) -> list[Any]:
    """Up to ``count`` distinct values of ``strategy``. One case per example: drawing several
    at once (a list) is cheaper per case, but hypothesis then copies parts of one case into
    the next, and two thirds of them come out the same."""
    distinct: dict[str, Any] = {}
    for case in draw_many(strategy, count, chunk_seed):
        distinct.setdefault(repr(case), case)
    return list(distinct.values())


# -- frames --

request_id = st.none() | st.sampled_from(["r1", "x" * 100, "x" * 101, "", "\ud800"]) | any_text
own_ids = st.sampled_from([Ref("own_run"), Ref("done_run")])
foreign_ids = st.sampled_from([Ref("foreign_run"), Ref("foreign_thread")])
made_up_ids = st.sampled_from(
    ["run_" + "0" * 32, "thr_" + "f" * 32, "run_' OR '1'='1", "%", "../", "x" * 100]
)
an_id = own_ids | foreign_ids | st.just(Ref("own_thread")) | made_up_ids | any_text | json_value
a_seq = (
    st.integers(-2, 400)
    | st.just(Ref("own_seq"))
    | huge_number
    | st.sampled_from([2**31 - 1, 2**31, True, "3", None, 1.0])
)
an_epoch = (
    st.sampled_from([Ref("own_epoch"), Ref("foreign_epoch"), "an-epoch-of-long-ago", ""]) | any_text
)
content = st.sampled_from(["Where can we cut our LLM costs?", "hi", " ", ""]) | any_text


def _message(kind: str, fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"type": st.just(kind) | st.sampled_from([kind.upper(), kind + " ", 5])},
        optional={**fields, "request_id": request_id},
    )


protocol_message = st.one_of(
    _message(
        "user_message",
        {
            "content": content,
            "thread_id": st.just(Ref("own_thread")) | foreign_ids | an_id,
            "client_message_id": st.sampled_from(["m1", "m2"]) | an_id,
            "policy": st.sampled_from(["enqueue", "reject", "interrupt", "shove", None]),
        },
    ),
    _message("stop_agent", {"run_id": an_id}),
    _message("resume", {"run_id": an_id, "after_seq": a_seq, "epoch": an_epoch}),
    _message("get_thread_history", {"thread_id": an_id}),
    _message("ping", {}),
)


@st.composite
def as_text(draw: st.DrawFn, body: Any) -> Json:
    return Json(body, ascii=draw(st.booleans()))


def _data_frame(raw: str | bytes | Json) -> Wire:
    if isinstance(raw, Json):
        return Wire(TEXT, raw)
    if isinstance(raw, str):
        # A text frame must be UTF-8; a lone surrogate's bytes are not (the server closes 1007).
        return Wire(TEXT, raw.encode("utf-8", "surrogatepass"))
    return Wire(BINARY, raw)


def _command_body(command: Any) -> dict[str, Any]:
    kind = {
        "UserMessage": "user_message",
        "StopAgent": "stop_agent",
        "Resume": "resume",
        "GetThreadHistory": "get_thread_history",
        "Ping": "ping",
    }[type(command).__name__]
    body: dict[str, Any] = {"type": kind}
    for name in ("content", "thread_id", "client_message_id", "run_id", "after_seq", "epoch"):
        value = getattr(command, name, None)
        if value is not None:
            body[name] = value
    if getattr(command, "policy", None) is not None:
        body["policy"] = command.policy.value
    if command.request_id is not None:
        body["request_id"] = command.request_id
    return body


# Whole messages in one frame each: the unit layer's hostile frames, valid commands (random ids:
# mostly not the caller's), and protocol messages naming real ids, alone or several in a row
# (in any order: a resume or stop first thing after connecting, another user's run, ...).
hostile_case = hostile_frame.map(lambda raw: FrameCase("hostile", (_data_frame(raw),)))
valid_case = valid_command.map(
    lambda command: FrameCase("valid", (Wire(TEXT, Json(_command_body(command))),))
)
protocol_case = st.lists(protocol_message.flatmap(as_text), min_size=1, max_size=4).map(
    lambda bodies: FrameCase("protocol", tuple(Wire(TEXT, body) for body in bodies))
)

small_payload = (
    st.binary(max_size=40)
    | st.just(b'{"type":"ping","request_id":"wire"}')
    | st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b'{"type":"ping"}\x80'])
)


@st.composite
def close_payload(draw: st.DrawFn) -> bytes:
    """A close frame's body: empty, one byte (invalid), or a code (valid or not) and a reason."""
    shape = draw(st.sampled_from(["empty", "one", "code"]))
    if shape == "empty":
        return b""
    if shape == "one":
        return b"\x03"
    code = draw(
        st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 3000, 4999])
        | st.sampled_from([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
        | st.integers(0, 65535)
    )
    reason = draw(st.binary(max_size=20) | st.text(max_size=20).map(str.encode))
    return struct.pack("!H", code) + reason[:123]


@st.composite
def wire_case(draw: st.DrawFn) -> FrameCase:
    """One frame that breaks (or bends) RFC 6455: any opcode, reserved bits, no mask, control
    frames of every size and code, invalid UTF-8 in a text frame."""
    shape = draw(st.sampled_from(["opcode", "control", "close", "utf8", "bits"]))
    if shape == "opcode":
        frame = Wire(draw(st.integers(0, 15)), draw(small_payload), fin=draw(st.booleans()))
    elif shape == "control":
        size = draw(st.sampled_from([0, 1, 125, 126, 200]))
        frame = Wire(
            draw(st.sampled_from([PING, PONG])),
            draw(st.binary(min_size=size, max_size=size)),
            fin=draw(st.booleans() | st.just(True)),
        )
    elif shape == "close":
        frame = Wire(CLOSE, draw(close_payload()))
    elif shape == "utf8":
        frame = Wire(TEXT, draw(small_payload))
    else:
        frame = Wire(
            draw(st.sampled_from([TEXT, BINARY, PING])),
            b'{"type":"ping","request_id":"bits"}',
            rsv=draw(st.integers(0, 7)),
            masked=draw(st.booleans()),
        )
    return FrameCase("wire", (frame,))


@st.composite
def fragmented_case(draw: st.DrawFn) -> FrameCase:
    """A message in pieces, with a control frame between them or not, in order or not."""
    whole = Json(draw(protocol_message | st.just({"type": "ping", "request_id": "frag"})))
    cuts = sorted(draw(st.lists(st.floats(0, 1), min_size=1, max_size=4)))
    pieces = [Piece(whole, a, b) for a, b in zip([0.0, *cuts], [*cuts, 1.0], strict=True)]
    first = draw(st.sampled_from([TEXT, TEXT, BINARY, CONT]))
    frames = [
        Wire(first if i == 0 else CONT, piece, fin=i == len(pieces) - 1)
        for i, piece in enumerate(pieces)
    ]
    trick = draw(st.sampled_from(["none", "ping_between", "text_between", "no_end"]))
    at = draw(st.integers(1, len(frames)))
    if trick == "ping_between":
        frames.insert(at, Wire(PING, b"between"))
    elif trick == "text_between":
        frames.insert(at, Wire(TEXT, b'{"type":"ping"}'))
    elif trick == "no_end":
        frames[-1] = Wire(frames[-1].opcode, frames[-1].payload, fin=False)
    return FrameCase("fragmented", tuple(frames))


@st.composite
def oversized_case(draw: st.DrawFn) -> FrameCase:
    """Past the frame limit: one frame, a message in fragments, or a header that claims it."""
    over = MAX_FRAME + draw(st.sampled_from([1, 100, 70_000]))
    shape = draw(st.sampled_from(["frame", "fragments", "claimed", "at_limit"]))
    if shape == "claimed":
        claimed = draw(st.sampled_from([MAX_FRAME + 1, 2**32, 2**63 - 1]))
        return FrameCase("oversized", (Wire(TEXT, b"", claimed=claimed),))
    size = MAX_FRAME if shape == "at_limit" else over
    text = ('{"type":"ping","request_id":"big","pad":"' + "x" * size)[: size - 2] + '"}'
    data = text.encode()
    if shape == "fragments":
        half = len(data) // 2
        frames = (Wire(TEXT, data[:half], fin=False), Wire(CONT, data[half:]))
        return FrameCase("oversized", frames)
    return FrameCase("oversized", (Wire(TEXT, data),))


early_case = st.one_of(protocol_case, hostile_case, wire_case()).map(
    lambda case: FrameCase("early", case.frames, early=True)
)

deep_case = st.sampled_from([1000, 5000, 30_000]).map(
    lambda depth: FrameCase("hostile", (Wire(TEXT, nested_frame(depth).encode()),))
)

FRAME_MIX: tuple[tuple[st.SearchStrategy[FrameCase], int], ...] = (
    (hostile_case, 36),
    (protocol_case, 30),
    (wire_case(), 14),
    (fragmented_case(), 8),
    (valid_case, 6),
    (early_case, 2),
    (oversized_case(), 2),
    (deep_case, 2),
)


def frame_cases(count: int, chunk_seed: int) -> list[FrameCase]:
    """``count`` frame cases in the proportions of ``FRAME_MIX``."""
    total = sum(weight for _, weight in FRAME_MIX)
    drawn: list[FrameCase] = []
    for i, (strategy, weight) in enumerate(FRAME_MIX):
        share = max(1, round(count * weight / total))
        drawn += cases(strategy, share, chunk_seed * 100 + i)
    # Interleaved, so that each lane sees every kind throughout.
    random.Random(chunk_seed).shuffle(drawn)
    return drawn[:count]


# -- HTTP requests --

IMPORT_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/json-lines",
    "application/x-jsonlines",
    "text/csv",
)
ODD_TYPES = (
    "",
    "text/plain",
    "application/json",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "application/x-ndjson; charset=latin-1",
    "TEXT/CSV",
    "text/csv;;;",
)


def _jsonl(lines: list[str | bytes], crlf: bool) -> bytes:
    parts = [
        line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass") for line in lines
    ]
    return (b"\r\n" if crlf else b"\n").join(parts)


jsonl_body = st.builds(
    _jsonl,
    st.lists(hostile_line | st.just(GOOD_LINE), min_size=0, max_size=8),
    st.booleans(),
)
csv_header = st.permutations([*GOOD, "cost_usd", "status", "feature"]).map(list) | st.lists(
    any_record_text, max_size=4
)


@st.composite
def csv_body(draw: st.DrawFn) -> bytes:
    header = draw(csv_header)
    good = ",".join(str(GOOD.get(name, "")) for name in header)
    rows = draw(st.lists(st.lists(csv_cell, max_size=10).map(",".join) | st.just(good), max_size=6))
    text = "\n".join([",".join(header), *rows])
    return text.encode("utf-8", "surrogatepass")


@st.composite
def import_case(draw: st.DrawFn) -> HttpCase:
    csv = draw(st.booleans())
    body = draw(csv_body() if csv else jsonl_body)
    kind = draw(st.sampled_from(["right", "right", "right", "alias", "odd"]))
    if kind == "right":
        media = "text/csv" if csv else "application/x-ndjson"
    elif kind == "alias":
        media = draw(st.sampled_from(IMPORT_TYPES))
    else:
        media = draw(st.sampled_from(ODD_TYPES))
    if draw(st.integers(0, 9)) == 0:
        body = b"\xef\xbb\xbf" + body  # a byte-order mark
    params: tuple[tuple[str, str], ...] = ()
    if draw(st.booleans()):
        name = draw(st.sampled_from(["usage.csv", "", "x" * 200, "x" * 201]) | any_text)
        params = (("name", name.encode("utf-8", "surrogatepass").decode("utf-8", "replace")),)
    headers = (("Content-Type", media),) if media else ()
    return HttpCase(
        "import",
        "POST",
        "/api/usage/import",
        params=params,
        headers=headers,
        body=body,
        chunked=draw(st.integers(0, 9)) == 0,
    )


auth_body = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "email": st.sampled_from(["ada@example.com", "ADA@example.com ", "a@b", ""])
            | st.emails()
            | json_value,
            "password": st.sampled_from(["correct horse battery", "x" * 1024, "x" * 1025])
            | json_value,
            "refresh_token": st.just(Ref("refresh_token")) | json_value,
        },
    ),
    json_value,
)


@st.composite
def auth_case(draw: st.DrawFn) -> HttpCase:
    """The /auth/* JSON endpoints: bodies of any JSON value, broken JSON, other types, and
    bodies near and past the 16 KiB cap."""
    path = draw(st.sampled_from(["/auth/register", "/auth/login", "/auth/refresh"]))
    shape = draw(st.sampled_from(["json", "json", "text", "raw", "deep", "huge_int", "big"]))
    body: bytes | Json
    if shape == "json":
        body = Json(draw(auth_body), ascii=draw(st.booleans()))
    elif shape == "text":
        body = draw(st.text(max_size=60)).encode("utf-8", "surrogatepass")
    elif shape == "raw":
        body = draw(st.binary(max_size=60))
    elif shape == "deep":
        depth = draw(st.sampled_from([100, 1000, 5000]))
        body = ('{"email":' + "[" * depth + "]" * depth + "}").encode()
    elif shape == "huge_int":
        body = ('{"email":"a@example.com","password":' + "9" * 5000 + "}").encode()
    else:
        size = draw(st.sampled_from([MAX_BODY - 20, MAX_BODY + 1, 3 * MAX_BODY]))
        body = ('{"email":"a@example.com","password":"' + "x" * size + '"}').encode()
    media = draw(
        st.sampled_from(["application/json"] * 4 + ["text/plain", "", "application/x-ndjson"])
    )
    return HttpCase(
        "auth",
        "POST",
        path,
        headers=(("Content-Type", media),) if media else (),
        body=body,
        auth="as_drawn",
        chunked=draw(st.integers(0, 9)) == 0,
    )


path_id = (
    st.sampled_from(
        [
            Ref(name)
            for name in (
                *("own_run", "done_run", "foreign_run", "own_thread", "foreign_thread"),
                *("own_batch", "foreign_batch"),
            )
        ]
    )
    | made_up_ids
    | any_text
)
READS = (
    ("GET", ("/api/threads/", "{id}", "/messages")),
    ("GET", ("/api/runs/", "{id}")),
    ("GET", ("/api/runs/", "{id}", "/events")),
    ("DELETE", ("/api/usage/batches/", "{id}")),
)


@st.composite
def ids_case(draw: st.DrawFn) -> HttpCase:
    """The operations that take an id, with real ids (the caller's and another user's) and
    made-up ones, and the event stream's position in every form."""
    method, shape = draw(st.sampled_from(READS))
    ident = draw(path_id)
    path = tuple(ident if part == "{id}" else part for part in shape)
    params: list[tuple[str, str]] = []
    headers: list[tuple[str, str]] = []
    if shape[-1] == "/events":
        if draw(st.booleans()):
            after = draw(st.integers(-1, 400) | huge_number | st.sampled_from(["", "x", "1e3"]))
            params.append(("after", str(after)))
        if draw(st.booleans()):
            epoch = draw(st.sampled_from(["", "x" * 101, "an-epoch-of-long-ago"]) | any_text)
            params.append(
                ("epoch", epoch.encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
            )
        if draw(st.booleans()):
            headers.append(("Accept", "text/event-stream"))
            if draw(st.booleans()):
                last = draw(
                    st.sampled_from(["", "3", "-1", "x:y", "9" * 40]) | st.integers().map(str)
                )
                headers.append(("Last-Event-ID", last))
    return HttpCase("ids", method, path, params=tuple(params), headers=tuple(headers))


@st.composite
def stalled_case(draw: st.DrawFn) -> HttpCase:
    """A body that stops: its head promises more than is sent (a Content-Length, or chunks
    without the last), and then the client waits (``stalled``: the server must answer or close
    within its body deadline) or hangs up (``abandoned``: nothing to answer, nothing to log)."""
    path = draw(st.sampled_from(["/auth/login", "/auth/register", "/api/usage/import"]))
    if path == "/api/usage/import":
        csv = draw(st.booleans())
        whole = draw(csv_body() if csv else jsonl_body)
        media = "text/csv" if csv else "application/x-ndjson"
    else:
        whole = draw(st.sampled_from([b'{"email": "a@example.com", "password": "xxxxxxxx"}']))
        media = "application/json"
    sent = whole[: draw(st.integers(0, len(whole)))]
    return HttpCase(
        draw(st.sampled_from(["stalled", "abandoned"])),
        "POST",
        path,
        headers=(("Content-Type", media),),
        body=sent,
        auth=draw(st.sampled_from(["lane", "lane", "none"])),
        chunked=draw(st.booleans()),
        extra={"declared": len(whole) + draw(st.integers(1, 1000))},
    )


# Operations drawn by schemathesis from the live document, with their weights: what creates or
# removes much (the sample, sign-ups) less often than what only reads. Invalid requests
# (schemathesis's negative mode) only where an operation takes a body: the id-taking ones are
# covered by ``ids_case`` (schemathesis takes up to half a second to make an invalid path
# parameter), and one with no parameter at all has nothing to make invalid.
OPERATION_WEIGHTS = {
    ("POST", "/api/usage/sample"): 1,
    ("DELETE", "/api/usage/records"): 1,
    ("POST", "/auth/logout"): 2,
}
NEGATIVE = {("POST", "/auth/register"), ("POST", "/auth/login"), ("POST", "/auth/refresh")}
NEGATIVE.add(("POST", "/api/usage/import"))


def _register_media_types() -> None:
    """The import's body types, drawn by schemathesis from the hostile usage files above."""
    schemathesis.openapi.media_type(
        "application/x-ndjson",
        jsonl_body,
        aliases=["application/jsonl", "application/json-lines", "application/x-jsonlines"],
    )
    schemathesis.openapi.media_type("text/csv", csv_body())


def _from_case(case: Any, mode: str) -> HttpCase:
    sent = case.as_transport_kwargs(base_url="")
    body: bytes | Json | None = None
    if "json" in sent:
        body = Json(sent["json"])
    elif sent.get("data") is not None:
        data = sent["data"]
        body = data if isinstance(data, bytes) else str(data).encode("utf-8", "surrogatepass")
    elif sent.get("content") is not None:
        body = bytes(sent["content"])
    headers = tuple(
        (str(k), str(v))
        for k, v in sent["headers"].items()
        if k.lower() not in ("user-agent", "x-schemathesis-testcaseid", "connection")
    )
    params = tuple(
        (str(k), str(item))
        for k, v in (sent.get("params") or {}).items()
        for item in (v if isinstance(v, list) else [v])
    )
    operation = (case.method.upper(), case.operation.path)
    # Logging out ends the session it is sent with: it gets a session of its own.
    auth = "fresh" if operation == ("POST", "/auth/logout") else "lane_or_drawn"
    return HttpCase(
        f"openapi-{mode}",
        case.method.upper(),
        sent["url"],
        params=params,
        headers=headers,
        body=body,
        auth=auth,
        extra={"operation": f"{operation[0]} {operation[1]}"},
    )


def openapi_strategies(document: dict[str, Any]) -> list[tuple[st.SearchStrategy[HttpCase], int]]:
    """Every operation of ``document`` by schemathesis, each with its weight."""
    _register_media_types()
    schema = schemathesis.openapi.from_dict(document)
    drawn: list[tuple[st.SearchStrategy[HttpCase], int]] = []
    for path, operations in document["paths"].items():
        for method in operations:
            key = (method.upper(), path)
            operation = schema[path][method.upper()]
            modes = [GenerationMode.POSITIVE]
            if key in NEGATIVE:
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                strategy = operation.as_strategy(mode).map(
                    lambda case, mode=mode: _from_case(case, mode.value)
                )
                drawn.append((strategy, OPERATION_WEIGHTS.get(key, 3)))
    return drawn


def http_mix(document: dict[str, Any]) -> list[tuple[st.SearchStrategy[HttpCase], float]]:
    """What the requests are made of, and in which shares: every operation of the document
    35%, usage imports 20%, /auth/* bodies 25%, the id-taking operations 19.7%, bodies that
    stop 0.3% (each waits out the server's body deadline)."""
    operations = openapi_strategies(document)
    weights = sum(weight for _, weight in operations)
    return [
        *((strategy, 35 * weight / weights) for strategy, weight in operations),
        (import_case(), 20),
        (auth_case(), 25),
        (ids_case(), 19.7),
        (stalled_case(), 0.3),
    ]


_MIX: list[list[tuple[st.SearchStrategy[HttpCase], float]]] = []


def http_cases(document: dict[str, Any], count: int, chunk_seed: int) -> list[HttpCase]:
    """About ``count`` requests in the shares of :func:`http_mix` (built once per process)."""
    if not _MIX:
        _MIX.append(http_mix(document))
    drawn: list[HttpCase] = []
    for i, (strategy, weight) in enumerate(_MIX[0]):
        share = max(1, round(count * weight / 100))
        try:
            drawn += cases(strategy, share, chunk_seed * 100 + i)
        except Unsatisfiable:
            continue  # an operation schemathesis finds nothing to draw for in this mode
    random.Random(chunk_seed).shuffle(drawn)
    return drawn[:count]


def percent(text: str) -> str:
    """A path segment as a client puts it in a URL."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")
