"""The store's contract, one suite on SQLite and PostgreSQL (each test runs on both).

Each repository: accounts, conversations, the run log and usage. Besides the plain flows, what
differs between the two databases when nobody looks: integer sizes at their limits, text at its
column's length and beyond the Basic Multilingual Plane, the order of rows written in one
millisecond, and concurrent writers (SQLite's are queued by the store's write lock, PostgreSQL's
really run at once).
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

import orjson
import pytest
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from runwire.agents import analytics
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_epoch, new_id
from runwire.domain.usage import RecordsNotRead, UsageRecord
from runwire.errors import Conflict
from runwire.events import EventType, RunEvent
from runwire.events.model import MAX_SEQ
from runwire.store.accounts import RefreshOutcome
from runwire.store.records import Message
from runwire.store.schema import run_events, threads, usage_batches, usage_summaries, users
from runwire.store.store import Store
from runwire.store.summary import UsageSummary
from runwire.store.usage_versions import UsageVersions
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample
from runwire.usage.validation import MAX_TOKENS
from tests.databases import row_held
from tests.timing import unit

FAR_FUTURE_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last RFC 3339 instant
WIDE_TEXT = "na\u00efve \U0001d518\U0001d52b\U0001d526 \U0001f600 \u05e9\u05dc\u05d5\u05dd \u200d ok"  # accents, astral plane, emoji, RTL, ZWJ


async def a_user(store: Store) -> str:
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "hash")
    return user.id


def event(run_id: str, thread_id: str, seq: int, epoch: str, **data: object) -> RunEvent:
    kind = EventType.TEXT_DELTA if data else EventType.AGENT_STARTED
    return RunEvent(kind, run_id, thread_id, seq, "supervisor", "ts", dict(data), epoch=epoch)


# Writes


async def test_writes_made_at_once_each_take_effect_whole_or_not_at_all(store: Store) -> None:
    # The ones queued together share one transaction (group commit, on both databases): a
    # failing one must not take the others down, nor leave its own first statement behind.
    user_id = await a_user(store)

    def add_thread(thread_id: str, *, fail: bool) -> object:
        def job(conn: Connection) -> str:
            row = {"id": thread_id, "user_id": user_id, "title": "t", "created_at": 1}
            conn.execute(insert(threads).values(**row, updated_at=1))
            if fail:
                conn.execute(insert(threads).values(**row, updated_at=2))  # the same id again
            return thread_id

        return store.db.write(job)

    results = await asyncio.gather(
        *(add_thread(f"thr_{i}", fail=i % 2 == 1) for i in range(6)), return_exceptions=True
    )
    assert results[0::2] == ["thr_0", "thr_2", "thr_4"]
    assert all(isinstance(r, IntegrityError) for r in results[1::2])
    kept = await store.conversations.threads_of(user_id)
    assert sorted(t.id for t in kept) == ["thr_0", "thr_2", "thr_4"]


async def test_a_write_whose_caller_is_cancelled_mid_transaction_still_ends_whole(
    store: Store,
) -> None:
    # The transaction is under way when its caller is cancelled: it runs to its end (its job
    # takes effect), and the writes queued behind it are not held up or lost.
    user_id = await a_user(store)

    def add_thread(thread_id: str) -> object:
        def job(conn: Connection) -> str:
            row = {"id": thread_id, "user_id": user_id, "title": "t", "created_at": 1}
            conn.execute(insert(threads).values(**row, updated_at=1))
            return thread_id

        return store.db.write(job)

    first = asyncio.ensure_future(add_thread("thr_first"))
    await asyncio.sleep(0)  # its transaction has started (on SQLite it has also ended)
    behind = [asyncio.ensure_future(add_thread(f"thr_{i}")) for i in range(3)]
    if store.db.dialect == "postgresql":
        assert not first.done()
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    else:  # SQLite writes on the loop's thread: nothing is left to cancel
        assert first.done() and first.result() == "thr_first"
    assert await asyncio.gather(*behind) == ["thr_0", "thr_1", "thr_2"]
    kept = await store.conversations.threads_of(user_id)
    assert sorted(t.id for t in kept) == ["thr_0", "thr_1", "thr_2", "thr_first"]


async def test_a_read_sees_every_write_committed_before_it_and_cannot_write(
    store: Store,
) -> None:
    # On an SQLite file, reads run on the event loop over a connection of their own: each must
    # see what the writer thread committed since the last one, and none may write.
    user_id = await a_user(store)
    conversations = store.conversations
    for n in range(3):
        row = {"id": f"thr_{n}", "user_id": user_id, "title": f"t{n}", "created_at": n}

        def add(conn: Connection, row: dict[str, object] = row) -> None:
            conn.execute(insert(threads).values(**row, updated_at=row["created_at"]))

        await store.db.write(add)
        seen = await conversations.thread(user_id, f"thr_{n}")
        assert seen is not None and (seen.title, seen.created_at) == (f"t{n}", n)
    assert await conversations.thread("usr_someone_else", "thr_0") is None

    def sneak_a_write(conn: Connection) -> None:
        conn.execute(
            insert(threads).values(
                id="thr_x", user_id=user_id, title="t", created_at=1, updated_at=1
            )
        )

    with pytest.raises(DBAPIError):
        await store.db.read(sneak_a_write)
    assert await conversations.thread(user_id, "thr_x") is None


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("idle", [False, True])
async def test_connections_postgresql_closed_are_replaced_by_the_next_use_after_a_pause(
    store: Store, store_url: str, idle: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A pooled connection is pinged only once it has sat idle; one the server closed meanwhile
    # (it restarted, an administrator ended the session) is then replaced, unseen by the caller.
    # ``idle``: the pause is longer than the threshold (made 0 here, not waited out); else
    # shorter (the threshold made longer than the test: ending the sessions below took more
    # than the real 0.1 s on a loaded machine, and the connections were pinged after all).
    from runwire.store import engine

    monkeypatch.setattr(engine, "_PING_AFTER_IDLE_S", 0.0 if idle else unit(60))
    db = store.db

    def backend_pid(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    before = {await db.read(backend_pid), await db.write(backend_pid)}
    # Every session of this test's database but the one asking (only this test uses it now).
    killer = create_async_engine(store_url)
    try:
        async with killer.connect() as conn:
            await conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    finally:
        await killer.dispose()
    if not idle:
        # Used again at once, not pinged: the statement meets the closed connection and fails,
        # and its pool replaces every connection as old as that one; the next use works.
        with pytest.raises(DBAPIError):
            await db.read(backend_pid)
        with pytest.raises(DBAPIError):
            await db.write(backend_pid)
    assert await db.read(backend_pid) not in before
    assert await db.write(backend_pid) not in before


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_postgresql_hands_out_the_connection_used_last(store: Store) -> None:
    # Under load the same few connections stay in use, each too briefly idle to be pinged
    # (three round trips); the pool holds others, idle since the store opened.
    db = store.db

    async def backend_pid(conn: AsyncConnection) -> int:
        return int((await conn.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())

    async with db.connect() as first, db.connect() as second, db.connect() as third:
        held = [await backend_pid(c) for c in (first, second, third)]
    # Given back third, second, first: the first is handed out next, again and again.
    for _ in range(3):
        async with db.connect() as conn:
            assert await backend_pid(conn) == held[0]


# Accounts


async def test_accounts_keep_users_and_refuse_a_taken_email(store: Store) -> None:
    accounts = store.accounts
    user = await accounts.create_user(new_id("usr"), "ada@example.com", "h" * 200)
    assert await accounts.user_by_email("ada@example.com") == user
    assert await accounts.user_by_id(user.id) == user
    assert await accounts.user_by_email("nobody@example.com") is None
    with pytest.raises(Conflict):
        await accounts.create_user(new_id("usr"), "ada@example.com", "h")
    # Concurrent sign-ups with one address: one account, one refusal.
    results = await asyncio.gather(
        *(accounts.create_user(new_id("usr"), "bob@example.com", "h") for _ in range(4)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, Conflict) for r in results) == 3
    assert (await accounts.user_by_email("bob@example.com")) in results


async def test_refresh_tokens_rotate_once_expire_and_reuse_revokes(store: Store) -> None:
    accounts, user_id = store.accounts, await a_user(store)
    later = now_ms() + 60_000
    await accounts.start_family("fam_1", user_id, "t1", later)
    assert await accounts.rotate("unknown", "x", later) == (RefreshOutcome.UNKNOWN, None, None)
    assert await accounts.rotate("t1", "t2", later) == (RefreshOutcome.OK, user_id, "fam_1")
    assert await accounts.family_active("fam_1", user_id)
    assert not await accounts.family_active("fam_1", "usr_other")
    assert await accounts.rotate("t1", "t3", later) == (RefreshOutcome.REUSED, user_id, "fam_1")
    assert not await accounts.family_active("fam_1", user_id)
    assert await accounts.rotate("t2", "t4", later) == (RefreshOutcome.REVOKED, user_id, "fam_1")

    await accounts.start_family("fam_2", user_id, "old", now_ms() - 1)
    assert (await accounts.rotate("old", "new", later))[0] == RefreshOutcome.EXPIRED
    await accounts.start_family("fam_3", user_id, "live", later)
    await accounts.revoke_family("fam_3", "logout")
    assert (await accounts.rotate("live", "new3", later))[0] == RefreshOutcome.REVOKED


async def test_a_password_change_ends_the_users_other_sessions(store: Store) -> None:
    accounts, user_id = store.accounts, await a_user(store)
    other_user = await a_user(store)
    later = now_ms() + 60_000
    for family, owner in (("fam_here", user_id), ("fam_p1", user_id), ("fam_p2", user_id)):
        await accounts.start_family(family, owner, f"t_{family}", later)
    await accounts.start_family("fam_ended", user_id, "t_ended", later)
    await accounts.revoke_family("fam_ended", "logout")
    await accounts.start_family("fam_theirs", other_user, "t_theirs", later)

    ended = await accounts.change_password(user_id, "new-hash", keep_family="fam_here")
    assert ended == ["fam_p1", "fam_p2"]  # not the kept one, nor one ended before
    user = await accounts.user_by_id(user_id)
    assert user is not None and user.password_hash == "new-hash"
    assert await accounts.family_active("fam_here", user_id)
    assert not await accounts.family_active("fam_p1", user_id)
    assert await accounts.family_active("fam_theirs", other_user)
    assert (await accounts.rotate("t_fam_p2", "x", later))[0] == RefreshOutcome.REVOKED
    assert await accounts.change_password(user_id, "h2", keep_family=None) == ["fam_here"]


async def test_one_refresh_token_presented_at_once_rotates_once(store: Store) -> None:
    accounts, user_id = store.accounts, await a_user(store)
    later = now_ms() + 60_000
    await accounts.start_family("fam_c", user_id, "shared", later)
    outcomes = await asyncio.gather(
        *(accounts.rotate("shared", f"next_{i}", later) for i in range(4))
    )
    assert sorted(o[0] for o in outcomes).count(RefreshOutcome.OK) == 1
    # Every other presentation is a reuse, which revokes the family the winner rotated into.
    assert {o[0] for o in outcomes} - {RefreshOutcome.OK} <= {
        RefreshOutcome.REUSED,
        RefreshOutcome.REVOKED,
    }
    assert not await accounts.family_active("fam_c", user_id)


async def test_a_ticket_is_taken_once_even_by_concurrent_takers(store: Store) -> None:
    accounts, user_id = store.accounts, await a_user(store)
    await accounts.start_family("fam_t", user_id, "rt", now_ms() + 60_000)
    await accounts.add_ticket("tk", user_id, "fam_t", now_ms() + 60_000)
    taken = await asyncio.gather(*(accounts.take_ticket("tk") for _ in range(4)))
    assert taken.count((user_id, "fam_t")) == 1 and taken.count(None) == 3
    await accounts.add_ticket("expired", user_id, "fam_t", now_ms() - 1)
    assert await accounts.take_ticket("expired") is None
    assert await accounts.take_ticket("never") is None


# Conversations


async def test_accepted_messages_keep_their_text_and_order(store: Store) -> None:
    conversations, user_id = store.conversations, await a_user(store)
    long_text = (WIDE_TEXT + " ") * (32_000 // (len(WIDE_TEXT) + 1))
    thread, first = await conversations.accept(
        user_id=user_id,
        thread=None,
        content=long_text,
        run_id=new_id("run"),
        epoch=new_epoch(),
        client_message_id="c" * 100,  # the longest the protocol lets through
    )
    assert thread.title == " ".join(long_text.split())[:80]
    later = []
    for i in range(20):  # many in one millisecond: the order is still the order of writing
        _, msg = await conversations.accept(
            user_id=user_id, thread=thread, content=f"m{i}", run_id=new_id("run"), epoch="e"
        )
        later.append(msg)
    stored = await conversations.messages_of(thread.id)
    assert [m.content for m in stored] == [long_text] + [f"m{i}" for i in range(20)]
    assert stored[0] == first and stored[1:] == later
    assert await conversations.message_by_client_id(user_id, "c" * 100) == first
    found = await conversations.thread(user_id, thread.id)
    assert found is not None and (found.title, found.created_at) == (
        thread.title,
        thread.created_at,
    )
    assert found.updated_at >= later[-1].created_at
    assert await conversations.thread("usr_other", thread.id) is None
    runs = await store.runs.runs_of_thread(thread.id)
    assert len(runs) == 21 and {r.status for r in runs} == {"queued"}


async def test_a_repeated_client_message_id_stores_nothing_even_when_sent_at_once(
    store: Store,
) -> None:
    conversations, user_id = store.conversations, await a_user(store)

    async def send() -> object:
        return await conversations.accept(
            user_id=user_id,
            thread=None,
            content="same",
            run_id=new_id("run"),
            epoch=new_epoch(),
            client_message_id="once",
        )

    results = await asyncio.gather(*(send() for _ in range(4)), return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1 and sum(isinstance(r, Conflict) for r in results) == 3
    # The losers' new threads were rolled back with their messages.
    threads = await conversations.threads_of(user_id)
    assert [t.id for t in threads] == [winners[0][0].id]  # type: ignore[index]


async def test_messages_sent_at_once_are_each_kept_and_each_refusal_reaches_its_own_sender(
    store: Store,
) -> None:
    # A burst of users asking at once: their messages are stored together (one transaction on
    # SQLite), and one that is refused there (a client_message_id used before, a run cap) is
    # refused to its sender alone; the others are kept, their runs claimed as they asked.
    conversations = store.conversations
    users = [await a_user(store) for _ in range(8)]
    await conversations.accept(
        user_id=users[3],
        thread=None,
        content="earlier",
        run_id=new_id("run"),
        epoch=new_epoch(),
        client_message_id="used",
    )

    def capped(mine: list[tuple[str, str]]) -> None:
        raise Conflict("you already have 0 runs in progress", code="too_many_runs")

    async def ask(n: int, user_id: str) -> tuple[str, str]:
        run_id = new_id("run")
        accepted = await conversations.accept_run(
            user_id=user_id,
            thread=None,
            content=f"question {n}",
            run_id=run_id,
            epoch=new_epoch(),
            client_message_id="used" if n == 3 else f"fresh-{n}",
            claim_at=now_ms(),
            check=capped if n == 5 else None,
        )
        assert accepted.claimed and accepted.message.run_id == run_id
        return accepted.thread.id, run_id

    results = await asyncio.gather(
        *(ask(n, u) for n, u in enumerate(users)), return_exceptions=True
    )
    refused = {n: r for n, r in enumerate(results) if isinstance(r, BaseException)}
    assert set(refused) == {3, 5}, results
    assert isinstance(refused[3], Conflict) and refused[3].code == "conflict"
    assert isinstance(refused[5], Conflict) and refused[5].code == "too_many_runs"
    for n, result in enumerate(results):
        if n in refused:
            continue
        assert isinstance(result, tuple)
        thread_id, run_id = result
        [message] = await conversations.messages_of(thread_id)
        assert (message.content, message.run_id) == (f"question {n}", run_id)
    assert len(await conversations.threads_of(users[3])) == 1  # its earlier one only
    assert await conversations.threads_of(users[5]) == []
    running = set(await store.runs.running_ids())
    assert running == {r[1] for r in results if isinstance(r, tuple)}


async def test_a_thread_named_by_its_client_is_started_once_whoever_races_for_the_id(
    store: Store,
) -> None:
    conversations = store.conversations
    users = [await a_user(store) for _ in range(3)]
    assert not await conversations.thread_exists("client-thread-1")

    async def start(user_id: str) -> object:
        accepted = await conversations.accept_run(
            user_id=user_id,
            thread=None,
            content="hello",
            run_id=new_id("run"),
            epoch=new_epoch(),
            new_thread_id="client-thread-1",
        )
        return accepted.thread

    results = await asyncio.gather(*(start(u) for u in users), return_exceptions=True)
    [winner] = [r for r in results if not isinstance(r, BaseException)]
    assert winner.id == "client-thread-1"  # type: ignore[attr-defined]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(losers) == 2
    assert all(isinstance(r, Conflict) and r.code == "thread_busy" for r in losers)
    assert await conversations.thread_exists("client-thread-1")
    owners = [u for u in users if await conversations.thread(u, "client-thread-1") is not None]
    assert owners == [winner.user_id]  # type: ignore[attr-defined]
    for user_id in users:  # the losers stored nothing
        if user_id not in owners:
            assert await conversations.threads_of(user_id) == []


async def test_threads_come_newest_first(store: Store) -> None:
    conversations, user_id = store.conversations, await a_user(store)
    made = []
    for i in range(3):
        thread, _ = await conversations.accept(
            user_id=user_id, thread=None, content=f"t{i}", run_id=new_id("run"), epoch="e"
        )
        made.append(thread)
        await asyncio.sleep(0.002)  # distinct updated_at: ties have no promised order
    await asyncio.sleep(0.002)
    await conversations.accept(
        user_id=user_id, thread=made[0], content="again", run_id=new_id("run"), epoch="e"
    )
    assert [t.id for t in await conversations.threads_of(user_id)] == [
        made[0].id,
        made[2].id,
        made[1].id,
    ]
    assert [t.id for t in await conversations.threads_of(user_id, limit=1)] == [made[0].id]


# The run log


async def test_events_are_kept_in_seq_order_up_to_the_largest_seq(store: Store) -> None:
    user_id = await a_user(store)
    run_id, epoch = new_id("run"), new_epoch()
    thread, _ = await store.conversations.accept(
        user_id=user_id, thread=None, content="q", run_id=run_id, epoch=epoch
    )
    batch = [event(run_id, thread.id, seq, epoch, delta=WIDE_TEXT) for seq in (3, 1, 2)]
    await store.runs.append_events(batch)
    await store.runs.append_events([])
    huge = event(run_id, thread.id, MAX_SEQ, epoch, delta="\u0000 kept inside JSON")
    await store.runs.append_events([huge])
    stored = await store.runs.events_after(run_id, 0)
    assert [e.seq for e in stored] == [1, 2, 3, MAX_SEQ]
    assert stored[0].data == {"delta": WIDE_TEXT} and stored[-1] == huge
    assert await store.runs.events_after(run_id, 2) == stored[2:]
    assert await store.runs.events_after(run_id, MAX_SEQ) == []
    assert await store.runs.events_after(run_id, 0, limit=2) == stored[:2]
    # A seq is stored once: a second event under it (a node that lost the run's lease storing
    # late) leaves the first as it was, and the rest of its batch is stored.
    await store.runs.append_events(
        [event(run_id, thread.id, 1, epoch, delta="late"), event(run_id, thread.id, 4, epoch)]
    )
    again = await store.runs.events_after(run_id, 0)
    assert again[0] == stored[0] and [e.seq for e in again] == [1, 2, 3, 4, MAX_SEQ]

    new = new_epoch()
    await store.runs.set_epoch(run_id, new)
    assert {e.epoch for e in await store.runs.events_after(run_id, 0)} == {new}


async def test_events_written_beside_other_writes_share_their_fate_and_skip_what_is_there(
    store: Store,
) -> None:
    # Batches of events queued with other writes share one transaction: a failing neighbour
    # does not cost them their events, and a batch holding a seq stored already (a node that
    # lost the run's lease, storing late) still stores the rest of its events.
    user_id = await a_user(store)
    runs = []
    for _ in range(2):
        run_id, epoch = new_id("run"), new_epoch()
        thread, _ = await store.conversations.accept(
            user_id=user_id, thread=None, content="q", run_id=run_id, epoch=epoch
        )
        runs.append((run_id, thread.id, epoch))
    (a, a_thread, a_epoch), (b, b_thread, b_epoch) = runs
    await store.runs.append_events([event(a, a_thread, 1, a_epoch, n=1)])

    def failing(conn: Connection) -> None:
        row = {"id": "thr_twice", "user_id": user_id, "title": "t", "created_at": 1}
        conn.execute(insert(threads).values(**row, updated_at=1))
        conn.execute(insert(threads).values(**row, updated_at=2))

    results = await asyncio.gather(
        store.runs.append_events([event(b, b_thread, s, b_epoch, n=s) for s in (1, 2)]),
        store.db.write(failing),
        store.runs.append_events([event(a, a_thread, s, a_epoch, n=-s) for s in (1, 3, 4)]),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], IntegrityError) and results[2] is None
    assert [e.data for e in await store.runs.events_after(a, 0)] == [
        {"n": 1},
        {"n": -3},
        {"n": -4},
    ]
    assert [e.data for e in await store.runs.events_after(b, 0)] == [{"n": 1}, {"n": 2}]


async def test_a_batch_of_interleaved_runs_is_stored_in_blocks_and_read_back_whole(
    store: Store,
) -> None:
    # A batch holds the events of many runs, interleaved as they were emitted; each run's
    # consecutive events share a row (SQLite's cost is per row), and any position reads back.
    user_id = await a_user(store)
    runs = []
    for _ in range(3):
        run_id, epoch = new_id("run"), new_epoch()
        thread, _ = await store.conversations.accept(
            user_id=user_id, thread=None, content="q", run_id=run_id, epoch=epoch
        )
        runs.append((run_id, thread.id, epoch))
    batch = [
        event(run_id, thread_id, seq, epoch, delta=f"{seq}\n{WIDE_TEXT}")
        for seq in range(1, 301)
        for run_id, thread_id, epoch in runs
    ]
    await store.runs.append_events(batch[:450])
    await store.runs.append_events(batch[450:])
    for run_id, _, _ in runs:
        mine = [e for e in batch if e.run_id == run_id]
        assert await store.runs.events_after(run_id, 0) == mine
        for after in (1, 149, 150, 151, 299):
            assert await store.runs.events_after(run_id, after) == mine[after:]
        assert await store.runs.events_after(run_id, 100, limit=3) == mine[100:103]
    async with store.db.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(run_events))
    assert rows is not None and rows <= 3 * 3  # 300 events a run: a block per run per batch


async def test_overlapping_blocks_keep_the_current_numbering(store: Store) -> None:
    # The node that lost a run stores late what it published under the old epoch, in blocks
    # whose bounds differ from the taking node's: each seq is read once, the current one's.
    user_id = await a_user(store)
    run_id, old = new_id("run"), new_epoch()
    thread, _ = await store.conversations.accept(
        user_id=user_id, thread=None, content="q", run_id=run_id, epoch=old
    )
    await store.runs.append_events([event(run_id, thread.id, s, old, n=s) for s in (1, 2, 3)])
    new = new_epoch()
    await store.runs.set_epoch(run_id, new)
    await store.runs.append_events([event(run_id, thread.id, s, new, by="new") for s in (4, 5)])
    await store.runs.append_events(
        [event(run_id, thread.id, s, old, by="old") for s in range(3, 8)]
    )
    stored = await store.runs.events_after(run_id, 0)
    assert [e.seq for e in stored] == [1, 2, 3, 4, 5, 6, 7]
    assert [e.data.get("by") for e in stored[3:]] == ["new", "new", "old", "old"]
    assert stored[2].data == {"n": 3}  # the first stored is kept when neither is current
    assert {e.epoch for e in stored} == {new}


async def test_a_finished_run_keeps_its_end_and_reply_in_one_write(store: Store) -> None:
    user_id = await a_user(store)
    run_id, epoch = new_id("run"), new_epoch()
    thread, question = await store.conversations.accept(
        user_id=user_id, thread=None, content="q", run_id=run_id, epoch=epoch
    )
    assert [r.id for r in await store.runs.unfinished()] == [run_id]
    started = now_ms()
    reply = Message(
        id=new_id("msg"),
        thread_id=thread.id,
        user_id=user_id,
        role="assistant",
        content=WIDE_TEXT,
        created_at=now_ms(),
        run_id=run_id,
        partial=True,
    )
    await store.runs.finish(
        run_id,
        "cancelled",
        last_seq=MAX_SEQ,
        started_at=started,
        error_code="stopped",
        error_message="x" * 10_000,
        reply=reply,
    )
    record = await store.runs.get(user_id, run_id)
    assert record is not None
    assert (record.status, record.last_seq, record.started_at) == ("cancelled", MAX_SEQ, started)
    assert (record.error_code, record.error_message) == ("stopped", "x" * 10_000)
    assert record.ended_at is not None and record.ended_at >= started and record.epoch == epoch
    assert await store.runs.get("usr_other", run_id) is None
    assert await store.conversations.messages_of(thread.id) == [question, reply]
    assert await store.runs.unfinished() == []


async def test_trimming_deletes_the_events_of_runs_ended_before_the_cutoff(store: Store) -> None:
    user_id = await a_user(store)
    ended, live = [], new_id("run")
    thread, _ = await store.conversations.accept(
        user_id=user_id, thread=None, content="q", run_id=live, epoch="e"
    )
    await store.runs.append_events([event(live, thread.id, 1, "e")])
    for _ in range(5):
        run_id = new_id("run")
        await store.conversations.accept(
            user_id=user_id, thread=thread, content="q", run_id=run_id, epoch="e"
        )
        await store.runs.append_events([event(run_id, thread.id, s, "e") for s in (1, 2)])
        await store.runs.finish(run_id, "completed", last_seq=2, started_at=None)
        ended.append(run_id)
    cutoff = now_ms() + 1
    assert await store.runs.trim_ended_before(cutoff, now=FAR_FUTURE_MS, batch=2) == 5
    assert await store.runs.trim_ended_before(cutoff, now=FAR_FUTURE_MS, batch=2) == 0
    for run_id in ended:
        record = await store.runs.get(user_id, run_id)
        assert record is not None and record.trimmed_at == FAR_FUTURE_MS
        assert await store.runs.events_after(run_id, 0) == []
    assert len(await store.runs.events_after(live, 0)) == 1  # an unfinished run keeps its events


# Usage


def record(ts: int, **changes: object) -> UsageRecord:
    base = UsageRecord(ts, "openai", "gpt-4o", 1000, 200, 850.25, 0.0123456789, "ok", None, None)
    return base._replace(**changes)


async def test_usage_records_keep_their_values_and_come_oldest_first(store: Store) -> None:
    usage, user_id = store.usage, await a_user(store)
    assert await usage.count(user_id) == 0 and list(await usage.records_of(user_id)) == []
    extremes = record(
        FAR_FUTURE_MS,
        provider="p" * 100,
        model="m" * 200,
        prompt_tokens=MAX_TOKENS,
        completion_tokens=MAX_TOKENS,
        latency_ms=1e300,
        cost_usd=1 / 3,
        status="error",
        prompt_hash="h" * 200,
        feature=WIDE_TEXT,
    )
    rows = [record(2_000), extremes, record(1_000, feature="search"), record(0, prompt_tokens=0)]
    assert (await usage.add(user_id, rows)).new == 4
    first = await usage.records_of(user_id)
    assert list(first) == [rows[3], rows[2], rows[0], extremes]
    assert first[-1].total_tokens == 2 * MAX_TOKENS
    assert await usage.count(user_id) == 4
    assert list(await usage.records_of(user_id, limit=2)) == [rows[3], rows[2]]
    # A later import is seen at once (the cached set is checked against the database).
    await usage.add(user_id, [record(500)])
    assert [r.timestamp for r in await usage.records_of(user_id)] == [
        0,
        500,
        1_000,
        2_000,
        FAR_FUTURE_MS,
    ]
    assert await usage.count(await a_user(store)) == 0


async def test_an_import_through_another_node_is_seen_at_once(store: Store, store_url: str) -> None:
    # Each node (or the CLI in its own process) caches usage sets; an import elsewhere must not
    # leave this node answering from the set it cached before.
    usage, user_id = store.usage, await a_user(store)
    await usage.add(user_id, [record(1_000)])
    cached = await usage.records_of(user_id)
    assert await usage.records_of(user_id) is cached  # unchanged: served from the cache
    async with Store.open(store_url) as elsewhere:
        await elsewhere.usage.add(user_id, [record(2_000), record(3_000)])
    assert [r.timestamp for r in await usage.records_of(user_id)] == [1_000, 2_000, 3_000]


async def test_a_run_stored_as_it_starts_knows_which_usage_data_is_current(
    store: Store, store_url: str
) -> None:
    # Accepting a message reads the user's usage version in its own transaction: a cached view
    # of that version serves the run without another read, and an import through another node
    # before the next message makes the next accept's version miss this node's cached view.
    usage, user_id = store.usage, await a_user(store)

    async def accept(text: str) -> int:
        accepted = await store.conversations.accept_run(
            user_id=user_id,
            thread=None,
            content=text,
            run_id=new_id("run"),
            epoch=new_epoch(),
            claim_at=now_ms(),
        )
        return accepted.usage_version

    assert await accept("before any data") == 0
    await usage.add(user_id, [record(1_000)])
    first = await accept("first")
    assert first > 0
    cached = await usage.records_of(user_id)
    assert await usage.usage_of(user_id, version=first) is cached
    async with Store.open(store_url) as elsewhere:
        await elsewhere.usage.add(user_id, [record(2_000)])
        assert await accept("second") > first
        second = await accept("third")
        view = await (await usage.usage_of(user_id, version=second)).read()
        assert view is not cached
        assert [r.timestamp for r in view] == [1_000, 2_000]
        await elsewhere.usage.delete(user_id)
    assert len(await usage.usage_of(user_id, version=await accept("after the delete"))) == 0


# Usage summaries

PRICING = PricingTable.load()


async def aggregates_match(store: Store, user_id: str) -> dict[str, object]:
    """The user's stored summary answers as their stored records do; what it answers."""
    digest = await store.usage.digest_of(user_id)
    assert digest is not None
    records = await store.usage.records_of(user_id)
    assert records.memo["usage_digest"] == digest  # read with the records, for the first question
    answers = analytics.summarized(digest, PRICING)
    assert answers == analytics.summarized(UsageSummary.of(records).digest(), PRICING)
    assert answers["overview"] == analytics.overview(list(records))
    assert answers["cache_candidates"] == analytics.cache_candidates(list(records))
    return answers


