"""What the HTTP API answers, as typed models: the routes return them, FastAPI checks each reply
against its model, and the OpenAPI document (``/openapi.json``, ``/docs``) is generated from them.

The fields and their meaning are those of docs/protocol.md (HTTP API); a model that disagrees with
what a route sends fails the schemathesis run of the suite (tests/e2e/test_openapi.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Health",
    "ImportReport",
    "JsonWebKey",
    "JsonWebKeySet",
    "Message",
    "MessageAccepted",
    "ModelUsage",
    "OAuthError",
    "OpenIdConfiguration",
    "Readiness",
    "Rejection",
    "Revocation",
    "RevocationFeed",
    "Run",
    "RunEvent",
    "RunEvents",
    "RunReply",
    "SampleLoaded",
    "ServiceToken",
    "Thread",
    "ThreadList",
    "ThreadMessages",
    "Ticket",
    "TokenPair",
    "UsageBatch",
    "UsageBatches",
    "UsageDeleted",
    "UsageSummary",
    "User",
    "UserReply",
]

Timestamp = Annotated[
    str,
    Field(
        description="RFC 3339 UTC with milliseconds and a `Z` suffix.",
        examples=["2026-11-23T20:26:08.972Z"],
        json_schema_extra={"format": "date-time"},
    ),
]
Id = Annotated[str, Field(description="An opaque id: do not parse it or rely on its length.")]


class User(BaseModel):
    id: Id
    email: str | None = Field(
        description="Trimmed and lower-cased. A user of an outside OpenID Connect issuer: the "
        "address its latest token vouches for, or null when it names none."
    )


class UserReply(BaseModel):
    user: User


class TokenPair(BaseModel):
    """A session's tokens: the access token goes in ``Authorization: Bearer``; the refresh token
    buys the next pair once (``POST /auth/refresh``)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme's name, not a secret
    expires_in: int = Field(description="The access token's lifetime, in seconds.")
    user: User


class Ticket(BaseModel):
    """A single-use ticket to open ``/ws?ticket=…``, bound to the session that asked for it."""

    ticket: str
    expires_in: int = Field(description="Seconds until the ticket can no longer be redeemed.")


class Thread(BaseModel):
    id: Id
    title: str = Field(description="The first 80 characters of the first message.")
    created_at: Timestamp
    updated_at: Timestamp


class ThreadList(BaseModel):
    threads: list[Thread] = Field(description="Newest `updated_at` first, at most 200.")


class Message(BaseModel):
    id: Id
    thread_id: str
    role: Literal["user", "assistant"]
    content: str
    run_id: str | None = Field(
        description="The run the user message started, or the run that wrote the answer."
    )
    client_message_id: str | None
    partial: bool = Field(description="An answer cut short by stop, error or timeout.")
    created_at: Timestamp


class ThreadMessages(BaseModel):
    thread_id: str
    messages: list[Message] = Field(description="Oldest first, the first 1000.")


class ModelUsage(BaseModel):
    """What a run's model turns took (the ``model_usage`` event's fields)."""

    model: str = Field(description="The model, as configured (RUNWIRE_LLM_MODEL).")
    requests: int = Field(description="Turns: chat completions asked for.")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float | None = Field(
        description="At the price table's list price; null for a model it does not list."
    )


class QualityReason(BaseModel):
    reason: Literal["unsupported_figure", "subject_missing", "echoes_instructions", "low_value"]
    message: str = Field(description="Why, in a sentence (the figures no tool computed, ...).")


class Quality(BaseModel):
    """The quality gate's verdict on a run's answer (docs/agents.md, "Quality gate")."""

    score: float = Field(description="From 0 to 1: the mean of the figures, subject, value checks.")
    outcome: Literal["passed", "replaced", "failed"] = Field(
        description="passed; replaced (the model's answer, by the offline one); failed (an "
        "offline answer the gate would reject, kept: there is no better one)."
    )
    reasons: list[QualityReason] = Field(description="Empty when it passed.")


class Run(BaseModel):
    id: Id
    thread_id: str
    message_id: str = Field(description="The user message that started the run.")
    status: Literal["queued", "running", "completed", "failed", "cancelled"]
    last_seq: int = Field(description="The seq of the run's last event; 0 until the run ends.")
    error_code: str | None = Field(description="Set for failed runs only.")
    error_message: str | None = Field(description="Set for failed runs only.")
    created_at: Timestamp
    started_at: Timestamp | None
    ended_at: Timestamp | None
    model_usage: ModelUsage | None = Field(
        description="What the run's model took; null for a run answered offline."
    )
    quality: Quality | None = Field(
        default=None,
        description="The quality gate's verdict on the answer; null for a run without one.",
    )


class RunReply(BaseModel):
    run: Run


