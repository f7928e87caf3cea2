"""The access tokens of an outside OpenID Connect issuer: its published keys (RSA included) and
what a token must be to be accepted. Tokens are signed here with real keys, as an issuer (or an
attacker) would; tests/e2e/test_outside_issuer.py does the same against a real provider."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from runwire.auth.jwks import parse_jwks
from runwire.auth.keys import VerificationKey
from runwire.auth.outside_tokens import OutsideTokens, vouched_email
from runwire.config import OUTSIDE_ALGORITHMS, TokenAlgorithm
from runwire.errors import AuthError, TokenExpired
from tests.keys import rsa_key

pytestmark = pytest.mark.unit

ISSUER = "https://id.example.com/realms/acme"
AUDIENCE = "runwire-api"
RSA_KEY = rsa_key()
P384_KEY = ec.generate_private_key(ec.SECP384R1())


def b64(number: int, size: int | None = None) -> str:
    raw = number.to_bytes(size or (number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def rsa_jwk(kid: str, key: rsa.RSAPrivateKey = RSA_KEY, **extra: str) -> dict[str, str]:
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", "kid": kid, "n": b64(numbers.n), "e": b64(numbers.e), **extra}


def p384_jwk(kid: str) -> dict[str, str]:
    point = P384_KEY.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-384", "kid": kid, "x": b64(point.x, 48), "y": b64(point.y, 48)}


class Published:
    """Trusted keys that are what a JWK set says, counting the kids it was asked to learn."""

    def __init__(self, jwks: list[dict[str, str]], algorithms: Any = OUTSIDE_ALGORITHMS) -> None:
        self.keys, self.problems = parse_jwks({"keys": jwks}, algorithms)
        self.asked: list[str] = []

    def find(self, kid: str) -> VerificationKey | None:
        return self.keys.get(kid)

    async def learn(self, kid: str) -> None:
        self.asked.append(kid)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": ISSUER, "aud": [AUDIENCE, "account"], "sub": "f:1b2c", "exp": now + 60}
    return {k: v for k, v in (base | changes).items() if v is not None}


def signed(
    payload: dict[str, Any], kid: str = "rsa-1", alg: str = "RS256", key: Any = RSA_KEY
) -> str:
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid})


@pytest.fixture
def tokens() -> OutsideTokens:
    trusted = Published(
        [rsa_jwk("rsa-1"), rsa_jwk("rsa-ps", alg="PS256"), p384_jwk("ec-384")],
        [*OUTSIDE_ALGORITHMS, TokenAlgorithm.PS256, TokenAlgorithm.ES384],
    )
    return OutsideTokens(trusted, issuer=ISSUER, audience=AUDIENCE, leeway_s=30)


def refused(tokens: OutsideTokens, token: str) -> None:
    with pytest.raises(AuthError) as caught:
        tokens.verify(token)
    assert type(caught.value) is AuthError
    assert caught.value.message == "invalid access token"


def test_a_token_of_the_issuer_names_its_subject_and_address(tokens: OutsideTokens) -> None:
    payload = claims(email="Ann@Example.com", email_verified=True)
    found = tokens.verify(signed(payload))
    assert (found.subject, found.email, found.expires_at) == (
        "f:1b2c",
        "ann@example.com",
        payload["exp"],
    )
    # An RSA key whose alg is PS256 verifies PS256 tokens; a P-384 key ES384 ones.
    assert tokens.verify(signed(claims(), "rsa-ps", "PS256")).subject == "f:1b2c"
    assert tokens.verify(signed(claims(), "ec-384", "ES384", P384_KEY)).subject == "f:1b2c"


def test_what_is_not_an_access_token_of_the_issuer_for_runwire_is_refused(
    tokens: OutsideTokens,
) -> None:
    refused(tokens, signed(claims(exp=None)))  # no expiry: nothing would ever end it
    refused(tokens, signed(claims(sub=None)))
    refused(tokens, signed(claims(sub="s" * 256)))
    refused(tokens, signed(claims(aud="account")))
    refused(tokens, signed(claims(iss=ISSUER + "/")))
    refused(tokens, signed(claims(), "rsa-1", "PS256"))  # the key is RS256's
    refused(tokens, signed(claims(), "rsa-ps", "RS256"))  # and this one PS256's
    refused(tokens, signed(claims(), "nobody"))
    refused(tokens, "not.a.jwt")
    other = rsa_key(1)
    refused(tokens, signed(claims(), key=other))  # a kid it does not own
    # HS256 keyed with what the issuer publishes: refused before any signature is checked.
    refused(
        tokens,
        jwt.encode(
            claims(), "rsa-1-public-material" * 2, algorithm="HS256", headers={"kid": "rsa-1"}
        ),
    )


def test_clocks_may_disagree_by_the_leeway_and_no_more(tokens: OutsideTokens) -> None:
    now = int(time.time())
    assert tokens.verify(signed(claims(exp=now - 10, iat=now + 10, nbf=now + 10)))
    with pytest.raises(TokenExpired):
        tokens.verify(signed(claims(exp=now - 40)))
    refused(tokens, signed(claims(nbf=now + 40)))


async def test_a_key_not_held_is_asked_for_once_per_token(tokens: OutsideTokens) -> None:
    trusted = Published([])
    outside = OutsideTokens(trusted, issuer=ISSUER, audience=AUDIENCE, leeway_s=0)
    with pytest.raises(AuthError):
        await outside.check(signed(claims(), "rsa-new"))
    with pytest.raises(AuthError):
        await outside.check("garbage")
    assert trusted.asked == ["rsa-new"]
    assert (await tokens.check(signed(claims()))).subject == "f:1b2c"


def test_an_address_counts_only_when_the_issuer_vouches_for_it() -> None:
    assert vouched_email({"email": " Bo@Example.com "}) == "bo@example.com"
    assert vouched_email({"email": "bo@example.com", "email_verified": True}) == "bo@example.com"
    assert vouched_email({"email": "bo@example.com", "email_verified": False}) is None
    assert vouched_email({"email": "not an address"}) is None
    assert vouched_email({"email": 7}) is None
    assert vouched_email({}) is None


def test_the_issuers_keys_are_each_pinned_to_one_accepted_algorithm() -> None:
    short = rsa_key(bits=1024)
    keys, problems = parse_jwks(
        {
            "keys": [
                rsa_jwk("plain"),
                rsa_jwk("ps", alg="PS256"),
                rsa_jwk("short", short),
                rsa_jwk("rs-as-es", alg="ES256"),
                p384_jwk("p384"),
                {**p384_jwk("off-curve"), "y": b64(1, 48)},
                {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
                {**rsa_jwk("even-e"), "e": b64(2)},
            ]
        },
        [TokenAlgorithm.PS256, TokenAlgorithm.RS256, TokenAlgorithm.ES256],
    )
    # Without alg, an RSA key is the first RSA algorithm accepted.
    assert {kid: k.algorithm.value for kid, k in keys.items()} == {"plain": "PS256", "ps": "PS256"}
    assert problems == [
        "key short is not used: an RSA key of 1024 bits is too short (< 2048)",
        "key rs-as-es is not used: alg ES256 does not fit a RSA key",
        "key p384 is not used: its algorithm ES384 is not accepted (only PS256, RS256, ES256)",
        "key off-curve is not used: x and y are not a point on P-384",
        "key no-n is not used: a coordinate is missing",
        "key even-e is not used: n and e are not an RSA public key",
    ]
    # runwire's own issuer (the default): RSA keys are not used at all.
    keys, problems = parse_jwks({"keys": [rsa_jwk("plain")]})
    assert keys == {}
    assert problems == [
        "key plain is not used: its algorithm RS256 is not accepted (only EdDSA, ES256)"
    ]
    # An issuer's key as a verifier holds it, published back the same.
    [key] = parse_jwks({"keys": [rsa_jwk("again")]}, OUTSIDE_ALGORITHMS)[0].values()
    assert key.jwk() == {**rsa_jwk("again"), "alg": "RS256", "use": "sig"}
    [key] = parse_jwks({"keys": [p384_jwk("p")]}, [TokenAlgorithm.ES384])[0].values()
    assert key.jwk() == {**p384_jwk("p"), "alg": "ES384", "use": "sig"}


class Wall:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_still_expires_and_dies_with_its_key() -> None:
    trusted = Published([rsa_jwk("rsa-1")])
    wall = Wall(time.time())
    outside = OutsideTokens(
        trusted, issuer=ISSUER, audience=AUDIENCE, leeway_s=5, wall=wall, remember=2
    )
    token = signed(claims(exp=int(wall.now) + 30))
    first = outside.verify(token)
    assert outside.verify(token) is first  # remembered, not verified again
    wall.now += 30 + 5
    with pytest.raises(TokenExpired):
        outside.verify(token)
    # The oldest is forgotten past the bound: verified again (on the real clock), it passes,
    # while one still remembered is judged on the wall clock.
    wall.now = time.time()
    kept = [signed(claims(jti=str(i))) for i in range(3)]
    for token in kept:
        outside.verify(token)
    wall.now += 3600
    assert outside.verify(kept[0]).subject == "f:1b2c"
    with pytest.raises(TokenExpired):
        outside.verify(kept[2])
    # The issuer stops publishing the key (rotated, or removed as leaked): refused, remembered
    # or not.
    wall.now = time.time()
    fresh = signed(claims(jti="fresh"))
    outside.verify(fresh)
    trusted.keys.clear()
    refused(outside, fresh)
