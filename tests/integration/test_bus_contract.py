"""The bus contract (runwire/bus/base.py): what every EventBus promises, checked against each
implementation: MemoryBus, and RedisBus on a real Redis (``RUNWIRE_TEST_REDIS_URL``).

Each Redis test uses its own key prefix and deletes its keys afterwards, so runs of the suite
(and other users of the same Redis) do not see each other. Deliveries through Redis arrive
asynchronously: a test waits for what it expects, and proves that something did *not* arrive by
sending a later marker on the same path and seeing it arrive alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from redis.asyncio import Redis

from runwire.bus.base import EventBus
from runwire.bus.memory import MemoryBus
from runwire.bus.redis import RedisBus
from runwire.events.model import EventType, RunEvent
from tests.redis_keys import fresh_prefix
from tests.services import redis_url
from tests.timing import unit


def event(run_id: str, seq: int, *, epoch: str = "ep1", **data: Any) -> RunEvent:
    return RunEvent(
        EventType.TEXT_DELTA,
        run_id,
        "thr_1",
        seq,
        "supervisor",
        "2026-11-23T20:00:00.000Z",
        {"delta": f"<{run_id}:{seq}>", **data},
        epoch=epoch,
    )


async def arrived(received: list[RunEvent], count: int) -> None:
    """Wait until ``received`` holds ``count`` events."""
    await until(lambda: len(received) >= count)


async def until(condition: Callable[[], bool], timeout: float | None = None) -> None:
    """Wait until ``condition()`` holds (deliveries through Redis arrive on their own time)."""
    async with asyncio.timeout(timeout if timeout is not None else unit(5)):
        while not condition():  # noqa: ASYNC110 - a handler announces nothing to wait on
            await asyncio.sleep(0.005)


def seqs(events: list[RunEvent] | None) -> list[int] | None:
    return None if events is None else [e.seq for e in events]


@contextlib.asynccontextmanager
async def redis_nodes(count: int) -> AsyncIterator[list[RedisBus]]:
    """``count`` RedisBus nodes sharing one Redis under a key prefix of their own."""
    url = redis_url()
    async with fresh_prefix(url) as prefix, contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(RedisBus(url, prefix=prefix).running())
            for _ in range(count)
        ]


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    if request.param == "memory":
        yield MemoryBus()
        return
    async with redis_nodes(1) as (node,):
        yield node


async def test_a_users_subscribers_get_its_events_and_no_other_user_does(bus: EventBus) -> None:
    first: list[RunEvent] = []
    second: list[RunEvent] = []
    other: list[RunEvent] = []
    await bus.subscribe("usr_a", first.append)
    await bus.subscribe("usr_a", second.append)
    await bus.subscribe("usr_b", other.append)

    sent = [event("run_a", seq) for seq in (1, 2, 3)]
    for e in sent:
        await bus.publish("usr_a", e)
    await until(lambda: len(first) == 3 and len(second) == 3)
    assert [e.wire for e in first] == [e.wire for e in sent]
    assert [e.wire for e in second] == [e.wire for e in sent]
    assert first[0] == sent[0]  # the same event, not only the same bytes

    # usr_b's own event arrives, and alone: none of usr_a's reached it.
    await bus.publish("usr_b", event("run_b", 1))
    await until(lambda: len(other) == 1)
    assert [(e.run_id, e.seq) for e in other] == [("run_b", 1)]
    assert len(first) == 3


async def test_each_runs_order_holds_under_concurrent_publishers(bus: EventBus) -> None:
    received: list[RunEvent] = []
    await bus.subscribe("usr_a", received.append)
    runs = [f"run_{i}" for i in range(12)]
    per_run = 40

    async def run(run_id: str) -> None:
        for seq in range(1, per_run + 1):
            await bus.publish("usr_a", event(run_id, seq))
            if seq % 7 == 0:
                await asyncio.sleep(0)  # let the other runs interleave

    await asyncio.gather(*(run(r) for r in runs))
    await until(lambda: len(received) == len(runs) * per_run)
    for run_id in runs:
        assert [e.seq for e in received if e.run_id == run_id] == list(range(1, per_run + 1))
        assert seqs(await bus.history(run_id, 0)) == list(range(1, per_run + 1))


async def test_a_batch_published_together_reaches_each_subscriber_whole_and_in_order(
    bus: EventBus,
) -> None:
    one_by_one: list[RunEvent] = []
    batched: list[RunEvent] = []
    await bus.subscribe("usr_a", one_by_one.append)
    # A subscriber that takes batches gets each event once too, whether the bus hands it the
    # batch (on_batch) or each event (handler), as a bus may.
    await bus.subscribe("usr_a", batched.append, on_batch=batched.extend)
    await bus.publish("usr_a", event("run_a", 1))
    await bus.publish_batch("usr_a", [event("run_a", seq) for seq in (2, 3, 4)])
    await bus.publish("usr_a", event("run_a", 5))
    await until(lambda: len(one_by_one) == 5 and len(batched) == 5)
    assert seqs(one_by_one) == seqs(batched) == [1, 2, 3, 4, 5]
    assert seqs(await bus.history("run_a", 1)) == [2, 3, 4, 5]


async def test_history_is_every_held_event_after_the_position(bus: EventBus) -> None:
    sent = [event("run_h", seq) for seq in range(1, 11)]
    for e in sent:
        await bus.publish("usr_a", e)

    whole = await bus.history("run_h", 0)
    assert whole is not None and [e.wire for e in whole] == [e.wire for e in sent]
    assert seqs(await bus.history("run_h", 4)) == [5, 6, 7, 8, 9, 10]
    assert seqs(await bus.history("run_h", 9)) == [10]
    # Held, but nothing after the position (yet): empty, not "ask the store".
    assert await bus.history("run_h", 10) == []
    assert await bus.history("run_h", 25) == []
    # Never published here: the bus holds nothing, the store answers.
    assert await bus.history("run_unknown", 0) is None
    assert bus.held_runs == 1


async def test_history_of_a_run_held_from_past_its_start_sends_earlier_positions_to_the_store(
    bus: EventBus,
) -> None:
    # A recovered run: its first events are stored; this process holds only its closing ones.
    for seq in (4, 5, 6):
        await bus.publish("usr_a", event("run_r", seq))
    assert seqs(await bus.history("run_r", 3)) == [4, 5, 6]
    assert seqs(await bus.history("run_r", 5)) == [6]
    assert await bus.history("run_r", 2) is None
    assert await bus.history("run_r", 0) is None


async def test_release_drops_the_runs_history_and_only_that(bus: EventBus) -> None:
    for seq in (1, 2):
        await bus.publish("usr_a", event("run_1", seq))
        await bus.publish("usr_a", event("run_2", seq))
    assert bus.held_runs == 2
    await bus.release("run_1")
    assert await bus.history("run_1", 0) is None
    assert seqs(await bus.history("run_2", 0)) == [1, 2]
    assert bus.held_runs == 1
    await bus.release("run_2")
    await bus.release("run_2")  # idempotent
    assert await bus.history("run_2", 0) is None
    assert bus.held_runs == 0


async def test_subscriptions_count_until_closed_and_closed_ones_get_nothing(
    bus: EventBus,
) -> None:
    kept: list[RunEvent] = []
    dropped: list[RunEvent] = []
    assert bus.subscriber_count() == 0
    first = await bus.subscribe("usr_a", dropped.append)
    await bus.subscribe("usr_a", kept.append)
    await bus.subscribe("usr_b", kept.append)
    assert (bus.subscriber_count("usr_a"), bus.subscriber_count("usr_b")) == (2, 1)
    assert bus.subscriber_count() == 3 and bus.subscriber_count("usr_c") == 0

    first.close()
    first.close()  # idempotent
    assert bus.subscriber_count("usr_a") == 1 and bus.subscriber_count() == 2
    await bus.publish("usr_a", event("run_a", 1))
    await until(lambda: len(kept) == 1)
    assert dropped == []


async def test_the_last_subscription_of_a_user_closed_and_a_new_one_opened_gets_events(
    bus: EventBus,
) -> None:
    # The user's last socket goes and a new one comes at once (a reload): the new one must not
    # be lost between the old subscription's end and its own start.
    for round_ in range(1, 6):
        received: list[RunEvent] = []
        old = await bus.subscribe("usr_a", lambda e: None)
        old.close()
        new = await bus.subscribe("usr_a", received.append)
        await bus.publish("usr_a", event("run_a", round_))
        await arrived(received, 1)
        new.close()
    assert bus.subscriber_count() == 0


async def test_a_failing_handler_does_not_stop_the_others(bus: EventBus) -> None:
    received: list[RunEvent] = []

    def broken(_: RunEvent) -> None:
        raise RuntimeError("a socket's bug")

    await bus.subscribe("usr_a", broken)
    await bus.subscribe("usr_a", received.append)
    await bus.publish("usr_a", event("run_a", 1))
    await bus.publish("usr_a", event("run_a", 2))
    await until(lambda: len(received) == 2)
    assert [e.seq for e in received] == [1, 2]


# -- several nodes: only a shared backend can do this ---------------------------------------------


async def test_a_subscriber_on_one_node_gets_what_another_node_publishes() -> None:
    async with redis_nodes(2) as (node_a, node_b):
        on_a: list[RunEvent] = []
        on_b: list[RunEvent] = []
        await node_a.subscribe("usr_a", on_a.append)
        await node_b.subscribe("usr_a", on_b.append)
        for seq in range(1, 6):
            await node_b.publish("usr_a", event("run_x", seq))
        await until(lambda: len(on_a) == 5 and len(on_b) == 5)
        assert [e.seq for e in on_a] == [1, 2, 3, 4, 5] == [e.seq for e in on_b]
        # Node A serves the history of node B's run, and sees it released.
        assert seqs(await node_a.history("run_x", 2)) == [3, 4, 5]
        assert (node_a.held_runs, node_b.held_runs) == (0, 1)  # counts this node's runs
        await node_b.release("run_x")
        # A node's writes reach Redis after publish/release return; its own history waits for
        # them, another node's does not.
        assert await node_b.history("run_x", 0) is None
        assert await node_a.history("run_x", 0) is None


async def test_events_published_together_arrive_whole_in_order_on_every_node() -> None:
    # A node sends what its runs publish in one loop turn together (one message per user, one
    # stream entry per run): each event must still arrive once, whole (line breaks in text
    # included), in its run's order, and be served whole from history.
    async with redis_nodes(2) as (node_a, node_b):
        on_a: list[RunEvent] = []
        on_b: list[RunEvent] = []
        other: list[RunEvent] = []
        await node_a.subscribe("usr_a", on_a.append)
        await node_b.subscribe("usr_a", on_b.append)
        await node_a.subscribe("usr_b", other.append)
        sent = [
            event(f"run_{seq % 3}", seq // 3 + 1, text=f"line {seq}\nnext \\n\r\n")
            for seq in range(60)
        ]
        for e in sent:
            await node_b.publish("usr_a", e)
        await node_b.publish("usr_b", event("run_b", 1))
        await until(lambda: len(on_a) == len(on_b) == 60 and len(other) == 1)
        for received in (on_a, on_b):
            # Each run's events whole and in its order; runs may interleave differently.
            for run_id in ("run_0", "run_1", "run_2"):
                mine = [e for e in sent if e.run_id == run_id]
                got = [e for e in received if e.run_id == run_id]
                assert [e.wire for e in got] == [e.wire for e in mine]
                assert [e.data for e in got] == [e.data for e in mine]
        assert [e.run_id for e in other] == ["run_b"]
        for node in (node_a, node_b):
            held = await node.history("run_1", 7)
            assert [e.wire for e in held or []] == [e.wire for e in sent if e.run_id == "run_1"][7:]


async def test_a_nodes_own_events_reach_its_subscribers_once() -> None:
    # A node hands its subscribers its own events when they are published; Redis sends them back
    # on the user's channel too, and that copy must not be delivered again.
    async with redis_nodes(2) as (node_a, node_b):
        received: list[RunEvent] = []
        await node_a.subscribe("usr_a", received.append)
        sent = [event("run_a", seq) for seq in (1, 2, 3)]
        for e in sent:
            await node_a.publish("usr_a", e)
        assert received == sent  # at once, the objects published
        await node_a.history("run_a", 0)  # node A's writes (and their echo) are in Redis
        await node_b.publish("usr_a", event("run_b", 1))  # behind them on the channel
        await until(lambda: any(e.run_id == "run_b" for e in received))
        assert [(e.run_id, e.seq) for e in received] == [
            ("run_a", 1),
            ("run_a", 2),
            ("run_a", 3),
            ("run_b", 1),
        ]


def block_of(node: RedisBus, events: list[RunEvent]) -> Any:
    """The block ``node`` would queue for ``events`` (of one run, in order), for usr_a."""
    block = node._writer.block("usr_a", events[0])
    for e in events:
        block.add(e)
    return block


async def test_a_block_sent_again_in_part_adds_only_its_new_events() -> None:
    # The append script skips what the stream already holds under the same epoch, event by event
    # within a block: a write sent again after a lost reply is not delivered or kept twice.
    async with redis_nodes(2) as (node_a, node_b):
        received: list[RunEvent] = []
        await node_b.subscribe("usr_a", received.append)
        sent = [event("run_a", seq) for seq in range(1, 6)]
        for e in sent[:3]:
            await node_a.publish("usr_a", e)
        await until(lambda: len(received) == 3)
        # The writer's own encoding of events 2..5 as one block, sent as it would send it.
        command = node_a._writer.append_command([block_of(node_a, sent[1:])])
        assert await node_a._writer.round_trip(command, 1) == [1]  # one channel published to
        await until(lambda: len(received) == 5)
        assert [e.wire for e in received] == [e.wire for e in sent]
        assert seqs(await node_b.history("run_a", 0)) == [1, 2, 3, 4, 5]
        assert seqs(await node_b.history("run_a", 3)) == [4, 5]
        # And a block wholly held already: nothing is published, nothing kept twice.
        command = node_a._writer.append_command([block_of(node_a, sent[3:])])
        assert await node_a._writer.round_trip(command, 1) == [0]
        assert seqs(await node_b.history("run_a", 0)) == [1, 2, 3, 4, 5]


async def test_subscribe_returns_once_another_nodes_events_reach_it() -> None:
    async with redis_nodes(2) as (node_a, node_b):
        for i in range(20):
            user = f"usr_{i}"
            received: list[RunEvent] = []
            # Published the moment subscribe returns, on another node: it must arrive.
            await node_a.subscribe(user, received.append)
            await node_b.publish(user, event(f"run_{i}", 1))
            await arrived(received, 1)


async def test_a_run_logged_again_under_a_new_epoch_replaces_what_was_held() -> None:
    # A node died mid-run (its stream stays until its TTL); the node that recovers the run gives
    # it a new epoch and closing events that reuse seqs the dead node had published.
    async with redis_nodes(2) as (dead, recovering):
        for seq in (1, 2, 3, 4):
            await dead.publish("usr_a", event("run_r", seq, epoch="old"))
        # What the dead node published had reached Redis before it died (history waits for it).
        assert seqs(await dead.history("run_r", 0)) == [1, 2, 3, 4]
        for seq in (3, 4):
            await recovering.publish("usr_a", event("run_r", seq, epoch="new"))
        held = await recovering.history("run_r", 2)
        assert [(e.seq, e.epoch) for e in held or []] == [(3, "new"), (4, "new")]
        assert await recovering.history("run_r", 0) is None  # seq 1, 2 of "new": the store


async def test_a_run_published_under_a_new_epoch_is_held_in_that_numbering_only(
    bus: EventBus,
) -> None:
    # A lost run's closing events (one, then a batch) follow the dead node's under a new epoch,
    # reusing its seqs: the bus holds the new numbering alone, never the two mixed.
    await bus.publish_batch("usr_a", [event("run_n", seq, epoch="old") for seq in (1, 2, 3, 4)])
    await bus.publish("usr_a", event("run_n", 3, epoch="new"))
    await bus.publish_batch(
        "usr_a", [event("run_n", 4, epoch="new"), event("run_n", 5, epoch="new")]
    )
    held = await bus.history("run_n", 2)
    assert [(e.seq, e.epoch) for e in held or []] == [(3, "new"), (4, "new"), (5, "new")]
    assert await bus.history("run_n", 0) is None  # its 1 and 2 are the store's to serve
    await bus.publish("usr_a", event("run_m", 1, epoch="old"))
    await bus.publish_batch(
        "usr_a", [event("run_m", 1, epoch="new"), event("run_m", 2, epoch="new")]
    )
    assert seqs(await bus.history("run_m", 0)) == [1, 2]
    assert {e.epoch for e in await bus.history("run_m", 0) or []} == {"new"}
    await bus.release("run_n")
    await bus.release("run_m")


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_renumbered_run_takes_no_late_events_of_its_old_numbering(kind: str) -> None:
    # A lost node that was cut off, not dead, sends what it queued once it is back, after the
    # node closing the run renumbered it: none of that reaches a subscriber or the history.
    async with contextlib.AsyncExitStack() as stack:
        if kind == "memory":
            late = closing = MemoryBus()
        else:
            late, closing = await stack.enter_async_context(redis_nodes(2))
        await late.publish_batch("usr_a", [event("run_f", seq, epoch="old") for seq in (1, 2, 3)])
        assert seqs(await late.history("run_f", 0)) == [1, 2, 3]
        received: list[RunEvent] = []
        await closing.subscribe("usr_a", received.append, on_batch=received.extend)
        await closing.renumber("run_f", "new")
        assert await closing.history("run_f", 0) is None  # what was held is dropped
        await late.publish_batch("usr_a", [event("run_f", 4, epoch="old")])
        await late.publish("usr_a", event("run_f", 5, epoch="old"))
        assert await late.history("run_f", 0) is None  # sent, and not held
        # The closing event, after them on the same path: it arrives alone.
        await closing.publish("usr_a", event("run_f", 4, epoch="new"))
        await arrived(received, 1)
        held = await closing.history("run_f", 3)
        assert [(e.seq, e.epoch) for e in held or []] == [(4, "new")]
        # A run that is not renumbered is not held back (another run, the same late node).
        await late.publish("usr_a", event("run_g", 1, epoch="old"))
        await arrived(received, 2)
        assert [(e.run_id, e.seq, e.epoch) for e in received] == [
            ("run_f", 4, "new"),
            ("run_g", 1, "old"),
        ]
        for bus in {late, closing}:
            await bus.release("run_f")
            await bus.release("run_g")


async def test_a_stream_written_before_blocks_is_still_served_and_continued() -> None:
    # Streams of runs in flight outlive an upgrade: the previous version wrote one event an entry
    # (id its seq, fields e and d, no tag). History must read them, and the run go on from there.
    async with redis_nodes(1) as (node,):
        client = Redis.from_url(redis_url())
        try:
            key = node._names.stream("run_old")
            for seq in (1, 2):
                await client.xadd(key, {"e": "ep1", "d": event("run_old", seq).wire}, f"{seq}-0")
            assert seqs(await node.history("run_old", 0)) == [1, 2]
            assert seqs(await node.history("run_old", 1)) == [2]
            for seq in (2, 3, 4):  # 2 again: it is held already, and not appended twice
                await node.publish("usr_a", event("run_old", seq))
            assert seqs(await node.history("run_old", 0)) == [1, 2, 3, 4]
        finally:
            await client.aclose()


async def test_a_long_run_keeps_a_bounded_tail_and_sends_older_positions_to_the_store() -> None:
    url = redis_url()
    prefix = f"runwire-test:{uuid.uuid4().hex}:"
    client = Redis.from_url(url)
    try:
        async with RedisBus(url, prefix=prefix, stream_maxlen=100, stream_ttl_s=60).running() as b:
            for seq in range(1, 501):
                await b.publish("usr_a", event("run_long", seq))
            # (history waits for this node's writes to reach Redis, so it comes first)
            assert seqs(await b.history("run_long", 480)) == list(range(481, 501))
            # The last 100 events stay, and at most one block (256 events) more.
            entries = await client.xrange(f"{prefix}run:run_long")
            held = sum(fields[b"d"].count(b"\n") for _, fields in entries)  # lines past the tag
            assert 100 <= held < 100 + 256
            assert await b.history("run_long", 0) is None
            ttl = await client.ttl(f"{prefix}run:run_long")
            assert 0 < ttl <= 60
    finally:
        await client.delete(f"{prefix}run:run_long")
        await client.aclose()


class Recorder:
    """A subscriber that takes batches: every event in the order it came, and the batches."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.batches: list[list[int]] = []  # the seqs of each batch handed over whole

    def one(self, event: RunEvent) -> None:
        self.events.append(event)

    def batch(self, events: Sequence[RunEvent]) -> None:
        self.events += events
        self.batches.append([e.seq for e in events])

    async def subscribe(self, node: EventBus, user_id: str) -> None:
        await node.subscribe(user_id, self.one, on_batch=self.batch)


