"""The Redis bus's wire format, pure (no I/O): its keys and channels, its append script and the
calls to it, packed by hand in RESP, and the blocks it writes (a stream entry and a pub/sub
message each) with the other writes a node queues.

A block is one run's consecutive events of one numbering: the writing node's tag (``@<name>``),
then each event's wire frame, a line each (compact JSON holds no raw line break).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from runwire.events.model import RunEvent

__all__ = [
    "APPEND_SCRIPT",
    "BLOCK_EVENTS",
    "FENCE_SUFFIX",
    "NO_KEY",
    "Block",
    "BlockCall",
    "GapNotice",
    "Names",
    "Release",
    "Renumber",
    "Write",
    "append_call",
    "bulk",
    "command",
    "frames",
    "stream_block",
]

BLOCK_EVENTS = 256  # a run's events in one stream entry, at most: what trimming keeps past maxlen
FENCE_SUFFIX = b":epoch"
"""After a run's stream key: the key of its fence, the epoch it was renumbered under (a lost run
closed by another node); the append script drops blocks of any other epoch while it lives."""

# Appends a batch of events to their runs' streams and publishes them. A run's events of one
# call are one block: the sending node's tag, then the events, each line one event (compact JSON
# has no line break). A block is one stream entry (`e` epoch, `f` the seq of its first event,
# `d` the block, id the seq of its last event) and one message on its user's channel: Redis's
# cost is per entry, message and argument, and a string built here would be copied again.
# A block is not published when the sending node is its channel's only subscriber (its own
# sockets had it when published): the node says which channels it holds (a "1" per block), and
# names its presence channel, which only its current pub/sub connection subscribes to; a node
# whose connection is gone (its presence has no subscriber) or that may have left the channel
# (it says "0") gets its blocks published as before, so another node's subscriber never misses
# one (docs/decisions.md, "Redis mode, session 12").
# KEYS[i]: the stream of block i. ARGV[1..3]: maxlen, ttl_s, the node's presence channel ("" for
# none); then six per block: channel, epoch, first seq, last seq, the block, "1" if the node holds
# the channel; appended to the stream unless the run's stream has a hole (then its KEYS entry is
# "", and the block is only published).
APPEND_SCRIPT = """
local tops, epochs, sent = {}, {}, 0
local maxlen = tonumber(ARGV[1])
local present = ARGV[3] ~= '' and redis.call('PUBSUB', 'NUMSUB', ARGV[3])[2] == 1
for i, key in ipairs(KEYS) do
  local at = 4 + (i - 1) * 6
  local channel, epoch, block = ARGV[at], ARGV[at + 1], ARGV[at + 4]
  local first, last = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3])
  local alone = present and ARGV[at + 5] == '1'
  if key ~= '' then
    local top = tops[key]
    if top ~= nil and epochs[key] ~= epoch then
      -- the run was logged again under a new epoch since this call's last block of it
      top = nil
      tops[key] = nil
    end
    if top == nil then
      top = false
      local held = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)[1]
      if held and held[2][2] == epoch then
        top = tonumber(string.match(held[1], '^%d+'))
      else
        -- a run's first block, or a new numbering: only then is its fence looked at
        local fence = redis.call('GET', key .. ':epoch')
        if fence and fence ~= epoch then
          -- a numbering the run no longer has (a lost node back late): none of it goes out
          block = nil
        elseif held then
          -- the run's log was rewritten under a new epoch: what is held names other events
          redis.call('DEL', key)
        end
      end
    end
    if top and top >= first then
      -- sent again after its reply was lost: what the stream holds was published already
      if top >= last then
        block = nil
      else
        local tag_end = string.find(block, '\\n', 1, true)
        local from = tag_end + 1
        for _ = first, top do from = string.find(block, '\\n', from, true) + 1 end
        block = string.sub(block, 1, tag_end) .. string.sub(block, from)
        first = top + 1
      end
    end
    if block then
      -- keep the last maxlen events at least: entries whose block ends before them go
      redis.call('XADD', key, 'MINID', math.max(0, last - maxlen + 1), last .. '-0',
        'e', epoch, 'f', first, 'd', block)
      if tops[key] == nil then redis.call('EXPIRE', key, ARGV[2]) end
      tops[key], epochs[key] = last, epoch
    end
  end
  if block and not (alone and redis.call('PUBSUB', 'NUMSUB', channel)[2] == 1) then
    redis.call('PUBLISH', channel, block)
    sent = sent + 1
  end
end
return sent
"""
_SHA = hashlib.sha1(APPEND_SCRIPT.encode(), usedforsecurity=False).hexdigest().encode()


def bulk(part: bytes) -> bytes:
    """One argument of a command in RESP."""
    return b"$%d\r\n%s\r\n" % (len(part), part)


def command(*parts: bytes) -> bytes:
    """One command in RESP, as Redis reads it."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


_HEAD = b"$7\r\nEVALSHA\r\n" + bulk(_SHA)
NO_KEY = bulk(b"")
"""In place of a stream key: the block is published only (the run's stream has a hole); in place
of the presence channel: none (the node's blocks are published)."""
_HOLDS, _MAY_NOT_HOLD = bulk(b"1"), bulk(b"0")  # the node holds the block's channel, or not

