"""The one exception tree of runwire.

Every error the server raises on purpose derives from :class:`RunwireError` and carries a stable,
machine-readable ``code`` (the value clients see in ``error`` frames and HTTP error bodies) and a
``message`` readable by a person. Codes and messages never contain secrets or stack traces.
Mapping to HTTP statuses and WebSocket close codes happens only at the edge (``runwire.transport``).

::

    RunwireError
    ├── ConfigError              start-up configuration is invalid (lists every problem)
    ├── InputError               a request or frame is malformed or invalid        code: invalid_*
    │   ├── ProtocolError        a WebSocket frame breaks the protocol             code: bad_frame, ...
    │   ├── PayloadTooLarge      a body or frame is over its size limit            code: too_large
    │   └── UnsupportedMediaType a body has a content type we do not read          code: unsupported_media_type
    ├── AuthError                credentials are missing, wrong or revoked         code: unauthorized
    │   ├── InvalidCredentials   login failed (same for unknown user and wrong password)
    │   ├── TokenExpired         an access token or ticket is past its lifetime
    │   ├── TokenReused          a used refresh token was presented again; its family is revoked
    │   ├── InvalidClient        a service client's credentials are wrong           code: invalid_client
    │   └── ServiceTokenRequired an internal API was called without a service token code: service_token_required
    ├── InsufficientScope        a service token lacks the scope an API needs       code: insufficient_scope
    ├── WrongPassword            a password change named the wrong current password code: wrong_password
    ├── NotFound                 the thing does not exist *for this user*          code: not_found
    ├── Conflict                 the thing exists already                          code: conflict
    ├── InvalidTransition        a state machine was asked for a forbidden move    code: invalid_state
    │   ├── RunPhaseError        a run's task on its node, moved against its phases (a bug)
    │   └── SocketPhaseError     a WebSocket's socket, moved against its phases (a bug)
    ├── RateLimited              too many attempts; may retry after a wait         code: rate_limited
    ├── ReloadRequired           a resume position cannot be served whole; reload  code: reload_required
    ├── LeaseLost                this node lost a run's lease; it stops silently    code: lease_lost
    ├── RunFailure               a run ended on an error                           code: per subclass
    │   ├── RunTimeout           the run, a tool or an LLM call ran past its limit code: timeout
    │   ├── ToolFailed           a tool raised                                     code: tool_failed
    │   └── ModelFailed          the model server failed or cannot be reached      code: model_*
    ├── DependencyUnavailable    the database (or another service) cannot be reached code: unavailable
    └── CheckFailed              `runwire check` saw something else than it expected code: check_failed
        └── TargetUnreachable    the checked URL does not answer, or not as runwire   code: unreachable

Outside the tree, on purpose: signals that one part of runwire raises for another to catch, which
never reach a client or an operator. :class:`runwire.domain.usage.RecordsNotRead` (a usage view
asked for records it has not read yet: its caller awaits the read and asks again) is one, as are
the modules' private ``_*`` exceptions. Being no ``RunwireError``, such a signal that escaped
through a bug is an internal error (logged with its traceback; the client sees code ``internal``),
not a deliberate error whose code would mislead.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

__all__ = [
    "AuthError",
    "CheckFailed",
    "ConfigError",
    "Conflict",
    "DependencyUnavailable",
    "InputError",
    "InsufficientScope",
    "InvalidClient",
    "InvalidCredentials",
    "InvalidTransition",
    "LeaseLost",
    "ModelFailed",
    "NotFound",
    "PayloadTooLarge",
    "ProtocolError",
    "RateLimited",
    "ReloadReason",
    "ReloadRequired",
    "RunFailure",
    "RunPhaseError",
    "RunTimeout",
    "RunwireError",
    "ServiceTokenRequired",
    "SocketPhaseError",
    "TargetUnreachable",
    "TokenExpired",
    "TokenReused",
    "ToolFailed",
    "UnsupportedMediaType",
    "WrongPassword",
]


class RunwireError(Exception):
    """Base of every deliberate runwire error."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def wire_fields(self) -> dict[str, Any]:
        """Machine-readable fields sent beside ``code`` and the message (none unless overridden)."""
        return {}


