"""Access tokens: what they carry, and every forged or foreign token refused.

Each hostile token is built for real, the way an attacker would: by hand where PyJWT refuses to
make it (``alg: none``, HS256 keyed with the public key), with PyJWT and a real key otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from runwire.app.tokens import build_access_tokens
from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.auth.keys import SigningKey
from runwire.auth.tokens import AccessTokens
from runwire.config import Settings, SigningAlgorithm
from runwire.errors import AuthError, TokenExpired
from tests.conftest import test_settings

pytestmark = pytest.mark.unit


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: dict[str, Any]) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


# One key of each algorithm for the whole file: the tests sign and verify with it, none changes
# its directory (a new key file per test, fsync'd, was most of this file's time). Each test gets
# its own AccessTokens (it remembers the tokens it verified).
@pytest.fixture(scope="module", params=list(SigningAlgorithm), ids=lambda a: a.value)
def ring(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    settings = test_settings(tmp_path_factory.mktemp("keys"), auth_algorithm=request.param)
    return KeyRing(KeyDirectory(settings.keys_dir), open_keys(settings))


@pytest.fixture(scope="module")
def token_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return test_settings(tmp_path_factory.mktemp("settings"))


@pytest.fixture
def tokens(ring: KeyRing, token_settings: Settings) -> AccessTokens:
    return build_access_tokens(token_settings, ring)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "runwire",
        "aud": "runwire",
        "sub": "usr_a",
        "sid": "ses_a",
        "iat": now,
        "exp": now + 60,
        "jti": "0123abcd",
        "typ": "access",
    }
    return {k: v for k, v in (base | changes).items() if v is not None}


def signed(key: SigningKey, payload: dict[str, Any], **header: Any) -> str:
    headers = {"kid": key.kid} | header
    return jwt.encode(payload, key.private_key, algorithm=key.algorithm.value, headers=headers)


def refused(tokens: AccessTokens, token: str) -> None:
    with pytest.raises(AuthError) as caught:
        tokens.verify(token)
    assert type(caught.value) is AuthError  # not TokenExpired: the token is no good at all
    assert caught.value.message == "invalid access token"


def test_a_token_carries_its_key_and_every_claim(tokens: AccessTokens, ring: KeyRing) -> None:
    token = tokens.issue("usr_a", "ses_a")
    key = ring.signing()
    header = jwt.get_unverified_header(token)
    assert header["kid"] == key.kid and header["alg"] == key.algorithm.value
    body = jwt.decode(token, options={"verify_signature": False})
    assert set(body) == {"iss", "aud", "sub", "sid", "iat", "exp", "jti", "typ"}
    assert (body["iss"], body["aud"], body["sub"], body["sid"]) == (
        "runwire",
        "runwire",
        "usr_a",
        "ses_a",
    )
    assert body["exp"] - body["iat"] == 900
    assert (
        body["jti"]
        != jwt.decode(tokens.issue("usr_a", "ses_a"), options={"verify_signature": False})["jti"]
    )
    verified = tokens.verify(token)
    assert (verified.user_id, verified.family_id, verified.expires_at) == (
        "usr_a",
        "ses_a",
        body["exp"],
    )


def test_the_published_key_verifies_a_token_elsewhere(tokens: AccessTokens, ring: KeyRing) -> None:
    # What another service does with the JWK set: PyJWT's own JWK reader, not runwire's code.
    token = tokens.issue("usr_a", "ses_a")
    (published,) = ring.published()
    jwk = jwt.PyJWK(published.jwk())
    body = jwt.decode(token, jwk, algorithms=[published.algorithm.value], audience="runwire")
    assert body["sub"] == "usr_a"


def test_alg_none_is_refused(tokens: AccessTokens, ring: KeyRing) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": ring.signing().kid}
    refused(tokens, f"{segment(header)}.{segment(claims())}.")
    refused(tokens, f"{segment(header | {'alg': 'None'})}.{segment(claims())}.")


def _hs256(secret: bytes, kid: str) -> str:
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{segment(claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_hs256_keyed_with_the_public_key_is_refused(tokens: AccessTokens, ring: KeyRing) -> None:
    # The classic confusion: the verifier's public key used as an HMAC secret.
    key = ring.signing()
    public = key.public.public_key
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_x = base64.urlsafe_b64decode(key.public.jwk()["x"] + "==")
    for secret in (pem, der, jwk_x, json.dumps(key.public.jwk()).encode()):
        refused(tokens, _hs256(secret, key.kid))


def test_another_of_runwires_algorithms_is_refused(tokens: AccessTokens, ring: KeyRing) -> None:
    # A key verifies its own algorithm only, even when the other is one runwire signs with.
    key = ring.signing()
    other = next(a for a in SigningAlgorithm if a is not key.algorithm)
    foreign = SigningKey.generate(other, time.time())
    refused(
        tokens,
        jwt.encode(claims(), foreign.private_key, algorithm=other.value, headers={"kid": key.kid}),
    )


def test_an_unknown_or_missing_kid_is_refused(tokens: AccessTokens, ring: KeyRing) -> None:
    key = ring.signing()
    stranger = SigningKey.generate(key.algorithm, time.time())
    refused(tokens, signed(stranger, claims()))  # a key id the ring has never seen
    no_kid = jwt.encode(claims(), key.private_key, algorithm=key.algorithm.value)
    refused(tokens, no_kid)
    numeric = f"{segment({'alg': key.algorithm.value, 'kid': 7})}.{segment(claims())}"
    refused(tokens, f"{numeric}.{signed(key, claims()).split('.')[2]}")


def test_a_forged_signature_under_a_known_kid_is_refused(
    tokens: AccessTokens, ring: KeyRing
) -> None:
    key = ring.signing()
    stranger = SigningKey.generate(key.algorithm, time.time())
    token = jwt.encode(
        claims(), stranger.private_key, algorithm=key.algorithm.value, headers={"kid": key.kid}
    )
    refused(tokens, token)
    head, _, signature = signed(key, claims()).split(".")
    refused(tokens, f"{head}.{segment(claims(sub='usr_b'))}.{signature}")  # claims swapped


@pytest.mark.parametrize(
    "changes",
    [
        {"iss": "https://evil.example"},
        {"iss": None},
        {"aud": "another-service"},
        {"aud": None},
        {"exp": None},
        {"sub": None},
        {"sid": None},
        {"jti": None},
        {"iat": None},
        {"typ": "refresh"},
    ],
    ids=[
        "foreign-issuer",
        "no-issuer",
        "foreign-audience",
        "no-audience",
        "no-exp",
        "no-sub",
        "no-sid",
        "no-jti",
        "no-iat",
        "not-access",
    ],
)
def test_foreign_or_incomplete_claims_are_refused(
    tokens: AccessTokens, ring: KeyRing, changes: dict[str, Any]
) -> None:
    refused(tokens, signed(ring.signing(), claims(**changes)))


def test_an_expired_token_is_refused_as_expired(tokens: AccessTokens, ring: KeyRing) -> None:
    token = signed(ring.signing(), claims(iat=int(time.time()) - 120, exp=int(time.time()) - 1))
    with pytest.raises(TokenExpired):
        tokens.verify(token)


def test_garbage_is_refused(tokens: AccessTokens) -> None:
    for token in ("", "not-a-jwt", "a.b.c", "....", segment({"alg": "EdDSA"}) + ".."):
        refused(tokens, token)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_still_expires(ring: KeyRing) -> None:
    wall = Clock(time.time())
    tokens = AccessTokens(ring, ring, issuer="runwire", audience="runwire", ttl_s=900, wall=wall)
    token = signed(ring.signing(), claims(exp=int(wall.now) + 30))
    first = tokens.verify(token)
    assert tokens.verify(token) == first  # remembered
    wall.now += 30
    with pytest.raises(TokenExpired):
        tokens.verify(token)


def test_a_remembered_token_dies_with_its_key_file(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    directory = KeyDirectory(settings.keys_dir)
    old = directory.add(SigningAlgorithm.EDDSA, time.time() - 60)
    directory.add(SigningAlgorithm.EDDSA)
    clock = Clock(0.0)
    ring = KeyRing(directory, open_keys(settings), clock=clock)
    tokens = build_access_tokens(settings, ring)
    token = signed(old, claims())
    assert tokens.verify(token).user_id == "usr_a"
    directory.remove(old.kid)  # an operator removes a key thought leaked
    clock.now = 1.0
    refused(tokens, token)