def mixed_records() -> list[UsageRecord]:
    """600 calls of the sample, with repeats at one time in several batches (ties to break)."""
    sample = list(generate_sample())[:560]
    tied = [
        record(sample[0].timestamp, prompt_hash="same", feature=f, cost_usd=0.1 * (i + 1))
        for i, f in enumerate(["a", "b", None, "a"] * 10)
    ]
    return sample + tied


async def test_the_usage_summary_follows_imports_and_deletes(store: Store) -> None:
    usage, user_id = store.usage, await a_user(store)
    assert await usage.digest_of(user_id) == UsageSummary().digest()  # nothing imported
    records = mixed_records()
    first = await usage.add(user_id, records[:300])  # two slices
    second = await usage.add(user_id, records[200:])  # overlaps the first; three slices
    assert (second.new, second.already_present) == (300, 100)
    both = await aggregates_match(store, user_id)
    assert both["overview"]["calls"] == 600
    # Importing again adds nothing and changes nothing.
    again = await usage.add(user_id, records)
    assert again.new == 0 and await aggregates_match(store, user_id) == both
    # Deleting one batch: the summary of the other's records.
    assert first.batch_id is not None
    await usage.delete(user_id, first.batch_id)
    assert (await aggregates_match(store, user_id))["overview"]["calls"] == 300
    # Deleting everything: the empty summary, and a new import starts from it.
    await usage.delete(user_id)
    empty = analytics.summarized(UsageSummary().digest(), PRICING)
    assert await aggregates_match(store, user_id) == empty
    await usage.add(user_id, records[:10])
    assert (await aggregates_match(store, user_id))["overview"]["calls"] == 10


