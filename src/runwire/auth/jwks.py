"""The keys of a node that holds no private key (role ``chat``): the issuer's published JWK set.

At start-up :meth:`JwksKeys.fetch` reads the issuer's discovery document
(``ISSUER_URL/.well-known/openid-configuration``), checks that it names the issuer this node
expects, and reads the JWK set at its ``jwks_uri``. After that a request never waits on the
auth service but in one case: a token naming a key this node has not seen makes it fetch the set
again (:meth:`JwksKeys.learn`), at most once a second whatever the tokens say, so a rotation is
taken on the first token of the new key and made-up kids cost nothing more. A background
refresh every few minutes drops keys the issuer no longer publishes (retired, or removed as
leaked). A fetch that fails (the auth service restarting, a network cut) keeps the keys held:
tokens go on verifying through a short outage.

Each key is pinned to one algorithm by its own members: an OKP key on Ed25519 is EdDSA, an EC
key on P-256 is ES256 (P-384 ES384, P-521 ES512), an RSA key its ``alg`` (without one, the first
RSA algorithm accepted); a JWK whose ``alg`` says otherwise, of another kind, or whose algorithm
is not among those accepted (runwire's own issuer: EdDSA and ES256; an outside issuer:
``RUNWIRE_AUTH_ALGORITHMS``), is not used.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from runwire.auth.keys import PublicKey, SigningKey, VerificationKey, kid_time
from runwire.background import stop
from runwire.config import RUNWIRE_ALGORITHMS, TokenAlgorithm
from runwire.errors import ConfigError, RunwireError

__all__ = ["DISCOVERY_PATH", "JwksKeys", "NoSigner", "parse_jwks"]

log = logging.getLogger(__name__)

DISCOVERY_PATH = "/.well-known/openid-configuration"
# At most one fetch for unknown kids per this many seconds (tokens naming made-up kids cost no
# more than that); the same pace as a key directory's re-listing (key_files.RECHECK_S).
REFETCH_S = 1.0
# How often the set is read again in the background: the JWKS's own max-age.
REFRESH_S = 300.0
# A fetch that a request waits for (an unknown kid) gives up after this long.
FETCH_TIMEOUT_S = 2.0


class NoSigner:
    """The signer of a node that issues no tokens (role ``chat``): it has no key to sign with."""

    def signing(self) -> SigningKey:
        raise RunwireError("this node (RUNWIRE_ROLE=chat) holds no signing key")


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("a coordinate is missing")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("a coordinate is not base64url") from None


_CURVES: dict[str, tuple[TokenAlgorithm, ec.EllipticCurve, int]] = {
    "P-256": (TokenAlgorithm.ES256, ec.SECP256R1(), 32),
    "P-384": (TokenAlgorithm.ES384, ec.SECP384R1(), 48),
    "P-521": (TokenAlgorithm.ES512, ec.SECP521R1(), 66),
}
_RSA = {a for a in TokenAlgorithm if a.value[:2] in ("RS", "PS")}
# Shorter RSA moduli are refused (NIST SP 800-131A: 2048 bits at least).
MIN_RSA_BITS = 2048


def _key_of(
    jwk: dict[str, Any], algorithms: Sequence[TokenAlgorithm]
) -> tuple[TokenAlgorithm, PublicKey]:
    """The one algorithm ``jwk`` verifies and its public key. The key's own members decide the
    algorithm: an Ed25519 key is EdDSA, a P-256 key ES256; an RSA key is its ``alg``, or without
    one the first RSA algorithm of ``algorithms``. It must be one of ``algorithms``."""
    kty, crv, alg = jwk.get("kty"), jwk.get("crv"), jwk.get("alg")
    key: PublicKey
    if kty == "OKP" and crv == "Ed25519":
        algorithm, key = TokenAlgorithm.EDDSA, _ed25519(jwk)
    elif kty == "EC" and isinstance(crv, str) and crv in _CURVES:
        algorithm, key = _CURVES[crv][0], _ec(jwk, crv)
    elif kty == "RSA":
        crv = "RSA"
        named = [a for a in TokenAlgorithm if a.value == alg]
        first = [a for a in algorithms if a in _RSA]
        algorithm = named[0] if named and named[0] in _RSA else (first or [TokenAlgorithm.RS256])[0]
        key = _rsa(jwk)
    else:
        raise ValueError(
            f"runwire verifies Ed25519, P-256 (P-384, P-521) and RSA keys, not kty={kty} crv={crv}"
        )
    if alg is not None and alg != algorithm.value:
        raise ValueError(f"alg {alg} does not fit a {crv} key")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("it is not a signing key (use is not sig)")
    if algorithm not in algorithms:
        accepted = ", ".join(a.value for a in algorithms)
        raise ValueError(f"its algorithm {algorithm.value} is not accepted (only {accepted})")
    return algorithm, key


def _ed25519(jwk: dict[str, Any]) -> PublicKey:
    raw = _b64(jwk.get("x"))
    if len(raw) != 32:
        raise ValueError("x is not an Ed25519 public key")
    return ed25519.Ed25519PublicKey.from_public_bytes(raw)


def _ec(jwk: dict[str, Any], crv: str) -> PublicKey:
    _, curve, size = _CURVES[crv]
    x, y = _b64(jwk.get("x")), _b64(jwk.get("y"))
    if len(x) != size or len(y) != size:
        raise ValueError(f"x and y are not {crv} coordinates")
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve
    )
    try:
        return numbers.public_key()
    except ValueError:
        raise ValueError(f"x and y are not a point on {crv}") from None


def _rsa(jwk: dict[str, Any]) -> PublicKey:
    n, e = int.from_bytes(_b64(jwk.get("n")), "big"), int.from_bytes(_b64(jwk.get("e")), "big")
    if n.bit_length() < MIN_RSA_BITS:
        raise ValueError(f"an RSA key of {n.bit_length()} bits is too short (< {MIN_RSA_BITS})")
    try:
        return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError:
        raise ValueError("n and e are not an RSA public key") from None


def parse_jwks(
    document: Any, algorithms: Sequence[TokenAlgorithm] = RUNWIRE_ALGORITHMS
) -> tuple[dict[str, VerificationKey], list[str]]:
    """The usable keys of a JWK set by kid (each verifying one of ``algorithms``), and why each
    other entry is not used."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        return {}, ["the JWK set is not a JSON object with a list of keys"]
    keys: dict[str, VerificationKey] = {}
    problems: list[str] = []
    for jwk in document["keys"]:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        if not isinstance(kid, str) or not kid:
            problems.append("a key without a kid is not used")
            continue
        try:
            algorithm, public = _key_of(jwk, algorithms)
        except ValueError as exc:
            problems.append(f"key {kid[:80]} is not used: {exc}")
            continue
        keys[kid] = VerificationKey(kid, algorithm, public, kid_time(kid) or 0.0)
    return keys, problems


