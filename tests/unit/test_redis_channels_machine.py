"""A model of one node's pub/sub connection, its writer and Redis, driving the channel table
(runwire/bus/redis_channels.py) through interleavings: every one of a user's up to a bound
(searched exhaustively, in the unit layer), and random longer ones of two users (hypothesis).

Sockets of users come and go; the node sends the (un)subscriptions the table asks for, and
queues writes, each saying as it is built whether the node holds its user's channel; Redis runs
the two connections' commands in its own order (each connection's in order) and answers them;
the connection may be lost at any moment (with what was in flight on it). After every step:

- the echo is safe: a write that said "held" runs only while Redis still has the node
  subscribed to the channel (else a count of 1 would be another node's subscription, and that
  node would miss the block), unless the connection it said so under is gone (the script then
  trusts nothing, see the presence channel);
- a held channel is one a local socket wants and Redis has subscribed;
- a reply that settles a wanted channel leaves delivery in effect;

and once everything in flight has been answered and the control pass has run: Redis has the
node subscribed to exactly the wanted channels, and delivery is in effect for each of them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from runwire.bus.redis_channels import ChannelTable

pytestmark = pytest.mark.unit

USERS = ("a", "b")
DEPTH = 8  # steps searched exhaustively: each race of a leave and a return with a write, and more


@dataclass(frozen=True)
class Write:
    user: str
    held: bool  # what the node said, as the write was built
    link: int  # the connection it was said under


class Model:
    """The node, its two connections and Redis. Each step returns False when it cannot happen
    now (nothing changed)."""

    def __init__(self, users: tuple[str, ...]) -> None:
        self.users = users
        self.table = ChannelTable()
        self.wanted: set[str] = set()
        self.link = 1
        self.redis_subscribed: set[str] = set()  # on the current connection
        self.to_redis: list[tuple[str, str]] = []  # (un)subscribe commands, in order
        self.to_node: list[str] = []  # their replies, in order
        self.unbuilt: list[str] = []  # writes queued, not yet built
        self.in_flight: list[Write] = []  # built and sent, not yet run
        self.queued = 0
        self.done = 0

    # -- the node --

    def join(self, user: str) -> bool:
        """The node's first socket of ``user`` subscribes."""
        if user in self.wanted:
            return False
        self.wanted.add(user)
        self.table.want(user)
        return True

    def leave(self, user: str) -> bool:
        """The node's last socket of ``user`` leaves."""
        if user not in self.wanted:
            return False
        self.wanted.discard(user)
        self.table.unwant(user, self.queued)
        return True

    def control(self) -> bool:
        subscribe, unsubscribe = self.table.commands(self.done)
        self.to_redis += [("subscribe", user) for user in subscribe]
        self.to_redis += [("unsubscribe", user) for user in unsubscribe]
        return bool(subscribe or unsubscribe)

    def queue(self, user: str) -> bool:
        self.unbuilt.append(user)
        self.queued += 1
        return True

    def build(self) -> bool:
        """The writer builds the oldest queued write (saying "held" or not) and sends it."""
        if not self.unbuilt:
            return False
        user = self.unbuilt.pop(0)
        self.in_flight.append(Write(user, user in self.table.held, self.link))
        return True

    def reply(self) -> bool:
        """The oldest (un)subscribe reply reaches the node."""
        if not self.to_node:
            return False
        user = self.to_node.pop(0)
        settled = self.table.replied(user)
        if settled and user in self.wanted:
            assert self.table.in_effect(user), f"{user}: settled but not in effect"
        return True

    def lose(self) -> bool:
        """The pub/sub connection is lost (and a new one made)."""
        self.table.link_lost()
        self.link += 1
        self.redis_subscribed.clear()
        self.to_redis.clear()
        self.to_node.clear()
        return True

    # -- Redis --

    def redis_subscription(self) -> bool:
        if not self.to_redis:
            return False
        kind, user = self.to_redis.pop(0)
        if kind == "subscribe":
            self.redis_subscribed.add(user)
        else:
            self.redis_subscribed.discard(user)
        self.to_node.append(user)
        return True

    def redis_write(self) -> bool:
        if not self.in_flight:
            return False
        write = self.in_flight.pop(0)
        if write.held and write.link == self.link:
            assert write.user in self.redis_subscribed, (
                f"a write said {write.user} was held after the node's UNSUBSCRIBE ran"
            )
        self.done += 1  # answered, in order
        return True

    # -- what holds --

    def check(self) -> None:
        held = set(self.table.held)
        assert held <= self.wanted, held - self.wanted
        assert held <= self.redis_subscribed, held - self.redis_subscribed
        assert all(self.table.in_effect(user) == (user in held) for user in self.users)

    def settle(self) -> None:
        """Answer everything in flight, run the control pass, and again: then Redis and the
        table agree with what the sockets want."""
        for _ in range(3):
            while self.build() or self.redis_write():
                pass
            self.control()
            while self.redis_subscription() or self.reply():
                pass
        assert self.redis_subscribed == self.wanted
        assert set(self.table.held) == self.wanted
        for user in self.users:
            assert (self.table.state(user) is None) == (user not in self.wanted)

    def clone(self) -> Model:
        """A copy to move on its own (deepcopy costs the search most of its time)."""
        other = copy.copy(self)
        table = other.table = copy.copy(self.table)
        # The table's own containers too: it has no copy of its own to offer.
        table._channels = {user: copy.copy(c) for user, c in self.table._channels.items()}
        table._due = dict(self.table._due)
        table._held = set(self.table._held)
        table._leaving = set(self.table._leaving)
        other.wanted = set(self.wanted)
        other.redis_subscribed = set(self.redis_subscribed)
        other.to_redis = list(self.to_redis)
        other.to_node = list(self.to_node)
        other.unbuilt = list(self.unbuilt)
        other.in_flight = list(self.in_flight)
        return other

    def key(self) -> object:
        """The whole state, for the search to visit each once."""
        channels = tuple(
            (user, c.state, c.replies_due, c.left_at) for user, c in self.table._channels.items()
        )
        return (
            channels,
            frozenset(self.wanted),
            frozenset(self.redis_subscribed),
            tuple(self.to_redis),
            tuple(self.to_node),
            tuple(self.unbuilt),
            tuple(self.in_flight),
            self.queued,
            self.done,
            self.link,
            self.table.presence,
        )