async def test_a_new_users_data_comes_as_its_digest_and_the_records_only_when_read(
    store: Store,
) -> None:
    usage, user_id = store.usage, await a_user(store)
    records = mixed_records()
    await usage.add(user_id, records)
    view = await usage.usage_of(user_id)
    # One row read, no record: the digest answers what every question reads.
    assert not view.is_read and len(view) == 600
    assert view.memo["usage_digest"] == await usage.digest_of(user_id)
    with pytest.raises(RecordsNotRead):
        view[0]
    assert await usage.usage_of(user_id) is view  # unchanged data: the same view, its memo
    # Read when asked, once, whoever asks meanwhile: the store's records, oldest first.
    first, second = await asyncio.gather(view.read(), view.read())
    assert first is second is view and view.is_read
    stored = sorted(enumerate(records), key=lambda i: (i[1].timestamp, i[0]))
    assert list(view) == [r for _, r in stored]
    assert await usage.records_of(user_id) is view


async def test_records_read_after_the_data_changed_are_refused(store: Store) -> None:
    # The view's digest answered the run's first tools; records of another version would give
    # its later tools figures of other data.
    usage, user_id = store.usage, await a_user(store)
    await usage.add(user_id, [record(1_000), record(2_000)])
    view = await usage.usage_of(user_id)
    await usage.add(user_id, [record(3_000)])
    with pytest.raises(Conflict):
        await view.read()
    assert [r.timestamp for r in await usage.records_of(user_id)] == [1_000, 2_000, 3_000]