async def test_a_batch_reaches_subscribers_as_a_batch_on_its_node_and_on_others() -> None:
    # A streamed answer's chunks are published as batches: a socket on the publishing node and
    # one on another node both take them whole (one write each), in their run's order.
    async with redis_nodes(2) as (node_a, node_b):
        here, there = Recorder(), Recorder()
        plain: list[RunEvent] = []
        await here.subscribe(node_a, "usr_a")
        await there.subscribe(node_b, "usr_a")
        await node_b.subscribe("usr_a", plain.append)  # no on_batch: each event alone
        await node_a.publish("usr_a", event("run_a", 1))
        await node_a.publish_batch("usr_a", [event("run_a", seq) for seq in (2, 3, 4)])
        await node_a.publish("usr_a", event("run_a", 5))
        assert seqs(here.events) == [1, 2, 3, 4, 5]
        assert here.batches == [[2, 3, 4]]  # the others were published alone
        await until(lambda: len(there.events) == 5 and len(plain) == 5)
        # Another node gets what reached Redis together as one batch (here all five, queued in
        # one loop turn), never one by one.
        assert seqs(there.events) == seqs(plain) == [1, 2, 3, 4, 5]
        assert [seq for batch in there.batches for seq in batch] == [1, 2, 3, 4, 5]
        assert [e.wire for e in plain] == [e.wire for e in there.events]