def steps(users: tuple[str, ...]) -> list[tuple[str, Callable[[Model], bool]]]:
    found: list[tuple[str, Callable[[Model], bool]]] = [
        ("control", Model.control),
        ("build", Model.build),
        ("reply", Model.reply),
        ("lose", Model.lose),
        ("redis subscription", Model.redis_subscription),
        ("redis write", Model.redis_write),
    ]
    for user in users:
        found += [
            (f"join {user}", lambda m, u=user: m.join(u)),
            (f"leave {user}", lambda m, u=user: m.leave(u)),
            (f"queue {user}", lambda m, u=user: m.queue(u)),
        ]
    return found


def search(start: Model, depth_bound: int) -> int:
    """Every step sequence up to ``depth_bound`` from ``start``, depth first, each state
    once, checked after each step; the number of states."""
    moves = steps(start.users)
    seen: set[object] = set()
    stack: list[tuple[Model, int, tuple[str, ...]]] = [(start, 0, ())]
    while stack:
        model, depth, path = stack.pop()
        key = model.key()
        if key in seen:
            continue
        seen.add(key)
        try:
            model.check()
            model.clone().settle()
        except AssertionError as exc:
            raise AssertionError(f"after {' > '.join(path)}: {exc}") from None
        if depth == depth_bound:
            continue
        for name, step in moves:
            if name == "lose" and model.link > 2:
                continue  # a third loss reaches no state two do not
            after = model.clone()
            try:
                moved = step(after)
            except AssertionError as exc:
                raise AssertionError(f"after {' > '.join((*path, name))}: {exc}") from None
            if moved:
                stack.append((after, depth + 1, (*path, name)))
    return len(seen)


@pytest.mark.parametrize("subscribed", [False, True], ids=["from nothing", "from subscribed"])
def test_every_interleaving_of_one_user_keeps_the_echo_safe(subscribed: bool) -> None:
    start = Model(("a",))
    if subscribed:  # the races of leaving, a few steps away
        start.join("a")
        start.settle()
    assert search(start, DEPTH) > 500  # the search went somewhere (~900 and ~1,500 states)


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.model = Model(USERS)

    @initialize(users=st.sets(st.sampled_from(USERS)))
    def held_already(self, users: set[str]) -> None:
        """Channels may be subscribed already: the races of leaving are a few steps away."""
        for user in sorted(users):
            self.model.join(user)
        self.model.settle()

    @rule(index=st.integers(0, 3 * len(USERS) + 5))
    def a_step(self, index: int) -> None:
        moves = steps(USERS)
        _, step = moves[index % len(moves)]
        step(self.model)

    @invariant()
    def holds(self) -> None:
        self.model.check()

    def teardown(self) -> None:
        self.model.settle()


ChannelMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,  # wall-clock limits on a shared 2-core machine would only make it flaky
    suppress_health_check=[HealthCheck.too_slow],
)
test_channel_machine = pytest.mark.hypothesis(ChannelMachine.TestCase)
