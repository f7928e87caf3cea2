"""Readiness: whether the services this server depends on answer, checked for real.

One set of checks serves both ``GET /ready`` (for load balancers and orchestrators) and
``runwire doctor`` (for the person running the server): the database answers a query, and its
schema is at the revision this code needs. Each :class:`Check` carries two texts:

- ``reason``, short and safe to show anyone (``/ready`` is public): no URL, host or driver
  message, only what failed;
- ``detail`` and ``fix``, for the operator (``runwire doctor``): where it looked and the driver's
  own words, with the password of the database URL taken out, and what to do.

Other services add a :class:`Probe` (``Readiness(db, probes=[...])``): with
``RUNWIRE_REDIS_URL`` set, the app and ``runwire doctor`` both add a :class:`BusProbe` of the
Redis bus, named ``redis``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from runwire.bus.base import EventBus
from runwire.errors import DependencyUnavailable
from runwire.store.database import Database, redact_url, without_secret

__all__ = ["MIGRATE", "REACH_REDIS", "BusProbe", "Check", "Probe", "Readiness"]

CHECK_TIMEOUT_S = 5.0
"""How long one check may take before it counts as failing (a host that drops packets would
otherwise hold ``/ready`` for the driver's whole connect timeout)."""

MIGRATE = "run `runwire migrate`"
REACH_DATABASE = (
    "start the database server, or point RUNWIRE_DATABASE_URL at one that runs "
    "(host, port, database name, user and password)"
)
REACH_REDIS = "start Redis, or point RUNWIRE_REDIS_URL at one that runs"


@dataclass(frozen=True, slots=True)
class Check:
    """The outcome of one check, named after what it checks (``database``, ``schema``, ...)."""

    name: str
    ok: bool
    reason: str = "ok"  # public: what failed ("ok" when it passed)
    detail: str = ""  # operator only: the underlying error, secrets removed
    fix: str = ""  # operator only: what to do about it, when the reason does not say


class Probe(Protocol):
    """A check of one more dependency (for instance the Redis bus)."""

    async def check(self) -> Check:
        """Run the check; report a failure as a failing Check, never by raising."""
        ...


class BusProbe:
    """The event bus's backend answers (``EventBus.ping``): the Redis bus, checked as ``redis``.

    Its public reason is the bus's own message, which names Redis's host and port, never its
    password (see runwire.bus.redis).
    """

    def __init__(
        self, bus: EventBus, *, name: str = "redis", timeout_s: float = CHECK_TIMEOUT_S
    ) -> None:
        self._bus = bus
        self._name = name
        self._timeout_s = timeout_s

    async def check(self) -> Check:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._bus.ping()
        except TimeoutError:
            reason = f"{self._name} did not answer within {self._timeout_s:g} s"
            return Check(self._name, False, reason, fix=REACH_REDIS)
        except DependencyUnavailable as exc:
            return Check(self._name, False, exc.message, fix=REACH_REDIS)
        return Check(self._name, True, detail="answers")


class Readiness:
    """Runs the database checks, then each extra probe, each within :data:`CHECK_TIMEOUT_S`."""

    def __init__(
        self,
        db: Database,
        *,
        probes: Sequence[Probe] = (),
        timeout_s: float = CHECK_TIMEOUT_S,
    ) -> None:
        self._db = db
        self._probes = tuple(probes)
        self._timeout_s = timeout_s

    async def run(self) -> list[Check]:
        """Every check, in order. The schema is only checked once the database answers."""
        checks = [await self._database()]
        if checks[0].ok:
            checks.append(await self._schema())
        for probe in self._probes:
            checks.append(await probe.check())
        return checks

    async def _database(self) -> Check:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._db.ping()
        except TimeoutError:
            return Check(
                "database",
                False,
                "database unreachable (no answer within the check's time limit)",
                f"no answer from {redact_url(self._db.engine.url)} within {self._timeout_s:g} s",
                REACH_DATABASE,
            )
        except DependencyUnavailable as exc:
            return Check(
                "database", False, exc.message, self._explain(exc.__cause__), REACH_DATABASE
            )
        return Check("database", True, detail=f"{self._db.dialect} answers")

    async def _schema(self) -> Check:
        try:
            async with asyncio.timeout(self._timeout_s):
                current, head = await self._db.schema_revision()
        except Exception as exc:  # a timeout, or the database went away between two checks
            return Check(
                "schema",
                False,
                f"could not be read ({type(exc).__name__})",
                self._explain(exc),
                REACH_DATABASE,
            )
        if current != head:
            return Check(
                "schema",
                False,
                f"at {current or 'nothing'}, needs {head}: {MIGRATE}",
                f"the database has revision {current or 'nothing (no tables)'}, "
                f"this server needs {head}",
            )
        return Check("schema", True, detail=f"at {head}")

    def _explain(self, exc: BaseException | None) -> str:
        """What the operator needs: which database, and the driver's message without secrets."""
        url = self._db.engine.url
        where = redact_url(url)
        if exc is None:
            return where
        if isinstance(exc, DependencyUnavailable):  # the store has said where and why already
            return exc.message
        said = without_secret(str(exc).strip(), url)
        return f"{where}: {type(exc).__name__}" + (f": {said}" if said else "")
