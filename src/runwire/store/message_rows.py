"""Messages as rows: the statements that write a message (and touch its thread), and the
reading back of a row or of a history. Shared by the conversations (accepting a user's message)
and the run log (storing a run's reply with its end)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Insert, Update, bindparam, insert, update

from runwire.store.records import Message
from runwire.store.schema import messages, threads

__all__ = [
    "insert_message_statement",
    "message_from_row",
    "message_params",
    "message_row",
    "oldest_first",
    "touch_thread_statement",
]

_MESSAGE_COLUMNS = (
    "id",
    "thread_id",
    "user_id",
    "role",
    "content",
    "run_id",
    "client_message_id",
    "partial",
    "created_at",
)


def insert_message_statement() -> Insert:
    """Insert a message: parameters ``m_<column>`` (see :func:`message_params`)."""
    return insert(messages).values({c: bindparam(f"m_{c}") for c in _MESSAGE_COLUMNS})


def touch_thread_statement() -> Update:
    """Set the thread ``:thread_id``'s ``updated_at`` to ``:now``."""
    return (
        update(threads)
        .where(threads.c.id == bindparam("thread_id"))
        .values(updated_at=bindparam("now"))
    )


def message_params(msg: Message) -> dict[str, object]:
    """``msg`` as the parameters of :func:`insert_message_statement`."""
    return {f"m_{c}": v for c, v in message_row(msg).items()}


def message_row(msg: Message) -> dict[str, object]:
    """``msg`` as a ``messages`` row: column name to value."""
    return {
        "id": msg.id,
        "thread_id": msg.thread_id,
        "user_id": msg.user_id,
        "role": msg.role,
        "content": msg.content,
        "run_id": msg.run_id,
        "client_message_id": msg.client_message_id,
        "partial": msg.partial,
        "created_at": msg.created_at,
    }


def message_from_row(row: object) -> Message:
    """The message a ``messages`` row holds (read by column name)."""
    m = row._mapping  # type: ignore[attr-defined]
    return Message(
        id=m["id"],
        thread_id=m["thread_id"],
        user_id=m["user_id"],
        role=m["role"],
        content=m["content"],
        created_at=m["created_at"],
        run_id=m["run_id"],
        client_message_id=m["client_message_id"],
        partial=bool(m["partial"]),
    )


def oldest_first(newest_first: Iterable[Any]) -> list[tuple[str, str]]:
    """``(role, content)`` rows read newest first, as a history: oldest first."""
    history = [(role, text) for role, text in newest_first]
    history.reverse()
    return history