async def test_batches_longer_than_a_block_or_renumbered_arrive_whole_and_in_order() -> None:
    # A batch longer than a stream block goes into Redis event by event, and a run logged again
    # under a new epoch starts a block of its own, even in the same script call as the old
    # numbering's last block: each event still arrives once and in order on every node, and
    # history holds the run as last numbered.
    async with redis_nodes(2) as (node_a, node_b):
        here, there = Recorder(), Recorder()
        await here.subscribe(node_a, "usr_a")
        await there.subscribe(node_b, "usr_a")
        await node_a.publish_batch("usr_a", [event("run_l", seq) for seq in range(1, 301)])
        await node_a.publish_batch("usr_a", [event("run_l", seq) for seq in (301, 302)])
        renumbered = [event("run_l", seq, epoch="ep2") for seq in (301, 302, 303)]
        await node_a.publish_batch("usr_a", renumbered)
        expected = [*range(1, 303), 301, 302, 303]
        assert seqs(here.events) == expected
        await until(lambda: len(there.events) == len(expected))
        assert seqs(there.events) == expected
        assert [e.epoch for e in there.events[-4:]] == ["ep1", "ep2", "ep2", "ep2"]
        held = await node_b.history("run_l", 300)
        assert [(e.seq, e.epoch) for e in held or []] == [(301, "ep2"), (302, "ep2"), (303, "ep2")]


