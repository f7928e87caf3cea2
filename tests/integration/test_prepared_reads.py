"""The hot reads a message or a run makes, on an SQLite file's own connections, run on the
``sqlite3`` driver itself (store/prepared.py): each must give back exactly what SQLAlchemy's
execution of the same statement gives, the values' types included (ints, None, floats, text
holding JSON), whether read as rows, by ``first`` or by ``scalar``.

Both ways run on the same connection, in the same transaction: the driver's through
``Prepared.run``, SQLAlchemy's through ``exec_driver_sql`` of the same text and parameters (what
``Prepared.run`` does where the driver is not SQLite's own).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, update
from sqlalchemy.engine import CursorResult

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.store.database import Prepared
from runwire.store.run_order import claim_statement, next_statement, unfinished_statement
from runwire.store.schema import runs
from runwire.store.store import Store

pytestmark = pytest.mark.integration

Case = tuple[str, Prepared, dict[str, Any]]
Typed = list[tuple[type, Any]]


def _typed(values: Any) -> Typed:
    return [(type(value), value) for value in values]


def _rows(result: Any) -> list[Typed]:
    return [_typed(row) for row in result]


def _first(result: Any) -> Typed | None:
    row = result.first()
    return None if row is None else _typed(row)


def _scalar(result: Any) -> tuple[type, Any]:
    value = result.scalar()
    return (type(value), value)


READS: tuple[Callable[[Any], Any], ...] = (_rows, _first, _scalar)


def _both_ways(conn: Connection, case: Case, read: Callable[[Any], Any], undo: bool) -> list[Any]:
    """``case`` run through the driver, then through SQLAlchemy, each result read by ``read``;
    ``undo``: the statement writes, and each run is rolled back after."""
    name, statement, values = case
    answers = []
    for through_driver in (True, False):
        nested = conn.begin_nested() if undo else None
        if through_driver:
            result = statement.run(conn, **values)
            assert not isinstance(result, CursorResult), f"{name}: not run on the driver"
        else:
            result = conn.exec_driver_sql(statement.sql, statement.parameters(**values))
        answers.append(read(result))
        if nested is not None:
            nested.rollback()
    return answers


def _compare(conn: Connection, cases: list[Case], *, undo: bool = False) -> list[str]:
    """Assert that each case answers alike both ways, read every way; the names of the cases
    that gave rows (so a case meant to find a row cannot pass by finding none either way)."""
    with_rows = []
    for case in cases:
        for read in READS:
            driver, alchemy = _both_ways(conn, case, read, undo)
            assert driver == alchemy, f"{case[0]}, read by {read.__name__}"
            if read is _rows and driver:
                with_rows.append(case[0])
    return with_rows


async def _a_user_with_runs(store: Store) -> dict[str, Any]:
    """A user with a thread of three runs (one running, two queued, one of them with a quality
    verdict and a model's cost: floats and JSON text) and a second thread of one queued run."""
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    run_ids = [new_id("run") for _ in range(4)]
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="one", run_id=run_ids[0], epoch=new_epoch()
    )
    for run_id, text in zip(run_ids[1:3], ("two", "three"), strict=True):
        await store.conversations.accept(
            user_id=user.id, thread=thread, content=text, run_id=run_id, epoch=new_epoch()
        )
    other, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="elsewhere", run_id=run_ids[3], epoch=new_epoch()
    )
    assert await store.runs.claim(run_ids[0], now=now_ms()) is not None
    verdict = (
        update(runs)
        .where(runs.c.id == run_ids[1])
        .values(
            quality_score=0.75,
            quality_outcome="replaced",
            quality_reasons='[{"reason": "vague", "message": "it said \\"maybe\\""}]',
            model_cost_usd=0.0125,
            model_prompt_tokens=1200,
        )
    )
    await store.db.write(lambda conn: conn.execute(verdict))
    return {"user": user.id, "thread": thread.id, "other": other.id, "runs": run_ids}


async def test_the_hot_reads_on_the_driver_answer_as_sqlalchemy_would(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'runwire.db'}"
    async with Store.open(url, migrate=True) as store:
        made = await _a_user_with_runs(store)
        user, thread, other, run_ids = made["user"], made["thread"], made["other"], made["runs"]
        # Private parts: the statements as the store prepared them (the others are built from
        # the public statements of store/run_order.py).
        versions = store.usage._versions  # type: ignore[attr-defined]
        conversations: Any = store.conversations
        await store.db.write(lambda conn: versions.bump(conn, user))
        db = store.db

        # In the writer's transaction: what accepting a message and ending a run read.
        in_writes: list[Case] = [
            ("unfinished runs", db.prepare(unfinished_statement()), {"user_id": user}),
            ("no unfinished runs", db.prepare(unfinished_statement()), {"user_id": "usr_0"}),
            ("usage version", versions._current, {"user_id": user}),
            ("no usage version", versions._current, {"user_id": "usr_0"}),
            ("no run's turn", db.prepare(next_statement()), {"thread_id": thread}),
            ("the next run", db.prepare(next_statement()), {"thread_id": other}),
        ]
        found = await db.write(lambda conn: _compare(conn, in_writes))
        assert found == ["unfinished runs", "usage version", "the next run"]

        # A claim writes and gives the run's whole row back.
        claims: list[Case] = [
            (
                "claimed out of turn",
                db.prepare(claim_statement(in_order=False)),
                {"run_id": run_ids[1], "now": 1_700_000_000_123},
            ),
            ("not its turn", db.prepare(claim_statement()), {"run_id": run_ids[1], "now": 1}),
            ("claimed", db.prepare(claim_statement()), {"run_id": run_ids[3], "now": 5}),
        ]
        found = await db.write(lambda conn: _compare(conn, claims, undo=True))
        assert found == ["claimed out of turn", "claimed"]

        # On the reader's connection (Database.read): what a run reads as it starts, and a
        # message sent to a thread it names.
        message = (await store.conversations.messages_of(thread))[-1].id
        on_reader: list[Case] = [
            ("thread", conversations._thread, {"thread_id": thread, "user_id": user}),
            ("not theirs", conversations._thread, {"thread_id": thread, "user_id": "usr_0"}),
            ("turn's message", conversations._turn_message, {"message_id": message}),
            (
                "turn's history",
                conversations._turn_before,
                {"thread_id": thread, "pk": 10**9, "turns": 5},
            ),
            ("usage version, read", versions._current, {"user_id": user}),
        ]
        found = await db.read(lambda conn: _compare(conn, on_reader))
        assert found == ["thread", "turn's message", "turn's history", "usage version, read"]