class ConfigError(RunwireError):
    """The configuration cannot start a server; ``problems`` names each one."""

    code = "config"

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"runwire cannot start; fix these settings:\n{lines}")


class InputError(RunwireError):
    """A request or a frame is malformed or fails validation."""

    code = "invalid_input"


class ProtocolError(InputError):
    """A WebSocket frame breaks the wire protocol (bad JSON, unknown type, missing field)."""

    code = "bad_frame"


class PayloadTooLarge(InputError):
    """A body or a frame is larger than its configured limit."""

    code = "too_large"


class UnsupportedMediaType(InputError):
    """A body arrived with a content type the endpoint does not read."""

    code = "unsupported_media_type"


class AuthError(RunwireError):
    """Credentials are missing, invalid, expired or revoked."""

    code = "unauthorized"


class InvalidCredentials(AuthError):
    """Login failed; deliberately the same for an unknown user and a wrong password."""


class TokenExpired(AuthError):
    """An access token, refresh token or ticket is past its lifetime."""


class TokenReused(AuthError):
    """A refresh token was presented a second time; its whole family is now revoked."""


class InvalidClient(AuthError):
    """A service client could not be authenticated at the token endpoint: unknown, disabled, a
    wrong secret, or an assertion that is not good (expired, replayed, another audience, a wrong
    signature). Deliberately one answer for all of them."""

    code = "invalid_client"


class ServiceTokenRequired(AuthError):
    """An internal API (for services) was called with a user's access token, or with none."""

    code = "service_token_required"


class InsufficientScope(RunwireError):
    """A valid service token without the scope the API needs (RFC 6750's ``insufficient_scope``):
    not an :class:`AuthError`, since a new token of the same client would not have it either."""

    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(
            f"this service token lacks the scope {scope}: register the client with "
            f"`runwire auth clients create NAME --scope {scope}`"
        )
        self.scope = scope

    def wire_fields(self) -> dict[str, Any]:
        return {"scope": self.scope}


class WrongPassword(RunwireError):
    """A password change named a current password that is not the account's. Not an
    :class:`AuthError`: the caller's token is fine (a client that refreshes on 401 would be
    misled)."""

    code = "wrong_password"


class NotFound(RunwireError):
    """The resource does not exist, or is not the caller's (the two are indistinguishable)."""

    code = "not_found"


class Conflict(RunwireError):
    """The resource exists already (for instance, an e-mail address is taken)."""

    code = "conflict"


class InvalidTransition(RunwireError):
    """A state machine was asked to move from a state that does not allow it.

    Every lifecycle moves through :class:`runwire.domain.state_machine.StateMachine`; a run's
    status and a connection's state raise this class itself, the two below name their machine."""

    code = "invalid_state"


class RunPhaseError(InvalidTransition):
    """The executor moved a run's task against its phases (``runwire.runs.active_run``): a bug in
    the executor, never a client's doing. The run ends as any run whose code raised."""


class SocketPhaseError(InvalidTransition):
    """The ``/ws`` adapter moved a socket against its phases (``runwire.transport.ws_phase``):
    a bug in the adapter, never a client's doing (the loop's callback that hit it logs it)."""


