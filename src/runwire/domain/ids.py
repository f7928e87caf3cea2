"""Opaque identifiers: of stored things (threads, runs, messages, users, ...) and of run epochs."""

from __future__ import annotations

import secrets
import uuid

__all__ = ["new_epoch", "new_id"]


def new_id(prefix: str) -> str:
    """An opaque, unguessable id with a readable prefix (``thr_``, ``run_``, ``msg_``, ``usr_``)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def new_epoch() -> str:
    """A run's epoch: short, random and opaque (8 hex digits; never contains ``:``)."""
    return secrets.token_hex(4)
