"""A real OpenID Connect provider for the tests of outside issuers: the npm package
``oidc-provider`` (tests/oidc/provider.mjs), run by Node on free loopback ports.

``make test`` installs it (``npm ci`` in tests/oidc, from its package-lock.json) when Node and
npm are there. Without them (or without the install) the tests that need it skip, saying how to
run them; in CI (``CI=true``) they fail instead, as those of PostgreSQL and Redis do
(tests/services.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.services import missing
from tests.timing import unit

__all__ = ["AUDIENCE", "Client", "OidcProvider"]

PROVIDER_DIR = Path(__file__).parent / "oidc"
AUDIENCE = "runwire-api"
HOW = (
    "install Node.js and npm (apt-get install nodejs npm), then `make test` installs the "
    "provider (or run `npm ci` in tests/oidc)"
)


@dataclass(frozen=True)
class Client:
    """A client registered at the provider: its id is the ``sub`` of its tokens."""

    client_id: str
    secret: str


class OidcProvider:
    """Two issuers of one Node process: ``issuer`` (the one runwire is told to trust) and
    ``foreign`` (another issuer with the same configuration and keys of its own)."""

    def __init__(self, issuer: str, foreign: str) -> None:
        self.issuer = issuer
        self.foreign = foreign

    @classmethod
    @contextmanager
    def running(cls, log_dir: Path) -> Iterator[OidcProvider]:
        """The provider, started (a skip or, in CI, a failure when it cannot be), stopped at
        the end."""
        node = shutil.which("node")
        if node is None:
            missing("node is not installed", HOW)
        if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
            missing("the npm package oidc-provider is not installed in tests/oidc", HOW)
        log = (log_dir / "oidc-provider.log").open("wb")
        proc = subprocess.Popen(
            [node, "provider.mjs"],
            cwd=PROVIDER_DIR,
            env={"PATH": "/usr/bin:/bin", "OIDC_TEST_AUDIENCE": AUDIENCE},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
        try:
            line = _first_line(proc, unit(30))
            if not line:
                raise RuntimeError(
                    f"oidc-provider did not start: {(log_dir / 'oidc-provider.log').read_text()}"
                )
            urls = json.loads(line)
            yield cls(urls["issuer"], urls["foreign"])
        finally:
            assert proc.stdin is not None
            proc.stdin.close()  # the script exits when its input ends
            try:
                proc.wait(unit(10))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
            log.close()

    async def register(
        self, *, email: str | None = None, verified: bool | None = None, at: str | None = None
    ) -> Client:
        """A new client (a new ``sub``) at ``at`` (default: the trusted issuer), whose tokens
        carry ``email`` and ``email_verified`` when given."""
        body: dict[str, object] = {
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
        }
        if email is not None:
            body["runwire_test_email"] = email
        if verified is not None:
            body["runwire_test_email_verified"] = verified
        async with httpx.AsyncClient(timeout=unit(10)) as http:
            r = await http.post(f"{at or self.issuer}/reg", json=body)
        assert r.status_code == 201, r.text
        return Client(r.json()["client_id"], r.json()["client_secret"])

    async def token(
        self, client: Client, resource: str = "urn:runwire:api", *, at: str | None = None
    ) -> str:
        """An access token of ``client`` by the client-credentials grant for ``resource`` (see
        tests/oidc/provider.mjs for what each resource's tokens are)."""
        async with httpx.AsyncClient(timeout=unit(10)) as http:
            r = await http.post(
                f"{at or self.issuer}/token",
                auth=(client.client_id, client.secret),
                data={"grant_type": "client_credentials", "resource": resource, "scope": "chat"},
            )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])


def _first_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line ``proc`` writes ("" when it exits or says nothing within ``timeout``)."""
    assert proc.stdout is not None
    out = proc.stdout
    found: list[bytes] = []
    reader = threading.Thread(target=lambda: found.append(out.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return found[0].decode().strip() if found else ""
