"""In process: what the sample's import costs, and the data part of a new user's first question.

On an SQLite file in a temp dir, for ``--users`` new users (the first two left out as warm-up):
the sample's import (`UsageStore.add_sample`: wall time, and the CPU of every thread of the
process per sample), then, with the store's cache emptied, what triage does with the user's
data before its first tool result (read the data, `_analysable`: the records in bounds and
every aggregate the offline agents read). Runs against whatever `runwire` is on the path, so
the same script measures `main` (`PYTHONPATH=/path/to/main/src`) and a branch.

Usage: python bench/cold_usage.py [--users 12]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from runwire.agents import triage
from runwire.domain.clock import now_ms
from runwire.domain.ids import new_id
from runwire.domain.usage import UsageRecord
from runwire.store.store import Store
from runwire.usage.pricing import PricingTable
from runwire.usage.sample import generate_sample


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, min {min(values) * 1000:.1f} ms"


async def main(users: int) -> None:
    pricing = PricingTable.load()
    sample = generate_sample()
    with tempfile.TemporaryDirectory() as data:
        async with Store.open(f"sqlite+aiosqlite:///{data}/runwire.db", migrate=True) as store:
            usage = store.usage
            # `usage_of` where the store has it (records read lazily), else `records_of`.
            load: Callable[[str], Awaitable[Sequence[UsageRecord]]] = getattr(
                usage, "usage_of", usage.records_of
            )
            walls: list[float] = []
            cpus: list[float] = []
            first_walls: list[float] = []
            first_cpus: list[float] = []
            for _ in range(users):
                account = await store.accounts.create_user(
                    new_id("usr"), f"{new_id('u')}@x.io", "h"
                )
                wall, cpu = time.perf_counter(), time.process_time()
                await usage.add_sample(account.id, sample)
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu)
                cache: Any = usage._cache  # a new process: nothing of the user read yet
                cache.clear()
                wall, cpu = time.perf_counter(), time.process_time()
                await triage._analysable(await load(account.id), now_ms(), pricing)
                first_walls.append(time.perf_counter() - wall)
                first_cpus.append(time.process_time() - cpu)
    print(f"{len(sample):,} records; {users - 2} users (after two for warm-up)")
    print(f"import: wall {_ms(walls[2:])}; CPU (all threads) {_ms(cpus[2:])}")
    print(f"first question's data: wall {_ms(first_walls[2:])}; CPU {_ms(first_cpus[2:])}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=12)
    asyncio.run(main(max(3, parser.parse_args().users)))