async def test_a_node_alone_on_a_channel_is_not_sent_its_own_blocks_back() -> None:
    # Its sockets had them when they were published: Redis publishes a node's blocks only while
    # another node holds the user's channel (a pattern subscriber is not one: it watches here).
    async with redis_nodes(2) as (node_a, node_b):
        client = Redis.from_url(redis_url())
        watcher = client.pubsub()
        try:
            await watcher.psubscribe(node_a._names.channel("usr_a").decode())
            here: list[RunEvent] = []
            there: list[RunEvent] = []
            await node_a.subscribe("usr_a", here.append)
            for seq in (1, 2):
                await node_a.publish("usr_a", event("run_a", seq))
            assert seqs(await node_a.history("run_a", 0)) == [1, 2]  # in Redis
            await node_b.subscribe("usr_a", there.append)
            await node_a.publish("usr_a", event("run_a", 3))
            await until(lambda: len(there) == 1)
            published: list[bytes] = []
            async with asyncio.timeout(unit(5)):
                while not published:
                    message = await watcher.get_message(ignore_subscribe_messages=True, timeout=1)
                    if message is not None:
                        published.append(message["data"])
            assert [frame.count(b"\n") for frame in published] == [1]  # the tag, then seq 3
            assert seqs(here) == [1, 2, 3]
            assert seqs(there) == [3]
        finally:
            await watcher.aclose()
            await client.aclose()
