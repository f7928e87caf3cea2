"""The Redis bus's pub/sub link: one node's pub/sub connection, subscribed to the channels of the
users it holds sockets of, handing each other node's message to that user's local subscribers.

The channels' states are a :class:`~runwire.bus.redis_channels.ChannelTable` (pure); this module
is its asyncio side: the connection (reconnected with backoff), the task that sends the
(un)subscriptions and keep-alive pings the table asks for, and the subscribers waiting for their
channel. Every subscription that existed while the connection was down gets ``on_gap`` once its
channel is subscribed again (the transport then asks the client to reconnect and resume).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection

from runwire.backlog import Backlog
from runwire.backoff import Backoff
from runwire.bus.base import BatchHandler, EventHandler, GapHandler
from runwire.bus.redis_blocks import Names, frames
from runwire.bus.redis_channels import ChannelTable, UnexpectedReply
from runwire.bus.redis_writer import GAP, LINK_ERRORS
from runwire.events.model import RunEvent

__all__ = ["PubSubLink", "Subscriber"]

log = logging.getLogger(__name__)


class Subscriber:
    """One local subscription of a user's events (the bus's ``Subscription``)."""

    __slots__ = ("_link", "closed", "handler", "missed", "on_batch", "on_gap", "user_id")

    def __init__(
        self,
        link: PubSubLink,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None,
        on_batch: BatchHandler | None,
    ) -> None:
        self._link = link
        self.user_id = user_id
        self.handler = handler
        self.on_gap = on_gap
        self.on_batch = on_batch
        self.closed = False
        self.missed = False  # delivery was not in effect for a while: call on_gap when it is

    def close(self) -> None:
        self._link.drop(self)

    def gap(self) -> None:
        if self.on_gap is None or self.closed:
            return
        try:
            self.on_gap()
        except Exception:
            log.exception("gap handler failed")

    def deliver(self, events: Sequence[RunEvent]) -> None:
        """Hand ``events`` (one run's, consecutive, of one numbering) to this subscriber: whole
        to its ``on_batch`` if it has one, else one by one."""
        on_batch = self.on_batch
        if on_batch is not None:
            try:
                on_batch(events)
            except Exception:  # one broken connection must not stop the others' delivery
                log.exception("event handler failed")
            return
        handler = self.handler
        for event in events:
            try:
                handler(event)
            except Exception:
                log.exception("event handler failed")


class PubSubLink:
    """A node's pub/sub connection and its local subscribers. Nothing connects until the bus
    runs :meth:`listen` and :meth:`control` (its tasks)."""

    def __init__(
        self,
        *,
        name: str,
        names: Names,
        writes: Backlog,
        connect: Callable[[], AbstractConnection],
        where: str,
        confirm_timeout_s: float,
        ping_interval_s: float,
        retry_max_s: float,
    ) -> None:
        self._name = name
        self._names = names
        self._writes = writes
        self._connect = connect
        self._where = where
        self._confirm_timeout_s = confirm_timeout_s
        self._ping_interval_s = ping_interval_s
        self._retry_max_s = retry_max_s
        # The first line of this node's messages: skipped (their events reached this node's
        # subscribers when they were published).
        self._tag_line = b"@" + name.encode() + b"\n"
        self.subscribers: dict[str, list[Subscriber]] = {}
        """This node's subscribers, by user id (a user is here while it has one)."""
        self.channels = ChannelTable()
        self._waiters: dict[str, asyncio.Future[None]] = {}  # subscribers waiting for a channel
        self._conn: AbstractConnection | None = None
        self.linked = asyncio.Event()
        """Set once the first connection is up."""
        self._links = 0
        self._wake = asyncio.Event()
        self._last_reply = 0.0
        self._last_ping = 0.0

    @property
    def up(self) -> bool:
        """True while the connection is up."""
        return self._conn is not None

    def wake(self) -> None:
        """Look at the channels again (a leaving one may be free to go)."""
        self._wake.set()

    # -- subscribers --

    async def subscribe(
        self,
        user_id: str,
        handler: EventHandler,
        on_gap: GapHandler | None,
        on_batch: BatchHandler | None,
    ) -> Subscriber:
        """A new subscriber; returns once delivery to it is in effect, or the wait for that
        is given up on (then it is told of the gap once it is)."""
        sub = Subscriber(self, user_id, handler, on_gap, on_batch)
        subs = self.subscribers.get(user_id)
        if subs is None:
            subs = self.subscribers[user_id] = []
            self.channels.want(user_id)
        subs.append(sub)
        if self.channels.in_effect(user_id):
            return sub
        if self._conn is None:
            sub.missed = True  # told to resume once the link is back
            return sub
        waiter = self._waiters.get(user_id)
        if waiter is None:
            waiter = self._waiters[user_id] = asyncio.get_running_loop().create_future()
        self._wake.set()
        try:
            async with asyncio.timeout(self._confirm_timeout_s):
                await asyncio.shield(waiter)
        except TimeoutError:
            pass
        except BaseException:
            sub.close()
            raise
        if not self.channels.in_effect(user_id):
            sub.missed = True
        return sub

    def drop(self, sub: Subscriber) -> None:
        """Stop delivery to ``sub`` (idempotent); the user's last one lets go of the channel."""
        if sub.closed:
            return
        sub.closed = True
        user_id = sub.user_id
        subs = self.subscribers.get(user_id)
        if subs is None:
            return
        subs.remove(sub)
        if not subs:
            del self.subscribers[user_id]
            if self.channels.unwant(user_id, self._writes.queued):
                _resolve(self._waiters.pop(user_id, None))  # nothing was sent for it
            self._wake.set()

    # -- the connection --

    async def listen(self) -> None:
        """The listener task: keep a connection, and read it, until cancelled."""
        backoff = Backoff(max_s=self._retry_max_s)
        while True:
            conn = self._connect()
            try:
                await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                loop = asyncio.get_running_loop()
                self._last_reply = self._last_ping = loop.time()
                self._links += 1
                presence = f"{self._names.prefix}node:{self._name}:{self._links}".encode()
                # Before any user channel: until Redis confirms it, blocks are published.
                await conn.send_command("SUBSCRIBE", presence)
                self._conn = conn
                self.linked.set()
                self._wake.set()  # every wanted channel is to be subscribed
                backoff.reset()
                while True:
                    reply = await conn.read_response()
                    self._last_reply = loop.time()
                    self._on_reply(reply)
            except (*LINK_ERRORS, UnexpectedReply) as exc:
                log.warning(
                    "the pub/sub connection to Redis at %s is down (%s); reconnecting",
                    self._where,
                    exc if isinstance(exc, UnexpectedReply) else type(exc).__name__,
                )
            finally:
                if self._conn is conn:
                    self._lost()
                await conn.disconnect(nowait=True)
            await backoff.wait()

    def _on_reply(self, reply: Any) -> None:
        kind = reply[0]
        if kind == b"message":
            self._deliver(reply[1], reply[2])
        elif kind == b"subscribe" or kind == b"unsubscribe":
            channel = reply[1]
            prefix = self._names.user_prefix
            if not channel.startswith(prefix):
                self.channels.presence = channel  # this link's: only it subscribes to it
                return
            user_id = channel[len(prefix) :].decode()
            if self.channels.replied(user_id):
                self._settled(user_id)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        if data.startswith(self._tag_line):
            return  # this node's own events: delivered here when published
        subs = self.subscribers.get(channel[len(self._names.user_prefix) :].decode())
        if not subs:
            return
        if data == GAP:
            for sub in tuple(subs):
                sub.gap()
            return
        # The sending node's tag, then a block: one run's consecutive events of one numbering,
        # in order, handed to each subscriber whole (as publish_batch would).
        decode = RunEvent.decode
        try:
            events = [decode(frame) for frame in frames(data)]
        except Exception:
            self._deliver_each(channel, data, subs)
            return
        if events:
            for sub in tuple(subs):
                sub.deliver(events)

    def _deliver_each(self, channel: bytes, data: bytes, subs: list[Subscriber]) -> None:
        """A message holding a frame that is not a run event: the others go one by one."""
        for frame in frames(data):
            try:
                event = RunEvent.decode(frame)
            except Exception:
                log.exception("an event on %r is not a run event; dropped", channel)
                continue
            for sub in tuple(subs):
                try:
                    sub.handler(event)
                except Exception:  # one broken connection must not stop the others' delivery
                    log.exception("event handler failed")

    def _settled(self, user_id: str) -> None:
        """Every command sent for the channel is answered: its waiting subscribers go on, and
        those that missed delivery for a while are told, now that it is in effect again."""
        _resolve(self._waiters.pop(user_id, None))
        if self.channels.in_effect(user_id):
            for sub in tuple(self.subscribers.get(user_id, ())):
                if sub.missed:
                    sub.missed = False
                    sub.gap()

    def _lost(self) -> None:
        self._conn = None
        self.channels.link_lost()
        for subs in self.subscribers.values():
            for sub in subs:
                sub.missed = True
        for waiter in self._waiters.values():
            _resolve(waiter)
        self._waiters.clear()

    async def control(self) -> None:
        """The control task: send the (un)subscriptions the table asks for, and keep-alive
        pings; a connection that stopped answering them is dropped (and made again)."""
        while True:
            try:
                async with asyncio.timeout(self._ping_interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            conn = self._conn
            if conn is None:
                continue
            # A leaving channel's UNSUBSCRIBE waits for the writes sent while the node held it
            # (they may skip publishing, see redis_channels): looked at again as replies come.
            subscribe, unsubscribe = self.channels.commands(self._writes.done)
            channel = self._names.channel
            now = asyncio.get_running_loop().time()
            try:
                if subscribe:
                    await conn.send_command("SUBSCRIBE", *map(channel, subscribe))
                if unsubscribe:
                    await conn.send_command("UNSUBSCRIBE", *map(channel, unsubscribe))
                if now - self._last_reply > 3 * self._ping_interval_s:
                    log.warning("Redis at %s stopped answering pings; reconnecting", self._where)
                    await conn.disconnect(nowait=True)
                elif now - self._last_ping >= self._ping_interval_s:
                    self._last_ping = now
                    await conn.send_command("PING")
            except LINK_ERRORS:
                await conn.disconnect(nowait=True)  # the listener sees it and reconnects


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)