BlockCall = tuple[bytes, bytes, bytes, int, int, Sequence[bytes], bool]
"""One block as the append script takes it: its stream key (RESP bulk, or :data:`NO_KEY`), its
channel and epoch (RESP bulks), its first and last seq, its lines (the tag, then the frames), and
whether the sending node holds the channel."""


def append_call(maxlen: bytes, ttl: bytes, presence: bytes, blocks: Sequence[BlockCall]) -> bytes:
    """One call of the append script in RESP: ``maxlen``, ``ttl`` and ``presence`` are RESP bulks
    (see :data:`APPEND_SCRIPT` for what each is)."""
    keys: list[bytes] = []
    args: list[bytes] = [maxlen, ttl, presence]
    for key, channel, epoch, first, last, lines, holds in blocks:
        keys.append(key)
        joined = b"\n".join(lines)
        args += (
            channel,
            epoch,
            bulk(b"%d" % first),
            bulk(b"%d" % last),
            b"$%d\r\n" % len(joined),
            joined,  # not copied once more into a bulk of its own
            b"\r\n",
            _HOLDS if holds else _MAY_NOT_HOLD,
        )
    count = len(keys)
    head = b"*%d\r\n%s%s" % (6 + 7 * count, _HEAD, bulk(b"%d" % count))
    return head + b"".join(keys) + b"".join(args)


class Block:
    """A run's consecutive events, in the order published: one stream entry and one message.

    Events join the run's open block as they are published (a block takes the run's next
    ``seq`` of the same epoch, up to ``BLOCK_EVENTS``), until the writer takes the queue (then
    the run's next event opens a new block)."""

    __slots__ = ("channel", "first", "next_seq", "run", "run_id", "user_id", "wires")

    def __init__(
        self,
        run: tuple[bytes, str, bytes],
        channel: bytes,
        event: RunEvent,
        user_id: str,
        tag: bytes,
    ) -> None:
        self.run = run  # the stream key, the epoch, the epoch encoded
        self.channel = channel
        self.run_id = event.run_id
        self.user_id = user_id
        self.first = event.seq
        self.next_seq = event.seq
        self.wires = [tag]  # the node's tag, then each event's wire frame

    @property
    def count(self) -> int:
        """Writes it holds (each event is one)."""
        return len(self.wires) - 1

    def add(self, event: RunEvent) -> None:
        self.wires.append(event.wire)
        self.next_seq += 1


class Release:
    """The deletion of a run's stream (its events are all stored)."""

    __slots__ = ("run_id",)
    count = 1

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id


class GapNotice:
    """A message on a user's channel saying some of the user's events were dropped."""

    __slots__ = ("user_id",)
    count = 1

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id


class Renumber:
    """A run's fence (see :data:`FENCE_SUFFIX`), and the deletion of its stream."""

    __slots__ = ("epoch", "run_id")
    count = 1

    def __init__(self, run_id: str, epoch: str) -> None:
        self.run_id = run_id
        self.epoch = epoch


Write = Block | Release | Renumber | GapNotice
"""What a node queues for Redis, in order."""


_HELD_NAMES = 10_000  # RESP-encoded stream keys and channels kept for reuse, at most


class Names:
    """The bus's keys and channels under its ``prefix``, and their RESP encodings, made once
    and reused by every event (at most ~10,000 of each kept)."""

    __slots__ = ("_runs", "_users", "prefix", "user_prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.user_prefix = f"{prefix}user:".encode()
        """What starts every user's channel (the user id follows)."""
        self._runs: dict[str, tuple[bytes, str, bytes]] = {}
        self._users: dict[str, bytes] = {}

    def stream(self, run_id: str) -> str:
        """The key of the run's stream."""
        return f"{self.prefix}run:{run_id}"

    def channel(self, user_id: str) -> bytes:
        """The user's channel."""
        return self.user_prefix + user_id.encode()

    def run(self, run_id: str, epoch: str) -> tuple[bytes, str, bytes]:
        """The run's stream key (RESP bulk), ``epoch``, and ``epoch`` as a RESP bulk."""
        runs = self._runs
        run = runs.get(run_id)
        if run is None or run[1] != epoch:
            run = runs[run_id] = (bulk(self.stream(run_id).encode()), epoch, bulk(epoch.encode()))
            if len(runs) > _HELD_NAMES:
                del runs[next(iter(runs))]
        return run

    def channel_bulk(self, user_id: str) -> bytes:
        """The user's channel as a RESP bulk."""
        users = self._users
        channel = users.get(user_id)
        if channel is None:
            channel = users[user_id] = bulk(self.channel(user_id))
            if len(users) > _HELD_NAMES:
                del users[next(iter(users))]
        return channel

    def forget(self, run_id: str) -> None:
        """The run is released: its names are not needed again."""
        self._runs.pop(run_id, None)


def frames(block: bytes) -> list[bytes]:
    """A block's events' wire frames, in order (after the writing node's tag)."""
    return block.split(b"\n")[1:]


def stream_block(entry: tuple[bytes, dict[bytes, bytes]]) -> tuple[int, list[bytes]]:
    """A stream entry's first seq and its events' wire frames, in order."""
    entry_id, fields = entry
    first = fields.get(b"f")
    if first is None:
        # Written before blocks (one event an entry, no tag): a stream left by a node of the
        # previous version is still read whole until its run is released or it expires.
        return int(entry_id.partition(b"-")[0]), [fields[b"d"]]
    return int(first), frames(fields[b"d"])
