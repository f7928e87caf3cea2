"""A chat node's keys (:class:`JwksKeys`) against a real issuer on loopback: an HTTP server that
serves a discovery document and a JWK set this test controls, and that it can stop.

Fetched at start, found without I/O, fetched again for an unknown kid (at most once a second),
kept through an outage, refreshed to drop a key no longer published; start-up problems named at
once.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest

from runwire.auth.jwks import DISCOVERY_PATH, JwksKeys, NoSigner, parse_jwks
from runwire.auth.keys import SigningKey
from runwire.auth.tokens import AccessTokens
from runwire.config import SigningAlgorithm
from runwire.errors import AuthError, ConfigError, RunwireError
from tests.timing import unit

pytestmark = pytest.mark.integration

ISSUER = "runwire"


class Issuer:
    """What the fake-free issuer publishes: a discovery document and a JWK set, over HTTP."""

    def __init__(self) -> None:
        self.issuer = ISSUER
        self.keys: list[SigningKey] = []
        self.extra: list[dict[str, Any]] = []  # raw JWKs published besides the keys
        self.hits: Counter[str] = Counter()
        self.raw: dict[str, Any] = {}  # path -> the JSON served instead (None: 404)
        self.port = 0
        # Keep connections open (HTTP/1.1) and close one without an answer when a second
        # request comes on it: an idle connection closed as a request is sent on it.
        self.drops_kept_connections = False
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA) -> SigningKey:
        key = SigningKey.generate(algorithm, 1_765_000_000 + len(self.keys))
        self.keys.append(key)
        return key

    def document(self, path: str) -> Any:
        if path in self.raw:
            return self.raw[path]
        if path == DISCOVERY_PATH:
            return {"issuer": self.issuer, "jwks_uri": f"{self.url}/keys.json"}
        if path == "/keys.json":
            return {"keys": [k.public.jwk() for k in self.keys] + self.extra}
        return None

    def start(self) -> None:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if issuer.drops_kept_connections else "HTTP/1.0"
            answered = 0

            def do_GET(self) -> None:
                if self.answered and issuer.drops_kept_connections:
                    self.close_connection = True
                    return
                self.answered += 1
                issuer.hits[self.path] += 1
                body = issuer.document(self.path)
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()

    def stop(self) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()
        self._server = None


@contextmanager
def issuing() -> Iterator[Issuer]:
    issuer = Issuer()
    issuer.add()
    issuer.start()
    try:
        yield issuer
    finally:
        if issuer._server is not None:
            issuer.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def verifier(issuer: Issuer, clock: Clock) -> AsyncIterator[tuple[JwksKeys, AccessTokens]]:
    async with httpx.AsyncClient(timeout=unit(2)) as http:
        keys = JwksKeys(issuer.url, ISSUER, http, clock=clock)
        await keys.fetch()
        yield keys, AccessTokens(NoSigner(), keys, issuer=ISSUER, audience="runwire", ttl_s=900)


def token(key: SigningKey, user: str = "usr_1", **extra: Any) -> str:
    """An access token as the auth role signs it."""
    signer = AccessTokens(_Only(key), _Only(key), issuer=ISSUER, audience="runwire", ttl_s=900)
    issued = signer.issue(user, "ses_1")
    if extra:
        claims = jwt.decode(issued, options={"verify_signature": False}) | extra
        return jwt.encode(
            claims, key.private_key, algorithm=key.algorithm.value, headers={"kid": key.kid}
        )
    return issued


class _Only:
    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def signing(self) -> SigningKey:
        return self.key

    def find(self, kid: str) -> Any:
        return self.key.public if kid == self.key.kid else None

    async def learn(self, kid: str) -> None:
        pass


async def test_the_published_keys_verify_tokens_and_a_chat_node_signs_nothing() -> None:
    with issuing() as issuer:
        es256 = issuer.add(SigningAlgorithm.ES256)
        async with verifier(issuer, Clock()) as (keys, access):
            assert keys.jwks_uri == f"{issuer.url}/keys.json"
            assert {k.kid for k in keys.published()} == {issuer.keys[0].kid, es256.kid}
            for key in issuer.keys:
                claims = await access.check(token(key))
                assert claims.user_id == "usr_1"
            assert issuer.hits["/keys.json"] == 1  # verifying fetched nothing
            with pytest.raises(RunwireError, match="holds no signing key"):
                access.issue("usr_1", "ses_1")


async def test_an_unknown_kid_fetches_again_at_most_once_a_second() -> None:
    with issuing() as issuer:
        clock = Clock()
        async with verifier(issuer, clock) as (keys, access):
            rotated = issuer.add()  # a rotation at the auth service
            clock.now += 1.0
            assert (await access.check(token(rotated, "usr_2"))).user_id == "usr_2"
            assert issuer.hits["/keys.json"] == 2
            # Made-up kids within the second cost no fetch; the issuer's key still verifies.
            forged = SigningKey.generate(SigningAlgorithm.EDDSA, 1_765_000_100)
            for _ in range(20):
                with pytest.raises(AuthError, match="invalid access token"):
                    await access.check(token(forged))
            assert issuer.hits["/keys.json"] == 2
            clock.now += 1.0
            with pytest.raises(AuthError):
                await access.check(token(forged))
            assert issuer.hits["/keys.json"] == 3
            # Requests that meet the same new key at once share one fetch.
            newer = issuer.add()
            clock.now += 1.0
            tokens = [token(newer, f"usr_{n}") for n in range(5)]
            results = await asyncio.gather(*(access.check(t) for t in tokens))
            assert [c.user_id for c in results] == [f"usr_{n}" for n in range(5)]
            assert issuer.hits["/keys.json"] == 4
            assert keys.find(newer.kid) is not None


async def test_the_keys_are_kept_through_an_outage_of_the_auth_service(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with issuing() as issuer:
        clock = Clock()
        async with verifier(issuer, clock) as (keys, access):
            first = token(issuer.keys[0])
            issuer.stop()
            clock.now += 1.0
            # A token of a key not seen yet: the fetch fails, nothing held is lost.
            unseen = issuer.add()
            with pytest.raises(AuthError):
                await access.check(token(unseen))
            assert "could not fetch the issuer's keys (keeping 1)" in caplog.text
            assert (await access.check(first)).user_id == "usr_1"
            assert (await access.check(token(issuer.keys[0], "usr_9"))).user_id == "usr_9"
            with pytest.raises(ConfigError, match="cannot be read"):
                await keys.fetch()  # a refresh in the background fails the same way
            assert keys.find(issuer.keys[0].kid) is not None
            issuer.start()  # back, on the same port, with the key it added meanwhile
            clock.now += 1.0
            assert (await access.check(token(unseen, "usr_3"))).user_id == "usr_3"


async def test_a_key_no_longer_published_is_dropped_by_the_background_refresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with issuing() as issuer:
        leaked = issuer.keys[0]
        successor = issuer.add()
        async with JwksKeys.running(issuer.url, ISSUER, refresh_s=unit(0.05)) as keys:
            assert keys.find(leaked.kid) is not None
            issuer.keys.remove(leaked)
            deadline = asyncio.get_running_loop().time() + unit(5)
            while keys.find(leaked.kid) is not None:
                assert asyncio.get_running_loop().time() < deadline, "the refresh never ran"
                await asyncio.sleep(unit(0.02))
            assert keys.find(successor.kid) is not None
            # The issuer gone, the refresh fails and the keys held stay.
            issuer.stop()
            while "could not refresh the issuer's keys (keeping 1)" not in caplog.text:
                assert asyncio.get_running_loop().time() < deadline, "the refresh never ran"
                await asyncio.sleep(unit(0.02))
            assert keys.find(successor.kid) is not None


async def test_an_issuer_that_drops_idle_connections_never_fails_a_fetch() -> None:
    # The race of a kept connection the issuer closes as a fetch is sent on it is a few ms wide
    # in real life; this issuer closes every kept connection on its next request.
    issuer = Issuer()
    issuer.drops_kept_connections = True
    issuer.add()
    issuer.start()
    try:
        async with JwksKeys.running(issuer.url, ISSUER) as keys:
            rotated = issuer.add()
            await keys.fetch()
            assert keys.find(rotated.kid) is not None
            assert issuer.hits == {DISCOVERY_PATH: 2, "/keys.json": 2}
    finally:
        issuer.stop()


async def test_start_up_names_every_problem_with_the_issuer_at_once() -> None:
    with issuing() as issuer:
        issuer.issuer = "https://someone-else.example"
        issuer.keys.clear()
        issuer.extra = [{"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"}]
        with pytest.raises(ConfigError) as caught:
            async with JwksKeys.running(issuer.url, ISSUER):
                pass
        assert caught.value.problems == [
            f"the discovery document at {issuer.url} names issuer "
            "'https://someone-else.example', and this node expects 'runwire' "
            "(RUNWIRE_AUTH_ISSUER): set the same value on both roles",
            f"the JWK set at {issuer.url}/keys.json holds no usable key",
        ]
        port = issuer.port
    with pytest.raises(ConfigError) as caught:
        async with JwksKeys.running(f"http://127.0.0.1:{port}", ISSUER):
            pass
    [problem] = caught.value.problems
    assert problem.startswith(
        f"the discovery document at http://127.0.0.1:{port}{DISCOVERY_PATH} cannot be read: "
        "ConnectError"
    )


def test_each_published_key_is_pinned_to_the_algorithm_of_its_kind() -> None:
    ed = SigningKey.generate(SigningAlgorithm.EDDSA, 1_765_000_000).public.jwk()
    p256 = SigningKey.generate(SigningAlgorithm.ES256, 1_765_000_000).public.jwk()
    keys, problems = parse_jwks(
        {
            "keys": [
                ed,
                p256,
                {**ed, "kid": "ed-as-hs256", "alg": "HS256"},
                {**p256, "kid": "p256-as-eddsa", "alg": "EdDSA"},
                {**ed, "kid": "ed-enc", "use": "enc"},
                {**ed, "kid": "ed-short", "x": "AAAA"},
                {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
                {"kty": "OKP", "crv": "Ed25519"},
            ]
        }
    )
    assert {kid: k.algorithm for kid, k in keys.items()} == {
        ed["kid"]: SigningAlgorithm.EDDSA,
        p256["kid"]: SigningAlgorithm.ES256,
    }
    assert problems == [
        "key ed-as-hs256 is not used: alg HS256 does not fit a Ed25519 key",
        "key p256-as-eddsa is not used: alg EdDSA does not fit a P-256 key",
        "key ed-enc is not used: it is not a signing key (use is not sig)",
        "key ed-short is not used: x is not an Ed25519 public key",
        "key secret is not used: runwire verifies Ed25519, P-256 (P-384, P-521) and RSA keys, not "
        "kty=oct crv=None",
        "a key without a kid is not used",
    ]
    assert parse_jwks([]) == ({}, ["the JWK set is not a JSON object with a list of keys"])


async def test_documents_that_are_not_what_a_verifier_needs_are_named() -> None:
    with issuing() as issuer:
        cases = {
            DISCOVERY_PATH: (
                {"issuer": ISSUER},
                f"the discovery document at {issuer.url} names no jwks_uri",
            ),
            "/keys.json": (None, f"the JWK set at {issuer.url}/keys.json cannot be read: HTTP 404"),
        }
        for path, (served, problem) in cases.items():
            issuer.raw = {path: served}
            with pytest.raises(ConfigError) as caught:
                async with JwksKeys.running(issuer.url, ISSUER):
                    pass
            assert caught.value.problems == [problem]
        for served in (b"{not json", b"[1, 2]"):
            issuer.raw = {"/keys.json": served}
            with pytest.raises(ConfigError) as caught:
                async with JwksKeys.running(issuer.url, ISSUER):
                    pass
            assert caught.value.problems == [
                f"the JWK set at {issuer.url}/keys.json is not a JSON object"
            ]
        issuer.raw = {}
        async with verifier(issuer, Clock()) as (keys, _):
            fetched = issuer.hits["/keys.json"]
            await keys.learn(issuer.keys[0].kid)  # held: nothing to fetch
            assert issuer.hits["/keys.json"] == fetched


def test_keys_with_coordinates_that_are_no_key_are_not_used() -> None:
    ed = SigningKey.generate(SigningAlgorithm.EDDSA, 1_765_000_000).public.jwk()
    p256 = SigningKey.generate(SigningAlgorithm.ES256, 1_765_000_000).public.jwk()
    _, problems = parse_jwks(
        {
            "keys": [
                {**ed, "kid": "no-x", "x": 7},
                {**ed, "kid": "not-base64", "x": "A"},
                {**p256, "kid": "short-y", "y": "AAAA"},
            ]
        }
    )
    assert problems == [
        "key no-x is not used: a coordinate is missing",
        "key not-base64 is not used: a coordinate is not base64url",
        "key short-y is not used: x and y are not P-256 coordinates",
    ]