class RateLimited(RunwireError):
    """Too many attempts (failed logins, sign-ups, frames, ...); the caller may retry later.

    ``retry_after_s`` is exact. An edge tells the wait in the unit its field carries, and the
    message says the same number: ``retry_after_whole_s`` (rounded up to whole seconds, at
    least 1) for HTTP's ``Retry-After`` and ``message``; ``retry_after_ms`` (rounded up to
    milliseconds, at least 1) for a WebSocket ``error`` and ``message_in_ms``.
    """

    code = "rate_limited"

    def __init__(self, what: str, *, retry_after_s: float) -> None:
        self.what = what
        self.retry_after_s = retry_after_s
        super().__init__(f"{what}; try again in {self.retry_after_whole_s} s")

    @property
    def retry_after_whole_s(self) -> int:
        return max(1, math.ceil(self.retry_after_s))

    @property
    def retry_after_ms(self) -> int:
        return max(1, math.ceil(self.retry_after_s * 1000))

    @property
    def message_in_ms(self) -> str:
        return f"{self.what}; try again in {self.retry_after_ms} ms"


class ReloadReason(StrEnum):
    """Why a resume position cannot be served whole (the ``reason`` of ``reload_required``)."""

    EPOCH_CHANGED = "epoch_changed"  # the run's log was rewritten (a crash); positions are void
    HISTORY_EXPIRED = "history_expired"  # the run's events were trimmed by retention
    POSITION_UNKNOWN = "position_unknown"  # the run never had an event with that seq
    HISTORY_INCOMPLETE = "history_incomplete"  # stored events are missing (a failed write)


_RELOAD_MESSAGES = {
    ReloadReason.EPOCH_CHANGED: "the run's events were renumbered after a server restart; "
    "reload the thread and read the run from the start",
    ReloadReason.HISTORY_EXPIRED: "the run's events are no longer kept; reload the thread's "
    "messages (the reply is there)",
    ReloadReason.POSITION_UNKNOWN: "the run never had an event at that position; reload the "
    "thread and read the run from the start",
    ReloadReason.HISTORY_INCOMPLETE: "some of the run's stored events are missing; reload the "
    "thread's messages",
}


class ReloadRequired(RunwireError):
    """A client's position in a run (``epoch`` and ``after_seq``) cannot be served whole.

    The answer is never a partial replay: the client drops what it holds of the run and reloads
    (the thread's messages, then the run from seq 0 under ``epoch`` if it still matters).
    """

    code = "reload_required"

    def __init__(self, run_id: str, reason: ReloadReason, epoch: str) -> None:
        super().__init__(_RELOAD_MESSAGES[reason])
        self.run_id = run_id
        self.reason = reason
        self.epoch = epoch

    def wire_fields(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "reason": self.reason.value, "epoch": self.epoch}


class RunFailure(RunwireError):
    """A run ended on an error; ``code`` says which kind."""

    code = "run_failed"


class RunTimeout(RunFailure):
    """The run, a tool call or an LLM call went past its time limit."""

    code = "timeout"


class ToolFailed(RunFailure):
    """A tool raised; the run reports it and may go on."""

    code = "tool_failed"


class ModelFailed(RunFailure):
    """The model server could not give an answer: unreachable (``model_unreachable``), still
    rate-limited after the retries (``model_rate_limited``), too slow (``model_timeout``) or
    failing (``model_error``). The message names the status or the kind of failure, never the
    server's error text, which may quote the request."""

    code = "model_error"


class LeaseLost(RunwireError):
    """This node no longer holds a run's lease (another node may have taken the run over):
    the run stops here without a further event. Never reaches a client."""

    code = "lease_lost"


class DependencyUnavailable(RunwireError):
    """A service the server depends on (the database, ...) cannot be reached."""

    code = "unavailable"


class CheckFailed(RunwireError):
    """A step of ``runwire check`` (the golden-path probe) saw something other than what it
    expected; ``expected`` and ``got`` say what, in a line each, for the report."""

    code = "check_failed"

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"expected {expected}; got {got}")
        self.expected = expected
        self.got = got


class TargetUnreachable(CheckFailed):
    """The URL ``runwire check`` was given does not answer, or answers as something other than
    runwire. ``message`` is the one line the command prints."""

    code = "unreachable"

    def __init__(self, message: str, *, expected: str = "runwire to answer") -> None:
        super().__init__(expected, message)
        self.message = message
