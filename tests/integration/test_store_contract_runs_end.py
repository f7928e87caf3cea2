"""The store's contract for a run's end, on SQLite and PostgreSQL (each test runs on both).

A run's end is one write on both databases, but not the same statements: on PostgreSQL the reply,
the thread's touch, the run's end and the pick of the thread's next run are one statement whose
parts all see the rows as they were before it (store/run_log.py). What a caller sees must not
differ: the next run is the one whose turn it is now that this one has ended, and the end
takes effect whole or not at all.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.store.records import Message
from runwire.store.store import Store


async def a_thread_of_three(store: Store) -> tuple[str, str, list[str]]:
    """A user's thread with three runs in arrival order, the first claimed (running)."""
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    run_ids = [new_id("run") for _ in range(3)]
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="one", run_id=run_ids[0], epoch=new_epoch()
    )
    for run_id, text in zip(run_ids[1:], ("two", "three"), strict=True):
        await store.conversations.accept(
            user_id=user.id, thread=thread, content=text, run_id=run_id, epoch=new_epoch()
        )
    assert await store.runs.claim(run_ids[0], now=now_ms()) is not None
    return user.id, thread.id, run_ids


def reply_to(user_id: str, thread_id: str, run_id: str) -> Message:
    return Message(
        id=new_id("msg"),
        thread_id=thread_id,
        user_id=user_id,
        role="assistant",
        content="the answer",
        created_at=now_ms(),
        run_id=run_id,
    )


async def test_a_runs_end_names_the_thread_run_whose_turn_it_now_is(store: Store) -> None:
    user_id, thread_id, (first, second, third) = await a_thread_of_three(store)
    # The third is stopped while queued: closed out of turn, the first still runs ahead of the
    # second, so no run's turn comes.
    assert await store.runs.claim(third, now=now_ms(), in_order=False) is not None
    assert (
        await store.runs.finish(
            third, "cancelled", last_seq=2, started_at=None, thread_id=thread_id
        )
        is None
    )
    # The first ends with its reply: the second's turn, though the statement that says so is
    # the one that ends the first.
    reply = reply_to(user_id, thread_id, first)
    following = await store.runs.finish(
        first, "completed", last_seq=9, started_at=1, reply=reply, thread_id=thread_id
    )
    assert following == second
    record = await store.runs.by_id(first)
    assert record is not None and (record.status, record.last_seq) == ("completed", 9)
    assert (await store.conversations.messages_of(thread_id))[-1] == reply
    thread = await store.conversations.thread(user_id, thread_id)
    assert thread is not None and thread.updated_at >= reply.created_at
    # Without the thread: nothing is looked for.
    assert await store.runs.claim(second, now=now_ms()) is not None
    assert await store.runs.finish(second, "completed", last_seq=3, started_at=None) is None
    assert await store.runs.unfinished_on_thread(thread_id) == []


async def test_runs_ending_at_once_on_one_thread_each_end_and_the_next_is_named(
    store: Store,
) -> None:
    # The first ends beside the stop of the third (both in one batch of writes, or two): the
    # second's turn comes with whichever end comes last, and is named once; each end is kept.
    user_id, thread_id, (first, second, third) = await a_thread_of_three(store)
    assert await store.runs.claim(third, now=now_ms(), in_order=False) is not None
    ends = await asyncio.gather(
        store.runs.finish(
            first,
            "completed",
            last_seq=4,
            started_at=None,
            reply=reply_to(user_id, thread_id, first),
            thread_id=thread_id,
        ),
        store.runs.finish(third, "cancelled", last_seq=1, started_at=None, thread_id=thread_id),
    )
    assert sorted(ends, key=str) == [None, second]
    assert await store.runs.unfinished_on_thread(thread_id) == [second]


async def test_a_runs_end_that_fails_leaves_nothing_of_it(store: Store) -> None:
    user_id, thread_id, (first, _, _) = await a_thread_of_three(store)
    taken = reply_to(user_id, thread_id, first)
    await store.runs.finish(first, "completed", last_seq=1, started_at=None, reply=taken)
    # A second end that reuses the reply's id fails whole: the run keeps its first end, and
    # the thread its one reply.
    with pytest.raises(IntegrityError):
        await store.runs.finish(
            first, "failed", last_seq=5, started_at=None, reply=taken, thread_id=thread_id
        )
    record = await store.runs.by_id(first)
    assert record is not None and (record.status, record.last_seq) == ("completed", 1)
    assert [m.id for m in await store.conversations.messages_of(thread_id)].count(taken.id) == 1


async def test_a_verdict_is_written_with_the_runs_end_and_an_end_without_one_keeps_it(
    store: Store,
) -> None:
    user_id, thread_id, (first, second, _) = await a_thread_of_three(store)
    verdict = {"score": 0.5, "outcome": "replaced", "reasons": [{"reason": "unsupported_figure"}]}
    reply = reply_to(user_id, thread_id, first)
    following = await store.runs.finish(
        first,
        "completed",
        last_seq=9,
        started_at=1,
        reply=reply,
        thread_id=thread_id,
        quality=verdict,
    )
    assert following == second
    record = await store.runs.get(user_id, first)
    assert record is not None
    assert record.public()["quality"] == verdict
    # Kept before the end (by set_quality): an end that keeps nothing leaves it as it was.
    assert await store.runs.claim(second, now=now_ms()) is not None
    await store.runs.set_quality(second, {"score": 1.0, "outcome": "passed", "reasons": []})
    await store.runs.finish(second, "failed", last_seq=2, started_at=None, error_code="x")
    kept = await store.runs.get(user_id, second)
    assert kept is not None and kept.status == "failed"
    assert kept.public()["quality"] == {"score": 1.0, "outcome": "passed", "reasons": []}
    assert (await store.runs.quality_metrics(user_id))["checked"] == 2
