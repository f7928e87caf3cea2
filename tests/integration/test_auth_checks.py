"""``runwire doctor``'s auth checks per role (auth_checks), against a real issuer on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwire.auth.key_files import KeyDirectory
from runwire.cli.auth_checks import auth_checks, issuer_problems
from runwire.config import SigningAlgorithm, load_settings
from tests.integration.test_jwks_keys import issuing

pytestmark = pytest.mark.integration


def shown(checks: list) -> list[tuple[str, bool, str]]:
    return [(c.name, c.ok, c.reason if not c.ok else c.detail) for c in checks]


async def test_an_auth_node_signs_a_token_that_its_published_keys_verify(tmp_path: Path) -> None:
    assert await auth_checks(load_settings(data_dir=tmp_path)) == []  # role all: nothing more
    key = KeyDirectory(tmp_path / "keys").add(SigningAlgorithm.ES256)
    settings = load_settings(role="auth", data_dir=tmp_path)
    assert shown(await auth_checks(settings)) == [
        ("signing keys", True, f"{key.kid} signs, in {tmp_path / 'keys'}"),
        ("token verifies", True, "against the JWK set of the key directory"),
    ]
    with issuing() as issuer:
        # The running service (at RUNWIRE_AUTH_ISSUER_URL) publishes other keys: it reads
        # another directory.
        at_url = settings.model_copy(update={"auth_issuer_url": issuer.url})
        [_, failing] = await auth_checks(at_url)
        assert (failing.name, failing.ok) == ("token verifies", False)
        assert failing.reason == (
            f"a token signed with {key.kid} does not verify against the JWK set published at "
            f"{issuer.url}"
        )
        assert "RUNWIRE_AUTH_KEYS_DIR" in failing.fix
        issuer.keys.append(key)
        assert [c.ok for c in await auth_checks(at_url)] == [True, True]


async def test_an_auth_node_without_a_key_is_told_how_to_make_one(tmp_path: Path) -> None:
    [check] = await auth_checks(load_settings(role="auth", data_dir=tmp_path))
    assert (check.name, check.ok, check.reason) == (
        "signing keys",
        False,
        f"no signing key in {tmp_path / 'keys'}",
    )
    assert check.fix.startswith("run `runwire auth rotate-keys`")
    assert not (tmp_path / "keys").exists()  # doctor looks; it makes nothing


async def test_a_chat_node_checks_its_issuer_agrees() -> None:
    with issuing() as issuer:
        chat = load_settings(role="chat", auth_issuer_url=issuer.url)
        [check, client] = await auth_checks(chat)
        assert check.ok and check.detail == (
            f"'runwire' at {issuer.url}: 1 key(s) from {issuer.url}/keys.json"
        )
        # Without Redis, doctor says what a chat node without a service client of its own lacks.
        assert (client.name, client.ok) == ("service client", True)
        assert client.detail.startswith("none: without Redis or a client with revocations:read")
        with_redis = chat.model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"})
        assert [c.name for c in await auth_checks(with_redis)] == ["auth issuer"]
        assert await issuer_problems(chat) == []
        issuer.issuer = "https://auth.example"
        [check, _] = await auth_checks(chat)
        assert (check.name, check.ok) == ("auth issuer", False)
        assert check.reason == (
            f"the discovery document at {issuer.url} names issuer 'https://auth.example', and "
            "this node expects 'runwire' (RUNWIRE_AUTH_ISSUER): set the same value on both roles"
        )
        assert await issuer_problems(chat) == [check.reason]
