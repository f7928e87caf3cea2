"""Service tokens and client credentials, the parts that need no database: a service token is
never a user's session nor the other way round; scopes, audiences, expiry and forged headers
are refused; Basic credentials, client keys and scopes are read as RFC 6749 and RFC 7523 say.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from runwire.app.tokens import build_access_tokens, build_service_tokens
from runwire.auth.client_credentials import (
    IssuedToken,
    basic_credentials,
    check_scopes,
    client_key,
)
from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.auth.service_account import assertion_key
from runwire.auth.service_tokens import Scope, ServiceTokens
from runwire.config import Settings
from runwire.errors import (
    AuthError,
    ConfigError,
    InputError,
    InsufficientScope,
    InvalidClient,
    ServiceTokenRequired,
    TokenExpired,
)
from tests.conftest import test_settings
from tests.keys import rsa_key

pytestmark = pytest.mark.unit


# One key for the whole file, as in test_access_tokens.py: the tests sign and verify with it and
# none changes its directory (a new key file per test, fsync'd, and a Settings each, were most of
# these tests' time). Each test builds its own ServiceTokens.
@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return test_settings(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def ring(settings: Settings) -> KeyRing:
    return KeyRing(KeyDirectory(settings.keys_dir), open_keys(settings))


@pytest.fixture
def service(settings: Settings, ring: KeyRing) -> ServiceTokens:
    return build_service_tokens(settings, ring)


def forged(ring: KeyRing, **claims: Any) -> str:
    key = ring.signing()
    now = int(time.time())
    body = {
        "iss": "runwire",
        "aud": "runwire",
        "sub": "svc_a",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "typ": "service",
        "scope": "messages:write",
        **claims,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(
        body, key.private_key, algorithm=key.algorithm.value, headers={"kid": key.kid}
    )


async def test_a_service_token_names_its_client_and_scopes(service: ServiceTokens) -> None:
    token = service.issue("svc_a", "runwire", ["messages:write", "revocations:read"])
    claims = await service.check(token)
    assert claims.client_id == "svc_a"
    assert claims.scopes == {"messages:write", "revocations:read"}
    assert claims.expires_at == pytest.approx(time.time() + 300, abs=2)
    claims.require(Scope.MESSAGES_WRITE)
    unverified = jwt.decode(token, options={"verify_signature": False})
    assert unverified["typ"] == "service" and "sid" not in unverified


async def test_a_token_without_the_scope_is_refused_naming_it(service: ServiceTokens) -> None:
    claims = await service.check(service.issue("svc_a", "runwire", ["revocations:read"]))
    with pytest.raises(InsufficientScope) as refused:
        claims.require(Scope.MESSAGES_WRITE)
    assert refused.value.code == "insufficient_scope"
    assert refused.value.wire_fields() == {"scope": "messages:write"}
    assert "--scope messages:write" in refused.value.message


async def test_a_users_token_is_no_service_token_and_a_service_token_no_session(
    settings: Settings, ring: KeyRing, service: ServiceTokens
) -> None:
    access = build_access_tokens(settings, ring)
    with pytest.raises(ServiceTokenRequired) as refused:
        await service.check(access.issue("usr_a", "ses_a"))
    assert refused.value.code == "service_token_required"
    with pytest.raises(AuthError, match="invalid access token"):
        access.verify(service.issue("svc_a", "runwire", ["messages:write"]))
    # Even one made to carry a sid: its typ says what it is.
    with pytest.raises(AuthError, match="invalid access token"):
        access.verify(forged(ring, sid="ses_a"))


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"aud": "partner-api"}, "another audience"),
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"typ": None}, "no typ"),
        ({"typ": "refresh"}, "another typ"),
        ({"scope": None}, "no scope"),
        ({"jti": None}, "no jti"),
    ],
)
async def test_a_service_token_that_is_not_ours_is_refused(
    ring: KeyRing, service: ServiceTokens, claims: dict[str, Any], why: str
) -> None:
    with pytest.raises(AuthError, match="invalid service token"):
        await service.check(forged(ring, **claims))


async def test_an_expired_or_unsigned_service_token_is_refused(
    ring: KeyRing, service: ServiceTokens
) -> None:
    with pytest.raises(TokenExpired, match="service token expired"):
        await service.check(forged(ring, exp=int(time.time()) - 120))
    token = forged(ring)
    _, payload, _ = token.split(".")
    none_header = base64.urlsafe_b64encode(
        b'{"alg":"none","kid":"%s"}' % ring.signing().kid.encode()
    )
    with pytest.raises(AuthError, match="invalid service token"):
        await service.check(f"{none_header.rstrip(b'=').decode()}.{payload}.")
    with pytest.raises(AuthError, match="invalid service token"):
        await service.check("not a token")


def basic(value: str) -> str:
    return "Basic " + base64.b64encode(value.encode()).decode()


def test_basic_credentials_are_read_as_rfc_6749_writes_them() -> None:
    assert basic_credentials(basic("svc_a:s3cret")) == ("svc_a", "s3cret")
    # Both parts are form-encoded before they are joined: a ':' in the secret survives.
    assert basic_credentials(basic("svc_a:a%3Ab%2Bc")) == ("svc_a", "a:b+c")
    assert basic_credentials(None) is None
    assert basic_credentials("Bearer abc") is None
    for bad in ("Basic !!!", basic("no-colon"), "Basic " + base64.b64encode(b"\xff:x").decode()):
        with pytest.raises(InvalidClient):
            basic_credentials(bad)


def pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_client_keys_pin_their_algorithm() -> None:
    assert client_key(pem(ed25519.Ed25519PrivateKey.generate()))[0] == "EdDSA"
    assert client_key(pem(ec.generate_private_key(ec.SECP256R1())))[0] == "ES256"
    assert client_key(pem(rsa_key()))[0] == "RS256"
    with pytest.raises(InputError, match="Ed25519, P-256 or RSA of at least 2048"):
        client_key(pem(ec.generate_private_key(ec.SECP384R1())))
    with pytest.raises(InputError, match="not a PEM public key"):
        client_key("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")


def test_scopes_are_scope_tokens() -> None:
    assert check_scopes(["messages:write", "messages:write", "x"]) == ["messages:write", "x"]
    for bad in ([], ['say"hi'], ["back\\slash"], ["x" * 101], [f"s{i:03}" * 20 for i in range(20)]):
        with pytest.raises(InputError) as refused:
            check_scopes(bad)
        assert refused.value.code == "invalid_scope"


def test_the_token_response_is_rfc_6749s() -> None:
    assert IssuedToken("t", 300, ["a", "b"]).public() == {
        "access_token": "t",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "a b",
    }


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"service_client_secret": "s"}, "belong to RUNWIRE_SERVICE_CLIENT_ID: set it too"),
        (
            {"role": "chat", "auth_issuer_url": "http://a", "service_client_id": "svc_a"},
            "needs RUNWIRE_SERVICE_CLIENT_SECRET",
        ),
        (
            {
                "role": "chat",
                "auth_issuer_url": "http://a",
                "service_client_id": "svc_a",
                "service_client_secret": "s",
                "service_client_key_file": "/k.pem",
            },
            "and only one of them",
        ),
        (
            {"service_client_id": "svc_a", "service_client_secret": "s"},
            "with RUNWIRE_ROLE=all this process is the auth service",
        ),
        ({"service_token_ttl_s": 1000}, "RUNWIRE_SERVICE_TOKEN_TTL_S must not exceed"),
    ],
)
def test_service_client_settings_that_cannot_work_are_named(
    tmp_path: Path, overrides: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        test_settings(tmp_path, **overrides)
    assert any(said in problem for problem in refused.value.problems), refused.value.problems


def test_a_nodes_key_file_is_read_with_its_algorithm(tmp_path: Path) -> None:
    def written(key: Any) -> Path:
        path = tmp_path / f"{time.time_ns()}.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    assert assertion_key(written(ed25519.Ed25519PrivateKey.generate()))[0] == "EdDSA"
    assert assertion_key(written(ec.generate_private_key(ec.SECP256R1())))[0] == "ES256"
    assert assertion_key(written(rsa_key()))[0] == "RS256"
    p384 = written(ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(ConfigError) as refused:
        assertion_key(p384)
    assert refused.value.problems == [
        f"RUNWIRE_SERVICE_CLIENT_KEY_FILE={p384} is not an Ed25519, P-256 or RSA (2048+) key"
    ]
