"""What a whole offline run costs the server in its agents, journal and in-process bus, in this
process: the golden path's question ("Where can we cut our LLM costs?") over the generated sample
data (prepared once, as a warm user's is), through the ``Supervisor`` and its agents, each event
numbered by a real ``RunJournal`` and published on a ``MemoryBus`` to one subscriber that keeps
nothing. Sockets and storing are left out (the writer's sink does nothing): bench/emit_path.py
times the way to the socket, and bench/throughput.py the whole server.

The throughput benchmark's runs move by ±15% or more on the shared machine; this one resolves a
change to the agents or the journal in a minute. Two source trees are compared by running it
with each on ``PYTHONPATH``, alternately (docs/benchmarks.md, "Hot path, session 13").

A warm user's second asking of a question finds the quality gate's verdict on the offline answer
kept in the data's memo (agents/supervisor.py); ``--fresh-verdict`` drops it before every run, so
each run pays the gate as a first asking (new data, a new question, a model's answer, the unit
tests' fresh data) does (docs/benchmarks.md, "Session 14: quality gate").

``--cold`` gives every run a new user's data instead: a view of the sample whose records are not
read, with the digest of its summary (decoded from its stored JSON, as the store hands a new
user's data out), so each run is a first question over new data (the gate's first check, the
aggregates from the digest, the question names) as in the `cold` variant of bench/throughput.py
(docs/benchmarks.md, "Session 15: coldfast").

Usage: python bench/agent_run.py [--runs 40] [--rounds 8] [--fresh-verdict | --cold]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import orjson
import uvloop

from runwire.agents.context import AgentContext
from runwire.agents.llm import OfflineProvider
from runwire.agents.supervisor import Supervisor
from runwire.agents.tools import prepare
from runwire.bus.memory import MemoryBus
from runwire.cli.collector import tune_collector
from runwire.domain.usage import UsageRecord, UsageSet, UsageView
from runwire.events.model import RunEvent
from runwire.events.redaction import Redactor
from runwire.runs.event_writer import EventWriter
from runwire.runs.journal import RunJournal
from runwire.store.summary import UsageSummary
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample

QUESTION = "Where can we cut our LLM costs?"


async def _store(batch: Sequence[RunEvent]) -> None:
    pass


async def _run(records: Sequence[UsageRecord], pricing: PricingTable) -> int:
    """One run; returns how many events it emitted."""
    bus = MemoryBus()
    delivered: list[RunEvent] = []
    await bus.subscribe("usr_1", delivered.append)
    journal = RunJournal(
        run_id="run_0123456789abcdef",
        thread_id="thr_0123456789abcdef",
        user_id="usr_1",
        epoch="e_0123456789",
        bus=bus,
        writer=EventWriter(_store),
        fence=lambda: True,
    )

    async def load_usage() -> Sequence[UsageRecord]:
        return records

    async def keep(_: dict[str, Any]) -> None:
        pass

    await Supervisor().run(
        AgentContext(
            run_id=journal.run_id,
            question=QUESTION,
            history=[],
            load_usage=load_usage,
            emit=journal.emit,
            emit_batch=journal.emit_batch,
            llm=OfflineProvider(),
            tool_timeout_s=30.0,
            llm_timeout_s=30.0,
            redactor=Redactor(),
            pricing=pricing,
            keep_quality=keep,
        )
    )
    return len(delivered)


def _forget_verdicts(records: UsageSet) -> None:
    for key in [k for k in records.memo if isinstance(k, tuple) and k[:1] == ("quality_verdict",)]:
        del records.memo[key]


def _new_user(sample: tuple[UsageRecord, ...], digest: bytes) -> UsageView:
    """The sample as the store hands a new user's data out: its digest, no record read."""

    async def read() -> tuple[UsageRecord, ...]:
        return sample

    view = UsageView(len(sample), read)
    view.memo["usage_digest"] = orjson.loads(digest)
    return view


async def main(runs: int, rounds: int, fresh_verdict: bool, cold: bool) -> None:
    pricing = PricingTable.load()
    sample = tuple(generate_sample())
    records = UsageSet(sample)
    prepare(records, pricing)  # as a warm user's data is: the analyses read from the memo
    digest = orjson.dumps(UsageSummary.of(sample).digest())
    tune_collector(50_000)  # as `runwire serve` does
    events = await _run(records, pricing)
    best = float("inf")
    for _ in range(rounds):
        views = [_new_user(sample, digest) if cold else records for _ in range(runs)]
        started = time.process_time()  # CPU time: waiting for the shared machine is not counted
        for view in views:
            if fresh_verdict:
                _forget_verdicts(records)
            await _run(view, pricing)
        best = min(best, (time.process_time() - started) / runs)
    print(f"{events} events a run; best of {rounds} rounds of {runs} runs, CPU time:")
    print(f"  per run: {best * 1e6:8.0f} us   per event: {best * 1e6 / events:6.2f} us")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--fresh-verdict", action="store_true", help="check every run's answer")
    parser.add_argument("--cold", action="store_true", help="every run a new user's first question")
    args = parser.parse_args()
    uvloop.run(main(args.runs, args.rounds, args.fresh_verdict, args.cold))