async def test_a_summary_of_an_older_format_is_not_used(store: Store) -> None:
    usage, user_id = store.usage, await a_user(store)
    await usage.add(user_id, [record(1_000), record(2_000)])

    def as_format_one(conn: Connection) -> None:  # what migration 0011's summaries were
        mine = usage_summaries.c.user_id == user_id
        digest = orjson.loads(conn.scalars(select(usage_summaries.c.digest).where(mine)).one())
        del digest["format"]
        conn.execute(
            update(usage_summaries).where(mine).values(digest=orjson.dumps(digest).decode())
        )

    await store.db.write(as_format_one)
    assert await usage.digest_of(user_id) is None
    view = await usage.usage_of(user_id)
    assert view.is_read and "usage_digest" not in view.memo  # the records are read instead


async def test_a_batch_stored_before_summaries_leaves_the_user_without_one_until_deleted(
    store: Store,
) -> None:
    usage, user_id = store.usage, await a_user(store)
    old = await usage.add(user_id, [record(1_000), record(2_000)])

    def as_before_summaries(conn: Connection) -> None:  # what migration 0011 leaves
        conn.execute(update(usage_batches).values(summary=None))
        conn.execute(delete(usage_summaries))

    await store.db.write(as_before_summaries)
    await usage.add(user_id, [record(3_000)])
    assert await usage.digest_of(user_id) is None
    assert "usage_digest" not in (await usage.records_of(user_id)).memo  # the records are read
    assert old.batch_id is not None
    await usage.delete(user_id, old.batch_id)
    assert (await aggregates_match(store, user_id))["overview"]["calls"] == 1


