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
Redis bus, named ``redis``; with ``RUNWIRE_LLM_BASE_URL`` set, an :class:`LLMProbe` of the LLM
endpoint, named ``llm``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ssl import SSLContext
from typing import Protocol

import httpx

from runwire.bus.base import EventBus
from runwire.config import Settings, safe_url
from runwire.errors import DependencyUnavailable
from runwire.store.database import Database, redact_url, without_secret

__all__ = [
    "MIGRATE",
    "REACH_LLM",
    "REACH_REDIS",
    "BusProbe",
    "Check",
    "LLMProbe",
    "Probe",
    "Readiness",
]

CHECK_TIMEOUT_S = 5.0
"""How long one check may take before it counts as failing (a host that drops packets would
otherwise hold ``/ready`` for the driver's whole connect timeout)."""

MIGRATE = "run `runwire migrate`"
REACH_DATABASE = (
    "start the database server, or point RUNWIRE_DATABASE_URL at one that runs "
    "(host, port, database name, user and password)"
)
REACH_REDIS = "start Redis, or point RUNWIRE_REDIS_URL at one that runs"
REACH_LLM = (
    "start the LLM endpoint, or point RUNWIRE_LLM_BASE_URL at one that runs "
    "(its API's base, the part before /chat/completions)"
)
LLM_KEY = "set RUNWIRE_LLM_API_KEY to a key the endpoint accepts"

LLM_PROBE_TIMEOUT_S = 3.0
"""How long the LLM endpoint has to answer a probe (an answer is a few milliseconds)."""
LLM_PROBE_CACHE_S = 5.0
"""How long a probe's outcome is reused: /ready may be asked every second by each of several
load balancers, and each must not cost a request to a metered API."""


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


class LLMProbe:
    """The LLM endpoint answers, and takes the key: ``GET {base}/models`` with it, as cheap a
    request as an OpenAI-compatible API has. Anything but a 2xx fails the check: a 404 there
    means a base URL runs would fail on too (the usual slip: a missing ``/v1``).

    The outcome is kept for ``cache_s`` seconds, and checks asked while a probe is under way
    wait for that probe instead of starting one each: /ready costs at most one request to the
    endpoint per ``cache_s``, and never takes longer than ``timeout_s``.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        name: str = "llm",
        timeout_s: float = LLM_PROBE_TIMEOUT_S,
        cache_s: float = LLM_PROBE_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = base_url.rstrip("/") + "/models"
        self._where = safe_url(self._url)
        self._api_key = api_key
        self._name = name
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._clock = clock
        self._tls: SSLContext | None = None
        self._last: tuple[float, Check] | None = None  # (when it expires, outcome)
        self._probing = asyncio.Lock()

    @classmethod
    def configured(cls, settings: Settings) -> LLMProbe | None:
        """The probe of RUNWIRE_LLM_BASE_URL with its key, within the LLM's own timeout if
        that is shorter; None when no LLM endpoint is configured."""
        if not settings.llm_base_url:
            return None
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else ""
        timeout_s = min(settings.llm_timeout_s, LLM_PROBE_TIMEOUT_S)
        return cls(settings.llm_base_url, key, timeout_s=timeout_s)

    def __repr__(self) -> str:  # the key must not reach logs through a repr
        return f"LLMProbe(url={self._where!r})"

    async def check(self) -> Check:
        async with self._probing:  # one probe at a time; those waiting take its outcome
            if self._last is None or self._clock() >= self._last[0]:
                check = await self._ask()
                self._last = (self._clock() + self._cache_s, check)
            return self._last[1]

    async def _ask(self) -> Check:
        name = self._name
        if self._tls is None:  # loading the CA bundle takes tens of ms: once
            self._tls = httpx.create_ssl_context()
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                httpx.AsyncClient(timeout=self._timeout_s, verify=self._tls) as client,
            ):
                response = await client.get(self._url, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            reason = f"{name} did not answer within {self._timeout_s:g} s"
            return Check(name, False, reason, f"no answer from {self._where}", REACH_LLM)
        except httpx.HTTPError as exc:
            # The exception's text can carry the URL; its class says enough (ConnectError, ...).
            kind = type(exc).__name__
            return Check(
                name, False, f"{name} unreachable ({kind})", f"{self._where}: {kind}", REACH_LLM
            )
        status = response.status_code
        if 200 <= status < 300:
            return Check(name, True, detail=f"{self._where} answers")
        if status in (401, 403):
            reason = f"{name} refused the API key (HTTP {status})"
            return Check(name, False, reason, f"{self._where} answered HTTP {status}", LLM_KEY)
        reason = f"{name} answered HTTP {status}"
        return Check(name, False, reason, f"{self._where} answered HTTP {status}", REACH_LLM)


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
