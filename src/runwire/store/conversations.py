"""Conversations: threads and their messages."""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from runwire.errors import Conflict
from runwire.store.database import Database
from runwire.store.records import Message, ThreadRecord, new_id, now_ms
from runwire.store.schema import messages, threads

__all__ = ["Conversations"]

TITLE_CHARS = 80


def _message(row: object) -> Message:
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


class Conversations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create_thread(self, user_id: str, first_message: str) -> ThreadRecord:
        now = now_ms()
        title = " ".join(first_message.split())[:TITLE_CHARS] or "New conversation"
        record = ThreadRecord(
            id=new_id("thr"), user_id=user_id, title=title, created_at=now, updated_at=now
        )
        async with self._db.begin() as conn:
            await conn.execute(
                insert(threads).values(
                    id=record.id,
                    user_id=user_id,
                    title=title,
                    created_at=now,
                    updated_at=now,
                )
            )
        return record

    async def thread(self, user_id: str, thread_id: str) -> ThreadRecord | None:
        """The thread if it exists *and* belongs to ``user_id``; otherwise None."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(threads).where(threads.c.id == thread_id, threads.c.user_id == user_id)
                )
            ).first()
        return ThreadRecord(**row._mapping) if row else None

    async def threads_of(self, user_id: str, limit: int = 200) -> list[ThreadRecord]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(threads)
                .where(threads.c.user_id == user_id)
                .order_by(threads.c.updated_at.desc(), threads.c.created_at.desc())
                .limit(limit)
            )
            return [ThreadRecord(**r._mapping) for r in rows]

    async def add_message(
        self,
        *,
        thread_id: str,
        user_id: str,
        role: str,
        content: str,
        run_id: str | None = None,
        client_message_id: str | None = None,
        partial: bool = False,
    ) -> Message:
        """Append a message. Raises Conflict when ``client_message_id`` was used before."""
        msg = Message(
            id=new_id("msg"),
            thread_id=thread_id,
            user_id=user_id,
            role=role,
            content=content,
            created_at=now_ms(),
            run_id=run_id,
            client_message_id=client_message_id,
            partial=partial,
        )
        try:
            await self._insert_message(msg)
        except IntegrityError:
            raise Conflict("this client_message_id was used before") from None
        return msg

    async def _insert_message(self, msg: Message) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                insert(messages).values(
                    id=msg.id,
                    thread_id=msg.thread_id,
                    user_id=msg.user_id,
                    role=msg.role,
                    content=msg.content,
                    run_id=msg.run_id,
                    client_message_id=msg.client_message_id,
                    partial=msg.partial,
                    created_at=msg.created_at,
                )
            )
            await conn.execute(
                update(threads)
                .where(threads.c.id == msg.thread_id)
                .values(updated_at=msg.created_at)
            )

    async def message_by_client_id(self, user_id: str, client_message_id: str) -> Message | None:
        async with self._db.connect() as conn:
            row = (
                await conn.execute(
                    select(messages).where(
                        messages.c.user_id == user_id,
                        messages.c.client_message_id == client_message_id,
                    )
                )
            ).first()
        return _message(row) if row else None

    async def set_message_run(self, message_id: str, run_id: str) -> None:
        async with self._db.begin() as conn:
            await conn.execute(
                update(messages).where(messages.c.id == message_id).values(run_id=run_id)
            )

    async def messages_of(self, thread_id: str, limit: int = 1000) -> list[Message]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(messages)
                .where(messages.c.thread_id == thread_id)
                .order_by(messages.c.pk)
                .limit(limit)
            )
            return [_message(r) for r in rows]