async def test_imports_of_one_user_at_once_leave_a_true_summary_or_none(store: Store) -> None:
    # Each import keeps its summary in memory between its slices; another's slices in between
    # make it rebuild the user's from the batches' summaries (unknown while one is importing).
    usage, user_id = store.usage, await a_user(store)
    records = mixed_records()
    one, other = await asyncio.gather(usage.add(user_id, records), usage.add(user_id, records))
    assert one.new + other.new == 600
    if await usage.digest_of(user_id) is not None:
        await aggregates_match(store, user_id)
    await usage.add(user_id, [record(1)])
    if await usage.digest_of(user_id) is not None:
        await aggregates_match(store, user_id)
    for added in (one, other):
        if added.batch_id is not None:
            await usage.delete(user_id, added.batch_id)
    assert (await aggregates_match(store, user_id))["overview"]["calls"] == 1


# Run dispatch


async def test_claims_start_one_run_of_a_thread_at_a_time_in_arrival_order(store: Store) -> None:
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    first, second, third = new_id("run"), new_id("run"), new_id("run")
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="one", run_id=first, epoch=new_epoch()
    )
    for run_id, text in ((second, "two"), (third, "three")):
        await store.conversations.accept(
            user_id=user.id, thread=thread, content=text, run_id=run_id, epoch=new_epoch()
        )
    runs = store.runs
    assert await runs.unfinished_count(user.id) == 3
    assert await runs.unfinished_on_thread(thread.id) == [first, second, third]
    assert [r.id for r in await runs.ready(created_before=now_ms() + 1)] == [first]
    # Many nodes claim at once, each run of the thread: only the first run, and only once.
    tries = [runs.claim(r, now=now_ms()) for r in (third, second, first) * 4]
    claimed = [r for r in await asyncio.gather(*tries) if r is not None]
    assert [r.id for r in claimed] == [first] and claimed[0].status == "running"
    assert await runs.running_ids() == [first]
    assert await runs.ready(created_before=now_ms() + 1) == []  # the second waits for the first
    # A queued run may be claimed out of turn only to close it (stopped while queued).
    assert (await runs.claim(third, now=now_ms(), in_order=False)) is not None
    await runs.finish(third, "cancelled", last_seq=2, started_at=None)
    await runs.finish(first, "completed", last_seq=1, started_at=None)
    assert [r.id for r in await runs.ready(created_before=now_ms() + 1, thread_id=thread.id)] == [
        second
    ]
    assert await runs.unfinished_count(user.id) == 1
    record = await runs.by_id(second)
    assert record is not None
    # The run's agent is given its message and the thread's messages before it, and the
    # user's usage version as it starts (0 before any data).
    assert await store.conversations.turn(record.message_id, 20) == ("two", [("user", "one")], 0)
    await store.usage.add(user.id, list(generate_sample())[:5])
    await store.usage.add(user.id, list(generate_sample())[5:10])
    version = await store.db.read(partial(UsageVersions(store.db).current, user_id=user.id))
    assert version >= 2
    question, history, seen = await store.conversations.turn(record.message_id, 20)
    assert question == "two" and history == [("user", "one")] and seen == version
    assert await store.conversations.turn("msg_none", 20) == ("", [], 0)


