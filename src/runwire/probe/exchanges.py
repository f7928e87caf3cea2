"""The exchanges a walk has on a socket: a frame sent, and the frames that answer it.

The socket also carries frames that answer nothing the walk sent (the user's other runs, if a
person is using the account meanwhile): each exchange picks out its own by ``request_id`` and
``run_id`` and passes over the rest.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

from runwire.errors import CheckFailed
from runwire.probe.client import Channel
from runwire.probe.transcript import check_nesting, check_sequence, describe, is_terminal

__all__ = [
    "STOP_QUESTION",
    "accepted",
    "check_accepted",
    "reply",
    "resumed",
    "stop_once",
    "stopped",
]

Frame = dict[str, Any]

STOP_QUESTION = "Which model costs us the most?"


async def reply(channel: Channel, request_id: str, bound: float) -> Frame:
    """The direct reply to the frame sent with ``request_id`` (other frames are passed over),
    within ``bound`` seconds."""
    try:
        async with asyncio.timeout(bound):
            while True:
                frame = await channel.recv()
                if frame.get("request_id") == request_id and "seq" not in frame:
                    return frame
    except TimeoutError:
        raise CheckFailed(f"a reply to {request_id}", f"none within {bound:g} s") from None


def check_accepted(frame: Frame) -> Frame:
    """``frame`` when it is a ``message_accepted`` with the ids of what it started; else
    :class:`CheckFailed` with what came (an ``error`` by its code and message)."""
    if frame.get("type") == "error":
        raise CheckFailed("message_accepted", f"error {frame.get('code')}: {frame.get('message')}")
    ids = [frame.get(key) for key in ("thread_id", "message_id", "run_id")]
    if frame.get("type") != "message_accepted" or not all(isinstance(i, str) for i in ids):
        raise CheckFailed("message_accepted with thread_id, message_id, run_id", str(frame))
    return frame


async def accepted(channel: Channel, request_id: str, bound: float) -> Frame:
    """The ``message_accepted`` that answers the ``user_message`` sent with ``request_id``."""
    return check_accepted(await reply(channel, request_id, bound))


async def resumed(channel: Channel, request_id: str, run_id: str, after_seq: int) -> list[Frame]:
    """The events of ``run_id`` on a new socket after ``resume``, up to the terminal event.

    Live events may come before replayed ones, the terminal event too. A ``ping`` sent right
    after the ``resume`` is answered once the replay has been sent (frames are handled one at
    a time, in order), so a seq still missing when both the pong and the terminal event are
    in has been lost, not delayed: no wait for it."""
    await channel.send(type="ping", request_id=f"{request_id}-ping")
    events: list[Frame] = []
    pong = ended = False
    while not (pong and ended):
        frame = await channel.recv()
        if frame.get("request_id") == f"{request_id}-ping":
            pong = True
        elif frame.get("type") == "error" and frame.get("request_id") == request_id:
            raise CheckFailed(
                f"the run's events after seq {after_seq}",
                f"error {frame.get('code')}: {frame.get('message')}",
            )
        elif frame.get("run_id") == run_id and "seq" in frame:
            events.append(frame)
            ended = ended or is_terminal(frame)
    return events


async def stop_once(channel: Channel, attempt: int, thread_id: str, bound: float) -> str | None:
    """Start a run and stop it at once: a line saying so when it ends stopped; None when
    the server answered that the run had ended (run_finished) and it ended otherwise."""
    request_id = f"check-stop-{attempt}-{secrets.token_hex(4)}"
    # Into the first run's thread when there is one (a conversation goes on); else a new one.
    thread = {"thread_id": thread_id} if thread_id else {}
    await channel.send(type="user_message", content=STOP_QUESTION, request_id=request_id, **thread)
    run_id = (await accepted(channel, request_id, bound))["run_id"]
    await channel.send(type="stop_agent", run_id=run_id, request_id=f"{request_id}-stop")
    # Frames are handled in order: the pong comes after any reply to stop_agent.
    await channel.send(type="ping", request_id=f"{request_id}-ping")
    events: list[Frame] = []
    finished = pong = False
    while not (pong and events and is_terminal(events[-1])):
        frame = await channel.recv()
        if frame.get("request_id") == f"{request_id}-stop":
            if frame.get("code") != "run_finished":
                raise CheckFailed(
                    "agent_stopped after stop_agent",
                    f"{frame.get('type')} {frame.get('code')}: {frame.get('message')}",
                )
            finished = True
        elif frame.get("request_id") == f"{request_id}-ping":
            pong = True
        elif frame.get("run_id") == run_id and "seq" in frame:
            events.append(frame)
    return stopped(run_id, events, finished=finished)


def stopped(run_id: str, events: Sequence[Frame], *, finished: bool) -> str | None:
    """What a stop sent on accept came to, from the run's ``events`` (ending in its terminal
    event) and whether the stop was answered ``run_finished``: a line when the run ended
    stopped, with its agents and tools closed; None when it had ended (completed) before the
    stop reached it; :class:`CheckFailed` for anything else."""
    terminal = events[-1]
    ended_stopped = terminal.get("type") == "agent_stopped" and terminal.get("code") == "stopped"
    # Exactly one answer to each stop: agent_stopped, or run_finished for a run that ended
    # otherwise (docs/protocol.md, stop_agent).
    if ended_stopped and not finished:
        check_sequence(events)
        check_nesting(events, completed=False)
        return (
            f"run {run_id} ended with agent_stopped at seq {terminal.get('seq')}, "
            "open agents and tools closed"
        )
    if finished and terminal.get("type") == "agent_completed":
        return None
    expected = 'agent_stopped (code "stopped"), or run_finished for a run that had ended'
    if not finished and terminal.get("type") == "agent_completed":
        raise CheckFailed(expected, f"run {run_id} completed, and stop_agent got no reply")
    raise CheckFailed(
        expected,
        ("run_finished, then " if finished else "")
        + f"{describe(terminal)} code {terminal.get('code')!r}",
    )
