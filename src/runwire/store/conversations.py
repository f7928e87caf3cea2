"""Conversations: threads and their messages."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_id
from runwire.domain.run_status import RunStatus
from runwire.errors import Conflict
from runwire.store.acceptance import Acceptance, accept_statement
from runwire.store.database import Database, Prepared
from runwire.store.message_rows import (
    insert_message_statement,
    message_from_row,
    message_params,
    oldest_first,
    touch_thread_statement,
)
from runwire.store.records import Message, ThreadRecord
from runwire.store.run_order import unfinished_statement
from runwire.store.schema import messages, runs, threads, usage_versions, users
from runwire.store.usage_versions import UsageVersions

__all__ = ["Acceptance", "Conversations"]

TITLE_CHARS = 80


_THREAD_COLUMNS = (
    threads.c.id,
    threads.c.user_id,
    threads.c.title,
    threads.c.created_at,
    threads.c.updated_at,
)
"""In the order of :class:`ThreadRecord`'s fields."""


class Conversations:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._unfinished = db.prepare(unfinished_statement())
        self._thread = db.prepare(
            select(*_THREAD_COLUMNS).where(
                threads.c.id == bindparam("thread_id"), threads.c.user_id == bindparam("user_id")
            )
        )
        # Read by every run as it starts (see ``turn``).
        self._turn_message = db.prepare(
            select(
                messages.c.pk,
                messages.c.thread_id,
                messages.c.content,
                # The user's usage version, in the same read: the run's first read of their
                # data then needs no read of its own to know whether a cached view is current.
                select(usage_versions.c.version)
                .where(usage_versions.c.user_id == messages.c.user_id)
                .scalar_subquery(),
            ).where(messages.c.id == bindparam("message_id"))
        )
        latest = (
            select(messages.c.role, messages.c.content)
            .where(messages.c.thread_id == bindparam("thread_id"))
            .order_by(messages.c.pk.desc())
            .limit(bindparam("turns"))
        )
        self._recent = db.prepare(latest)
        self._turn_before = db.prepare(latest.where(messages.c.pk < bindparam("pk")))
        # The user's row, locked for the rest of the accept transaction: accepts for one user
        # take turns, each counting the runs of those before it (the per-user run cap). NO KEY
        # UPDATE: the inserts that refer to the user (a message, a run) elsewhere do not wait
        # for it. SQLite has one writer at a time anyway: there, nothing to take.
        self._lock_user = (
            db.prepare(
                select(users.c.id)
                .where(users.c.id == bindparam("user_id"))
                .with_for_update(key_share=True)
            )
            if db.dialect == "postgresql"
            else None
        )
        # Compiled once: the accept transaction runs for every message (see Database.prepare).
        self._insert_message = db.prepare(insert_message_statement())
        self._touch_thread = db.prepare(touch_thread_statement())
        self._insert_thread = db.prepare(
            insert(threads).values(
                id=bindparam("t_id"),
                user_id=bindparam("t_user_id"),
                title=bindparam("t_title"),
                created_at=bindparam("t_now"),
                updated_at=bindparam("t_now"),
            )
        )
        self._insert_run = db.prepare(
            insert(runs).values(
                id=bindparam("r_id"),
                thread_id=bindparam("r_thread_id"),
                user_id=bindparam("r_user_id"),
                message_id=bindparam("r_message_id"),
                status=bindparam("r_status"),
                started_at=bindparam("r_started_at"),
                created_at=bindparam("r_now"),
                last_seq=0,
                epoch=bindparam("r_epoch"),
            )
        )
        self._usage_version = UsageVersions(db).current
        # PostgreSQL: after the lock, the rest of an accept as one statement (one round trip
        # instead of four; store/acceptance.py), keyed by whether the thread exists already.
        self._at_once: dict[bool, Prepared] | None = None
        if db.dialect == "postgresql":
            message = insert_message_statement()
            self._at_once = {
                True: db.prepare(accept_statement(message, touch_thread_statement())),
                False: db.prepare(accept_statement(message, None)),
            }

    async def accept(
        self,
        *,
        user_id: str,
        thread: ThreadRecord | None,
        content: str,
        run_id: str,
        epoch: str,
        client_message_id: str | None = None,
    ) -> tuple[ThreadRecord, Message]:
        """Store a user's message and the run it starts (queued, under ``epoch``), in one
        transaction. See :meth:`accept_run`."""
        accepted = await self.accept_run(
            user_id=user_id,
            thread=thread,
            content=content,
            run_id=run_id,
            epoch=epoch,
            client_message_id=client_message_id,
        )
        return accepted.thread, accepted.message

    async def accept_run(
        self,
        *,
        user_id: str,
        thread: ThreadRecord | None,
        content: str,
        run_id: str,
        epoch: str,
        client_message_id: str | None = None,
        claim_at: int | None = None,
        check: Callable[[list[tuple[str, str]]], None] | None = None,
        new_thread_id: str | None = None,
    ) -> Acceptance:
        """Store a user's message and the run it starts (under ``epoch``), in one transaction.

        ``thread`` None starts a new thread titled after the message, with the id
        ``new_thread_id`` if given (a client's own id for it, as AG-UI's ``threadId``), else a new
        one. A ``client_message_id`` used before raises Conflict and stores nothing (not even the
        new thread); so does a ``new_thread_id`` some thread took meanwhile (``thread_busy``).
        With ``claim_at`` the run is also claimed in that transaction (``running``, started then) if nothing
        earlier of its thread is unfinished (what ``run_order.claim_statement`` decides); the caller
        holds its lease. Otherwise it stays ``queued``.

        ``check`` is called in the transaction with the user's unfinished runs before this one
        as ``(run_id, thread_id)`` in the order they start; it raises to refuse the message (the
        caps and policies of the chat service), and nothing is stored then (on PostgreSQL it is
        called after the statement that stores them, which is rolled back: store/acceptance.py).
        The acceptance carries the user's usage version as the transaction read it.
        """
        now = now_ms()
        if thread is None:
            title = " ".join(content.split())[:TITLE_CHARS] or "New conversation"
            thread = ThreadRecord(
                id=new_thread_id or new_id("thr"),
                user_id=user_id,
                title=title,
                created_at=now,
                updated_at=now,
            )
            new_thread = True
        else:
            new_thread = False
        msg = Message(
            id=new_id("msg"),
            thread_id=thread.id,
            user_id=user_id,
            role="user",
            content=content,
            created_at=now,
            run_id=run_id,
            client_message_id=client_message_id,
        )
        thread_id, title = thread.id, thread.title
        unfinished, usage_version = self._unfinished, self._usage_version

        insert_thread, insert_message, insert_run = (
            self._insert_thread,
            self._insert_message,
            self._insert_run,
        )
        touch_thread, lock_user = self._touch_thread, self._lock_user
        at_once = None if self._at_once is None else self._at_once[not new_thread]
        params = {
            **message_params(msg),
            "thread_id": thread_id,
            "user_id": user_id,
            "t_title": title,
            "now": now,
            "r_id": run_id,
            "r_claim": claim_at is not None,
            "r_started_at": claim_at,
            "r_epoch": epoch,
        }

        def accept_at_once(conn: Connection) -> tuple[bool, list[str], int]:
            # The user's row first, locked until commit (the user's accepts take turns, each
            # counting the runs of those before it: the cap), then one statement, whose snapshot
            # is taken after the wait: it sees the runs of the accept it waited for. Its touch
            # locks the thread's row after the user's, as the statements below do.
            assert lock_user is not None and at_once is not None
            lock_user.run(conn, user_id=user_id)
            rows = list(at_once.run(conn, **params))
            mine = [(run, on) for _, _, run, on in rows if run is not None]
            if check is not None:
                check(mine)  # a refusal rolls the statement back: nothing is stored
            status, version = rows[0][0], rows[0][1]
            return (
                status == RunStatus.RUNNING,
                [r for r, on in mine if on == thread_id],
                version or 0,
            )

        def accept(conn: Connection) -> tuple[bool, list[str], int]:
            # SQLite: one writer at a time, so the user's accepts take turns anyway, each
            # counting the unfinished runs of those before it (the cap); no row to lock.
            if not new_thread:
                touch_thread.run(conn, thread_id=thread_id, now=now)
            mine = [(run, on) for run, on in unfinished.run(conn, user_id=user_id)]
            if check is not None:
                check(mine)
            waiting = [run for run, on in mine if on == thread_id]
            if new_thread:
                insert_thread.run(conn, t_id=thread_id, t_user_id=user_id, t_title=title, t_now=now)
            insert_message.run(conn, **message_params(msg))
            # Stored already claimed when nothing of its thread is unfinished: what the claim
            # statement would decide, known here without it. The thread is new (nobody else
            # knows it) or its row is locked above, so no accept on it can come in between,
            # and nothing else makes a run of it unfinished.
            claimed = claim_at is not None and not waiting
            insert_run.run(
                conn,
                r_id=run_id,
                r_thread_id=thread_id,
                r_user_id=user_id,
                r_message_id=msg.id,
                r_status=RunStatus.RUNNING if claimed else RunStatus.QUEUED,
                r_started_at=claim_at if claimed else None,
                r_now=now,
                r_epoch=epoch,
            )
            return claimed, waiting, usage_version(conn, user_id)

        try:
            # Gathered: when many messages come at once (a burst of users asking their first
            # question), they are stored in one transaction rather than one each (half the
            # CPU a message on SQLite: docs/benchmarks.md, "First event of a burst").
            claimed, waiting, version = await self._db.write(
                accept if at_once is None else accept_at_once, gather=True
            )
        except IntegrityError:
            if new_thread_id is not None and await self.thread_exists(new_thread_id):
                # Two requests started a thread of this id at once and the other one won.
                raise Conflict(
                    "another request started this thread at the same moment; send it again",
                    code="thread_busy",
                ) from None
            raise Conflict("this client_message_id was used before") from None
        return Acceptance(thread, msg, claimed, waiting, version)

    async def thread_exists(self, thread_id: str) -> bool:
        """Whether any user has a thread ``thread_id``: only to refuse a client's id for a new
        thread that is taken; never to tell a caller whose it is."""
        async with self._db.connect() as conn:
            row = (
                await conn.execute(select(threads.c.id).where(threads.c.id == thread_id))
            ).first()
        return row is not None

    async def thread(self, user_id: str, thread_id: str) -> ThreadRecord | None:
        """The thread if it exists *and* belongs to ``user_id``; otherwise None."""
        row = await self._db.read(
            lambda conn: self._thread.run(conn, thread_id=thread_id, user_id=user_id).first()
        )
        return ThreadRecord(*row) if row else None

    async def threads_of(self, user_id: str, limit: int = 200) -> list[ThreadRecord]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(threads)
                .where(threads.c.user_id == user_id)
                .order_by(threads.c.updated_at.desc(), threads.c.created_at.desc())
                .limit(limit)
            )
            return [ThreadRecord(**r._mapping) for r in rows]

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
        return message_from_row(row) if row else None

    async def messages_of(self, thread_id: str, limit: int = 1000) -> list[Message]:
        async with self._db.connect() as conn:
            rows = await conn.execute(
                select(messages)
                .where(messages.c.thread_id == thread_id)
                .order_by(messages.c.pk)
                .limit(limit)
            )
            return [message_from_row(r) for r in rows]

    async def recent(self, thread_id: str, turns: int) -> list[tuple[str, str]]:
        """The thread's last ``turns`` messages as ``(role, content)``, oldest first: the
        history a run accepted on it now is given (only those are read, however long the
        thread)."""

        def read(conn: Connection) -> list[tuple[str, str]]:
            return oldest_first(self._recent.run(conn, thread_id=thread_id, turns=turns))

        return await self._db.read(read)

    async def turn(self, message_id: str, turns: int) -> tuple[str, list[tuple[str, str]], int]:
        """The text of the message that started a run, the ``turns`` messages of its thread
        before it as ``(role, content)``, oldest first, and its user's usage version (0 before
        any data): what the run's agent is given. Read when the run starts, so a run queued
        behind another sees that one's answer, and the usage version as the run starts."""

        def read(conn: Connection) -> tuple[str, list[tuple[str, str]], int]:
            row = self._turn_message.run(conn, message_id=message_id).first()
            if row is None:
                return "", [], 0
            pk, thread_id, content, version = row
            earlier = self._turn_before.run(conn, thread_id=thread_id, pk=pk, turns=turns)
            return content, oldest_first(earlier), version or 0

        return await self._db.read(read)
