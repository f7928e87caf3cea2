"""A chat node without Redis learns the sessions ended at the auth service by polling its
revocation feed (``GET /auth/revocations``, a service token with ``revocations:read``) and
denying each in its own :class:`~runwire.revocations.base.Revocations`: requests with their
tokens are refused from memory, and their sockets close, within a poll interval.

Each poll asks from a little before the last position it reached: a session ended in the same
millisecond as the last one seen, but committed after that read, is not missed (denying a
session twice is harmless). A poll that fails is logged and tried again at the next interval;
the database check every request makes still refuses the ended sessions meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx

from runwire.auth.service_account import ServiceAccount
from runwire.background import stop
from runwire.errors import ConfigError
from runwire.revocations.base import Revocations

__all__ = ["FEED_PATH", "RevocationFeed"]

log = logging.getLogger(__name__)

FEED_PATH = "/auth/revocations"
OVERLAP_MS = 5000
PAGE = 1000  # the feed's page: a full one means more may follow at once


class RevocationFeed:
    """Polls ``feed_url`` with ``account``'s token every ``interval_s`` into ``revocations``."""

    def __init__(
        self,
        account: ServiceAccount,
        feed_url: str,
        revocations: Revocations,
        *,
        interval_s: float,
    ) -> None:
        self._account = account
        self._url = feed_url
        self._revocations = revocations
        self._interval_s = interval_s
        self.position = 0  # epoch ms of the last revocation read
        self.polls = 0
        self._failing = False

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RevocationFeed]:
        """Read the feed now (what ended before this node started), then every interval."""
        await self.poll()
        task = asyncio.create_task(self._every())
        try:
            yield self
        finally:
            await stop(task)

    async def poll(self) -> int:
        """Read what ended since the last poll and deny it; how many entries were read.
        Failures are logged (once until a poll succeeds again), never raised."""
        read = 0
        after = max(0, self.position - OVERLAP_MS)
        try:
            while True:
                token = await self._account.token()
                answer = await self._account.http.get(
                    self._url,
                    params={"after": after},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if answer.status_code != 200:
                    raise ConfigError([f"{self._url} answered HTTP {answer.status_code}"])
                body = answer.json()
                for entry in body["revocations"]:
                    await self._revocations.revoke(str(entry["sid"]), float(entry["until"]))
                read += len(body["revocations"])
                self.position = max(self.position, int(body["next_after"]))
                if len(body["revocations"]) < PAGE:
                    break
                after = int(body["next_after"])
        except (ConfigError, httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            if not self._failing:
                why = "; ".join(exc.problems) if isinstance(exc, ConfigError) else repr(exc)
                log.warning(
                    "could not read the revocation feed (sockets of sessions ended at the auth "
                    "service stay open until it answers): %s",
                    why,
                )
            self._failing = True
            return read
        if self._failing:
            log.info("the revocation feed answers again")
        self._failing = False
        self.polls += 1
        return read

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            await self.poll()
