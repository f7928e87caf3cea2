"""``runwire check`` without ``--auth-url`` finds the auth service where the API names it
(``GET /api/config``), against a real HTTP server on loopback."""

from __future__ import annotations

import pytest

from runwire.probe.client import Target
from tests.integration.test_jwks_keys import Issuer
from tests.ports import closed_port
from tests.timing import unit

pytestmark = pytest.mark.integration


class ChatNode(Issuer):
    """A server whose GET /api/config names ``auth_url`` (or answers 404 with None)."""

    auth_url: str | None = "https://auth.example.com/"

    def document(self, path: str) -> dict[str, str | None] | None:  # type: ignore[override]
        if path == "/api/config" and self.auth_url != "404":
            return {"auth_url": self.auth_url}
        return None


async def test_the_auth_url_is_what_the_api_names_else_the_api_itself() -> None:
    node = ChatNode()
    node.start()
    try:
        target = Target(node.url, node.url, unit(5))
        assert (await target.discovered()).auth_url == "https://auth.example.com"
        node.auth_url = None  # role all: /auth/* is here
        assert (await target.discovered()) == target
        node.auth_url = "404"  # a server from before /api/config
        assert (await target.discovered()) == target
    finally:
        node.stop()
    with closed_port() as port:
        unreachable = Target(f"http://127.0.0.1:{port}", "x", unit(5))
        assert (await unreachable.discovered()) == unreachable
