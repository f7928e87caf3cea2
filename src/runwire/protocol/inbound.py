"""Client → server frames: parse text into typed commands, or raise ProtocolError with a code.

Parsing is strict about what it needs and lenient about the rest: unknown *fields* are ignored,
unknown *types* are an error (``unknown_type``), and every error names the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runwire.domain.concurrency import ConcurrencyPolicy
from runwire.errors import PayloadTooLarge, ProtocolError
from runwire.events.model import MAX_SEQ

__all__ = [
    "Command",
    "ConcurrencyPolicy",
    "GetQualityMetrics",
    "GetThreadHistory",
    "Ping",
    "Resume",
    "StopAgent",
    "UserMessage",
    "ValidateContent",
    "parse_frame",
]

MAX_CONTENT_CHARS = 32_000
MAX_ID_CHARS = 100


@dataclass(frozen=True, slots=True)
class UserMessage:
    content: str
    thread_id: str | None = None
    client_message_id: str | None = None
    policy: ConcurrencyPolicy | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class StopAgent:
    run_id: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    run_id: str
    after_seq: int
    request_id: str | None = None
    epoch: str | None = None  # the epoch of the client's position; None accepts any


@dataclass(frozen=True, slots=True)
class GetThreadHistory:
    thread_id: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class GetQualityMetrics:
    """What the quality gate found on the user's answers (docs/protocol.md)."""

    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ValidateContent:
    """Score ``content`` against the figures of the user's run ``run_id``."""

    run_id: str
    content: str
    request_id: str | None = None


Command = (
    UserMessage | StopAgent | Resume | GetThreadHistory | Ping | GetQualityMetrics | ValidateContent
)


def _is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON lets ``"\\udc00"`` through), which could
    be neither stored nor sent back."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_nul(key: str, value: str) -> None:
    # JSON lets "\u0000" through, but PostgreSQL cannot store it in text; refused on every
    # backend alike, rather than failing on one of them after the message was accepted.
    if "\x00" in value:
        raise ProtocolError(
            f"'{key}' must not contain the NUL character (U+0000)", code="invalid_field"
        )


def _opt_str(body: dict[str, Any], key: str, max_chars: int = MAX_ID_CHARS) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars or not _is_unicode(value):
        raise ProtocolError(
            f"'{key}' must be a non-empty string of at most {max_chars} characters",
            code="invalid_field",
        )
    _refuse_nul(key, value)
    return value


def _req_str(body: dict[str, Any], key: str, max_chars: int = MAX_ID_CHARS) -> str:
    value = _opt_str(body, key, max_chars)
    if value is None:
        raise ProtocolError(f"'{key}' is required", code="missing_field")
    return value


def _user_message(body: dict[str, Any], rid: str | None) -> UserMessage:
    content = body.get("content")
    if content is not None and not (isinstance(content, str) and _is_unicode(content)):
        raise ProtocolError("'content' must be a string of Unicode text", code="invalid_field")
    if not content or not content.strip():
        raise ProtocolError("'content' is required and must not be blank", code="missing_field")
    if len(content) > MAX_CONTENT_CHARS:
        raise ProtocolError(
            f"'content' is longer than {MAX_CONTENT_CHARS} characters", code="invalid_field"
        )
    _refuse_nul("content", content)
    raw_policy = body.get("policy")
    policy = None
    if raw_policy is not None:
        try:
            policy = ConcurrencyPolicy(raw_policy)
        except ValueError:
            allowed = ", ".join(p.value for p in ConcurrencyPolicy)
            raise ProtocolError(
                f"'policy' must be one of: {allowed}", code="invalid_field"
            ) from None
    return UserMessage(
        content=content,
        thread_id=_opt_str(body, "thread_id"),
        client_message_id=_opt_str(body, "client_message_id"),
        policy=policy,
        request_id=rid,
    )


def _validate_content(body: dict[str, Any], rid: str | None) -> ValidateContent:
    content = body.get("content")
    if not isinstance(content, str) or not content.strip() or not _is_unicode(content):
        raise ProtocolError(
            "'content' is required: the text to score, not blank", code="missing_field"
        )
    if len(content) > MAX_CONTENT_CHARS:
        raise ProtocolError(
            f"'content' is longer than {MAX_CONTENT_CHARS} characters", code="invalid_field"
        )
    return ValidateContent(run_id=_req_str(body, "run_id"), content=content, request_id=rid)


def _resume(body: dict[str, Any], rid: str | None) -> Resume:
    after = body.get("after_seq", 0)
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_SEQ:
        raise ProtocolError(
            f"'after_seq' must be an integer from 0 to {MAX_SEQ}", code="invalid_field"
        )
    return Resume(
        run_id=_req_str(body, "run_id"),
        after_seq=after,
        request_id=rid,
        epoch=_opt_str(body, "epoch"),
    )


_PARSERS: dict[str, Callable[[dict[str, Any], str | None], Command]] = {
    "user_message": _user_message,
    "stop_agent": lambda b, rid: StopAgent(run_id=_req_str(b, "run_id"), request_id=rid),
    "resume": _resume,
    "get_thread_history": lambda b, rid: GetThreadHistory(
        thread_id=_req_str(b, "thread_id"), request_id=rid
    ),
    "ping": lambda _b, rid: Ping(request_id=rid),
    "get_quality_metrics": lambda _b, rid: GetQualityMetrics(request_id=rid),
    "validate_content": _validate_content,
}

COMMAND_TYPES = frozenset(_PARSERS)


def _load(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise ProtocolError("frame is not valid JSON", code="bad_json") from None
    except RecursionError:  # json recurses per nesting level; deep frames must not escape
        raise ProtocolError("frame is nested too deeply", code="bad_json") from None


def request_id_of(text: str) -> str | None:
    """Best effort: the ``request_id`` of a frame that failed to parse, to echo in the error."""
    try:
        body = _load(text)
    except ProtocolError:
        return None
    rid = body.get("request_id") if isinstance(body, dict) else None
    if (
        isinstance(rid, str)
        and 0 < len(rid) <= MAX_ID_CHARS
        and _is_unicode(rid)
        and "\x00" not in rid
    ):
        return rid
    return None


def parse_frame(text: str | bytes, max_bytes: int) -> Command:
    """Parse one client frame. Raises ProtocolError (or PayloadTooLarge) with a precise code."""
    if isinstance(text, bytes):
        if len(text) > max_bytes:
            raise PayloadTooLarge(f"frame is larger than {max_bytes} bytes")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("frames must be UTF-8 JSON text", code="bad_json") from None
    elif len(text) > max_bytes // 4 and len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise PayloadTooLarge(f"frame is larger than {max_bytes} bytes")
    body = _load(text)
    if not isinstance(body, dict):
        raise ProtocolError("frame must be a JSON object")  # code: bad_frame
    kind = body.get("type")
    if kind is None:
        raise ProtocolError("frame has no 'type'", code="missing_field")
    if not isinstance(kind, str):
        raise ProtocolError("'type' must be a string", code="invalid_field")
    parser = _PARSERS.get(kind)
    if parser is None:
        shown = kind[:40].encode("utf-8", "backslashreplace").decode()  # lone surrogates too
        raise ProtocolError(f"unknown message type '{shown}'", code="unknown_type")
    return parser(body, _opt_str(body, "request_id"))