async def test_accepting_claims_the_run_only_when_nothing_of_its_thread_is_unfinished(
    store: Store,
) -> None:
    user = await store.accounts.create_user(new_id("usr"), f"{new_id('u')}@x.io", "h")
    thread, _ = await store.conversations.accept(
        user_id=user.id, thread=None, content="open", run_id=new_id("run"), epoch=new_epoch()
    )
    opening = (await store.runs.unfinished_on_thread(thread.id))[0]
    await store.runs.claim(opening, now=now_ms())
    await store.runs.finish(opening, "completed", last_seq=1, started_at=None)

    async def accept(text: str) -> tuple[str, bool]:
        run_id = new_id("run")
        accepted = await store.conversations.accept_run(
            user_id=user.id,
            thread=thread,
            content=text,
            run_id=run_id,
            epoch=new_epoch(),
            claim_at=now_ms(),
        )
        return run_id, accepted.claimed

    # Messages on one thread accepted at once (two sockets, two nodes): one run is claimed as
    # it is stored, the others wait queued behind it.
    results = await asyncio.gather(*(accept(f"message {i}") for i in range(6)))
    claimed = [run_id for run_id, ok in results if ok]
    assert len(claimed) == 1
    assert await store.runs.running_ids() == claimed
    order = await store.runs.unfinished_on_thread(thread.id)
    assert sorted(order) == sorted(run_id for run_id, _ in results)
    assert order[0] == claimed[0]  # the one claimed is the first of the thread's runs