class RunEvent(BaseModel):
    """One run event, exactly the frame the WebSocket sent: these fields, plus the fields of its
    type (docs/protocol.md, Run events). Clients ignore fields and types they do not know."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        examples=["agent_started", "agent_thinking", "tool_executing", "text_delta"],
    )
    run_id: str
    thread_id: str
    seq: int = Field(ge=1, description="1, 2, 3, … within the run, without gaps.")
    epoch: str = Field(description="The numbering `seq` belongs to.")
    agent_name: str
    parent_agent: str | None = Field(description="`null` for the root agent.")
    timestamp: Timestamp


class RunEvents(BaseModel):
    run_id: str
    events: list[RunEvent] = Field(description="The events with `seq > after`, in seq order.")


class Rejection(BaseModel):
    line: int = Field(ge=1, description="The line's number in the body, from 1.")
    error: str = Field(description="Why the line was not imported.")


class ImportReport(BaseModel):
    imported: int = Field(ge=0, description="How many good lines the body held.")
    new: int = Field(ge=0, description="How many of them were new, and stored.")
    already_present: int = Field(
        ge=0, description="How many were stored already (by an earlier import): not added again."
    )
    batch_id: str | None = Field(
        description="The batch the new records form (`DELETE /api/usage/batches/{id}` removes "
        "it); null when nothing was new."
    )
    rejected: list[Rejection] = Field(description="The rejected lines, at most 1000.")
    rejected_total: int | None = Field(
        None, description="Sent only when more lines were rejected than listed."
    )


class SampleLoaded(BaseModel):
    imported: int = Field(ge=0, description="How many generated records the sample holds.")
    new: int = Field(ge=0, description="How many were new, and stored (0 on a second load).")
    already_present: int = Field(ge=0, description="How many were stored already.")
    batch_id: str | None = Field(description="The batch the new records form, or null.")


class UsageBatch(BaseModel):
    id: str
    source: str = Field(description="`import` or `sample`.")
    name: str | None = Field(description="The file's name, when the import gave one.")
    records: int = Field(ge=0, description="How many records the batch added.")
    created_at: str = Field(description="When, as RFC 3339 UTC.")


class UsageBatches(BaseModel):
    batches: list[UsageBatch] = Field(description="The caller's import batches, newest first.")


class UsageDeleted(BaseModel):
    deleted: int = Field(ge=0, description="How many usage records were deleted.")


class UsageSummary(BaseModel):
    records: int = Field(ge=0, description="How many usage records the caller has.")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, str] = Field(
        description='Each check by name: `"ok"`, or why it fails.',
        examples=[{"database": "ok", "schema": "ok"}],
    )
    failing: list[str] | None = Field(
        None, description="The names of the failing checks; sent only when one fails."
    )


class JsonWebKey(BaseModel):
    """A public key that verifies access tokens (RFC 7517; Ed25519 as OKP, RFC 8037). Never
    holds a private member."""

    model_config = ConfigDict(extra="forbid")

    kty: Literal["OKP", "EC"] = Field(description="`OKP` for Ed25519, `EC` for P-256.")
    crv: Literal["Ed25519", "P-256"]
    x: str = Field(description="The public key (base64url): Ed25519's 32 bytes, or P-256's x.")
    y: str | None = Field(None, description="P-256's y coordinate (base64url); EC keys only.")
    kid: str = Field(description="The key id a token names in its header.")
    alg: Literal["EdDSA", "ES256"] = Field(description="The one algorithm this key verifies.")
    use: Literal["sig"] = "sig"


class JsonWebKeySet(BaseModel):
    """The keys an access token of this issuer may be signed with: the signing key and those
    superseded ones whose tokens may still be live."""

    keys: list[JsonWebKey]


class OpenIdConfiguration(BaseModel):
    """What a verifier needs to find runwire's keys, and a service where to get a service token
    (OpenID Connect Discovery's and RFC 8414's field names). runwire issues no ID tokens and has
    no authorization endpoint."""

    issuer: str = Field(description="The `iss` of every access token (`RUNWIRE_AUTH_ISSUER`).")
    jwks_uri: str = Field(description="Where the keys are published.")
    id_token_signing_alg_values_supported: list[Literal["EdDSA", "ES256"]] = Field(
        description="The algorithms of the published keys: what a verifier should accept."
    )
    subject_types_supported: list[Literal["public"]] = Field(
        description="`sub` is the user's id, the same for every client."
    )
    token_endpoint: str = Field(
        description="Where a service client gets a service token (`POST /auth/token`)."
    )
    grant_types_supported: list[Literal["client_credentials"]]
    token_endpoint_auth_methods_supported: list[
        Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]
    ]
    token_endpoint_auth_signing_alg_values_supported: list[Literal["EdDSA", "ES256", "RS256"]] = (
        Field(description="What a client assertion (`private_key_jwt`) may be signed with.")
    )
    scopes_supported: list[str] = Field(description="The scopes runwire's own APIs check.")


class ServiceToken(BaseModel):
    """A service token (RFC 6749 section 5.1): send it as `Authorization: Bearer` until it
    expires, then ask for another."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(gt=0, description="Seconds it is valid for.")
    scope: str = Field(description="The scopes granted, space-separated.")


class OAuthError(BaseModel):
    """An error of the token endpoint, as OAuth 2.0 writes them (RFC 6749 section 5.2)."""

    error: str = Field(
        description="`invalid_request`, `invalid_client`, `unsupported_grant_type`, "
        "`invalid_scope`, `rate_limited` or `temporarily_unavailable`."
    )
    error_description: str = Field(description="What went wrong, for a person to read.")


class Revocation(BaseModel):
    sid: str = Field(description="The ended session (the `sid` of its access tokens).")
    until: int = Field(
        description="Epoch seconds: after this no access token of the session is valid anyway."
    )


class RevocationFeed(BaseModel):
    revocations: list[Revocation] = Field(
        description="Sessions ended after `after` whose tokens may still be live, oldest first, "
        "at most 1000."
    )
    next_after: int = Field(
        ge=0, description="The `after` of the next request (epoch ms of the last one here)."
    )


class MessageAccepted(BaseModel):
    """A message posted on a user's behalf: stored, and its run started (or queued)."""

    thread_id: str
    message_id: str
    run_id: str
    duplicate: bool = Field(
        False, description="True when `client_message_id` was seen before: nothing new started."
    )
