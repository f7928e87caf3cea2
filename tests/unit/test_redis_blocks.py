"""The Redis bus's wire format (runwire/bus/redis_blocks.py), without Redis: the calls it packs
by hand must be the commands Redis reads, and blocks must give back the frames written into
them."""

from __future__ import annotations

import hashlib

from runwire.bus.redis_blocks import (
    APPEND_SCRIPT,
    NO_KEY,
    append_call,
    bulk,
    command,
    frames,
    stream_block,
)


def parse(packed: bytes) -> list[bytes]:
    """The arguments of one RESP command (an array of bulk strings), as Redis would read them;
    fails on anything else, or on bytes left over."""
    assert packed.startswith(b"*")
    line_end = packed.index(b"\r\n")
    count, at = int(packed[1:line_end]), line_end + 2
    parts: list[bytes] = []
    for _ in range(count):
        assert packed[at : at + 1] == b"$"
        line_end = packed.index(b"\r\n", at)
        size = int(packed[at + 1 : line_end])
        start = line_end + 2
        parts.append(packed[start : start + size])
        assert packed[start + size : start + size + 2] == b"\r\n"
        at = start + size + 2
    assert at == len(packed)
    return parts


def test_a_command_is_an_array_of_its_arguments() -> None:
    assert command(b"DEL", b"runwire:run:r1") == b"*2\r\n$3\r\nDEL\r\n$14\r\nrunwire:run:r1\r\n"
    assert parse(command(b"PUBLISH", b"ch", b"")) == [b"PUBLISH", b"ch", b""]


def test_an_append_call_names_the_script_and_carries_each_block() -> None:
    sha = hashlib.sha1(APPEND_SCRIPT.encode(), usedforsecurity=False).hexdigest().encode()
    frame = b'{"seq":3,"data":{"text":"a\\nb\\r\\n"}}'  # escaped line breaks stay on one line
    packed = append_call(
        bulk(b"100"),
        bulk(b"60"),
        bulk(b"p:node:n1:1"),
        [
            (
                bulk(b"p:run:r1"),
                bulk(b"p:user:u1"),
                bulk(b"e1"),
                3,
                4,
                [b"@n1", frame, b"{}"],
                True,
            ),
            (NO_KEY, bulk(b"p:user:u2"), bulk(b"e2"), 7, 7, [b"@n1", b"{}"], False),
        ],
    )
    assert parse(packed) == [
        b"EVALSHA",
        sha,
        b"2",
        b"p:run:r1",
        b"",
        b"100",
        b"60",
        b"p:node:n1:1",
        *(b"p:user:u1", b"e1", b"3", b"4", b"@n1\n" + frame + b"\n{}", b"1"),
        *(b"p:user:u2", b"e2", b"7", b"7", b"@n1\n{}", b"0"),
    ]


def test_a_block_gives_back_its_frames_after_the_tag() -> None:
    assert frames(b'@runwire-bus-1-abc\n{"seq":1}\n{"seq":2}') == [b'{"seq":1}', b'{"seq":2}']
    assert frames(b"@runwire-bus-1-abc") == []


def test_a_stream_entry_gives_its_first_seq_and_frames_in_either_layout() -> None:
    assert stream_block((b"5-0", {b"e": b"e1", b"f": b"4", b"d": b"@n\n{4}\n{5}"})) == (
        4,
        [b"{4}", b"{5}"],
    )
    # Written before blocks: one event an entry, no tag, its seq the entry's id.
    assert stream_block((b"9-0", {b"e": b"e1", b"d": b"{9}"})) == (9, [b"{9}"])