async def test_the_run_cap_holds_when_many_nodes_accept_for_one_user_at_once(
    store: Store, store_url: str
) -> None:
    # Each node counts the user's unfinished runs and stores the new one in one transaction;
    # counted at once on several nodes, each would see room for itself. The accepts are let go
    # together here: each first meets another transaction holding the user's row (on
    # PostgreSQL; SQLite's writers wait for its one lock anyway), as behind another node's.
    cap, nodes_count = 2, 6
    user_id = await a_user(store)

    def at_most(mine: list[tuple[str, str]]) -> None:
        if len(mine) >= cap:
            raise Conflict(f"you already have {cap} runs in progress", code="too_many_runs")

    async def accept(node: Store, n: int) -> str:
        run_id = new_id("run")
        await node.conversations.accept_run(
            user_id=user_id,
            thread=None,  # each its own new thread: no thread's row to take turns on
            content=f"message {n}",
            run_id=run_id,
            epoch=new_epoch(),
            check=at_most,
        )
        return run_id

    async with contextlib.AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(Store.open(store_url)) for _ in range(nodes_count)]
        async with row_held(store_url, users, user_id) as held:
            tries = [asyncio.create_task(accept(node, n)) for n, node in enumerate(nodes)]
            await held.until_waiting(nodes_count)
        results = await asyncio.gather(*tries, return_exceptions=True)
    accepted = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if not isinstance(r, str)]
    assert len(accepted) == cap, results
    assert all(isinstance(r, Conflict) and r.code == "too_many_runs" for r in refused), refused
    assert await store.runs.unfinished_count(user_id) == cap
    assert {r.id for r in await store.runs.unfinished()} == set(accepted)