class JwksKeys:
    """The issuer's published keys, as :class:`~runwire.auth.tokens.TrustedKeys`.

    ``clock`` (monotonic seconds) paces the refetches; tests pass their own.
    """

    def __init__(
        self,
        issuer_url: str,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        refetch_s: float = REFETCH_S,
        algorithms: Sequence[TokenAlgorithm] = RUNWIRE_ALGORITHMS,
        outside: bool = False,
    ) -> None:
        self.issuer_url = issuer_url.rstrip("/")
        self.issuer = issuer
        self.algorithms = tuple(algorithms)
        self.outside = outside
        self.jwks_uri = ""
        self._http = http
        self._clock = clock
        self._refetch_s = refetch_s
        self._keys: dict[str, VerificationKey] = {}
        self._fetched_at = -float("inf")  # when the last fetch was tried (monotonic)
        self._lock = asyncio.Lock()

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        issuer_url: str,
        issuer: str,
        *,
        refresh_s: float = REFRESH_S,
        algorithms: Sequence[TokenAlgorithm] = RUNWIRE_ALGORITHMS,
        outside: bool = False,
    ) -> AsyncIterator[JwksKeys]:
        """The keys fetched (raises :class:`ConfigError` naming every problem when they cannot
        be), refreshed in the background every ``refresh_s`` until the context ends."""
        # No connection is kept between fetches: they are seconds to minutes apart, and an
        # issuer (or a proxy) closes an idle connection when it likes; a fetch sent on one as it
        # closes fails, and a token of a new key would be refused for that second.
        fresh = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(
            timeout=FETCH_TIMEOUT_S, follow_redirects=False, limits=fresh
        ) as http:
            keys = cls(issuer_url, issuer, http, algorithms=algorithms, outside=outside)
            await keys.fetch()
            task = asyncio.create_task(keys._refresh_every(refresh_s))
            try:
                yield keys
            finally:
                await stop(task)

    def find(self, kid: str) -> VerificationKey | None:
        """The published key ``kid`` among those held (no I/O)."""
        return self._keys.get(kid)

    def published(self) -> list[VerificationKey]:
        """The keys held now."""
        return list(self._keys.values())

    async def learn(self, kid: str) -> None:
        """Fetch the set again for a kid not held, unless a fetch was tried less than a second
        ago; a failure keeps the keys held (and is logged)."""
        if kid in self._keys:
            return
        if self._lock.locked():
            # A fetch is under way (for this kid or another reason): its answer is the news.
            async with self._lock:
                return
        if self._clock() - self._fetched_at < self._refetch_s:
            return
        async with self._lock:
            # Another request may have fetched while this one waited for the lock.
            if kid in self._keys or self._clock() - self._fetched_at < self._refetch_s:
                return
            try:
                await self.fetch()
            except ConfigError as exc:
                log.warning(
                    "could not fetch the issuer's keys (keeping %d): %s",
                    len(self._keys),
                    "; ".join(exc.problems),
                )

    async def fetch(self) -> None:
        """Read discovery and the JWK set now; on success the set replaces the keys held.

        Raises :class:`ConfigError` naming every problem (unreachable, another issuer, no usable
        key); the keys held stay as they were."""
        self._fetched_at = self._clock()
        discovery = await self._json(self.issuer_url + DISCOVERY_PATH, "discovery document")
        problems: list[str] = []
        named = discovery.get("issuer")
        if named != self.issuer and self.outside:
            # OpenID Connect Discovery §4.3: the issuer is the very URL discovery was read at.
            problems.append(
                f"the discovery document at {self.issuer_url} names issuer {named!r}, not "
                f"{self.issuer!r}: set RUNWIRE_AUTH_ISSUER_URL to the issuer exactly as it "
                "names itself (a trailing slash included)"
            )
        elif named != self.issuer:
            problems.append(
                f"the discovery document at {self.issuer_url} names issuer {named!r}, and this "
                f"node expects {self.issuer!r} (RUNWIRE_AUTH_ISSUER): set the same value on "
                "both roles"
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("http://", "https://")):
            raise ConfigError(
                [*problems, f"the discovery document at {self.issuer_url} names no jwks_uri"]
            )
        keys, skipped = parse_jwks(await self._json(jwks_uri, "JWK set"), self.algorithms)
        for why in skipped:
            log.warning("%s (JWK set at %s)", why, jwks_uri)
        if not keys:
            why = f" ({'; '.join(skipped)})" if skipped and self.outside else ""
            problems.append(f"the JWK set at {jwks_uri} holds no usable key{why}")
        if problems:
            raise ConfigError(problems)
        if set(keys) != set(self._keys):
            log.info("verification keys from %s: %s", jwks_uri, ", ".join(sorted(keys)))
        self.jwks_uri = jwks_uri
        self._keys = keys

    async def _json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ConfigError(
                [f"the {what} at {url} cannot be read: {type(exc).__name__} {exc}".rstrip()]
            ) from None
        if response.status_code != 200:
            raise ConfigError([f"the {what} at {url} cannot be read: HTTP {response.status_code}"])
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise ConfigError([f"the {what} at {url} is not a JSON object"])
        return document

    async def _refresh_every(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                async with self._lock:
                    await self.fetch()
            except ConfigError as exc:
                log.warning(
                    "could not refresh the issuer's keys (keeping %d): %s",
                    len(self._keys),
                    "; ".join(exc.problems),
                )
