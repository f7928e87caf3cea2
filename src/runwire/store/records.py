"""What the store holds, as plain immutable records (no SQL types leak out of the store)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from runwire.domain.run_status import FINAL_STATUSES
from runwire.events.model import stamp_ms

__all__ = ["Message", "RunRecord", "ServiceClient", "ThreadRecord", "User", "iso_from_ms"]


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds → RFC 3339 UTC string with milliseconds."""
    return stamp_ms(ms)


@dataclass(frozen=True, slots=True)
class User:
    """An account. ``email`` is the address it signs in with; a user of an outside issuer
    (``issuer`` set) signs in there, and its ``outside_email`` is the address that issuer vouches
    for (None when it names none)."""

    id: str
    email: str
    password_hash: str = field(repr=False)
    created_at: int
    issuer: str | None = None
    outside_email: str | None = None

    def public(self) -> dict[str, Any]:
        email = self.outside_email if self.issuer is not None else self.email
        return {"id": self.id, "email": email}


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    id: str
    user_id: str
    title: str
    created_at: int
    updated_at: int

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "created_at": iso_from_ms(self.created_at),
            "updated_at": iso_from_ms(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    thread_id: str
    user_id: str
    role: str
    content: str
    created_at: int
    run_id: str | None = None
    client_message_id: str | None = None
    partial: bool = False

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "role": self.role,
            "content": self.content,
            "run_id": self.run_id,
            "client_message_id": self.client_message_id,
            "partial": self.partial,
            "created_at": iso_from_ms(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class ServiceClient:
    """A service registered to get service tokens (docs/auth.md, "Service accounts"): it proves
    who it is with a secret (``secret_hash``) or with assertions its private key signs
    (``public_key``, PEM), never both."""

    id: str
    name: str
    scopes: tuple[str, ...]
    audience: str
    created_at: int
    secret_hash: str | None = field(default=None, repr=False)
    public_key: str | None = None
    disabled_at: int | None = None

    @property
    def auth_method(self) -> str:
        """How it authenticates, by RFC 7591's names."""
        return "private_key_jwt" if self.public_key is not None else "client_secret"


@dataclass(frozen=True, slots=True)
class RunRecord:
    id: str
    thread_id: str
    user_id: str
    message_id: str
    status: str
    created_at: int
    epoch: str
    last_seq: int = 0
    started_at: int | None = None
    ended_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    trimmed_at: int | None = None  # when retention deleted the run's events
    # What the run's model turns took; None for a run answered offline.
    model_name: str | None = None
    model_requests: int | None = None
    model_prompt_tokens: int | None = None
    model_completion_tokens: int | None = None
    model_cost_usd: float | None = None
    # The quality gate's verdict on the answer (agents/quality.py); None without one.
    quality_score: float | None = None
    quality_outcome: str | None = None
    quality_reasons: str | None = None  # JSON: [{reason, message}]

    @property
    def status_is_final(self) -> bool:
        return self.status in FINAL_STATUSES  # a str of the store, equal to its member

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "thread_id": self.thread_id,
            "message_id": self.message_id,
            "status": self.status,
            "last_seq": self.last_seq,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "created_at": iso_from_ms(self.created_at),
            "started_at": iso_from_ms(self.started_at) if self.started_at else None,
            "ended_at": iso_from_ms(self.ended_at) if self.ended_at else None,
            "model_usage": self.model_usage(),
            "quality": self.quality(),
        }

    def quality(self) -> dict[str, Any] | None:
        """The quality gate's verdict on the run's answer: ``score``, ``outcome`` (passed,
        replaced, failed) and ``reasons`` ([{reason, message}]); None without one."""
        if self.quality_outcome is None:
            return None
        return {
            "score": self.quality_score,
            "outcome": self.quality_outcome,
            "reasons": orjson.loads(self.quality_reasons or "[]"),
        }

    def model_usage(self) -> dict[str, Any] | None:
        """The tokens and cost of the run's model turns, as the ``model_usage`` event has them."""
        if self.model_name is None:
            return None
        prompt, completion = self.model_prompt_tokens or 0, self.model_completion_tokens or 0
        return {
            "model": self.model_name,
            "requests": self.model_requests or 0,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost_usd": self.model_cost_usd,
        }
