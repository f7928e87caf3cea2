"""The keys that sign access tokens, and the set a verifier trusts (docs/auth.md).

A key's id (``kid``) starts with the UTC time it was made, ``20261206T120000Z-3f9a1c2b``, so a set
of key files says by itself which key is the newest and since when each older one has been
superseded. The newest key signs. An older key signs nothing from the moment its successor exists,
and stays *published* (it still verifies, and ``/.well-known/jwks.json`` lists it) for as long as
a token it signed can live: the access-token lifetime plus a margin. After that it is *retired*.

A verifier looks a token's key up by ``kid`` and accepts only that key's own algorithm: the
algorithm a token names in its header is never trusted on its own.
"""

from __future__ import annotations

import base64
import re
import secrets
from calendar import timegm
from dataclasses import dataclass
from enum import StrEnum
from time import gmtime, strftime, strptime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from runwire.config import SigningAlgorithm, TokenAlgorithm

__all__ = [
    "RETIRE_MARGIN_S",
    "KeySet",
    "KeyState",
    "SigningKey",
    "VerificationKey",
    "key_lifetime",
    "new_kid",
]

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
# What a verifier may hold: runwire's own kinds, and RSA keys of outside issuers.
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey

# How much longer than the access-token lifetime a superseded key stays published: covers the
# second a running server may take to notice a new key (it goes on signing with the old one
# meanwhile) and clocks that disagree a little between hosts.
RETIRE_MARGIN_S = 300.0

_KID_TIME = "%Y%m%dT%H%M%SZ"
KID_PATTERN = re.compile(r"(\d{8}T\d{6}Z)-([0-9a-z]{4,40})")


class KeyState(StrEnum):
    """Where a key is in its life, at a given time (derived from the set, never stored)."""

    SIGNING = "signing"  # the newest key: signs new tokens, verifies
    PUBLISHED = "published"  # superseded: verifies the tokens it signed until it retires
    RETIRED = "retired"  # every token it signed has expired: trusted no more, its file may go


def key_lifetime(access_ttl_s: float) -> float:
    """How long a superseded key stays published: as long as a token it signed can live."""
    return access_ttl_s + RETIRE_MARGIN_S


def new_kid(now: float) -> str:
    """A fresh key id for a key made at ``now`` (epoch seconds)."""
    return f"{strftime(_KID_TIME, gmtime(now))}-{secrets.token_hex(4)}"


def kid_time(kid: str) -> float | None:
    """When the key ``kid`` was made (epoch seconds), or None when ``kid`` is no key id."""
    found = KID_PATTERN.fullmatch(kid)
    if found is None:
        return None
    try:
        return float(timegm(strptime(found[1], _KID_TIME)))
    except ValueError:  # digits in the right places, but no date (month 13, ...)
        return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """The public half of a key: what a verifier holds (and what the JWKS publishes)."""

    kid: str
    algorithm: TokenAlgorithm  # the one algorithm this key verifies
    public_key: PublicKey
    created_at: float  # epoch seconds

    def jwk(self) -> dict[str, str]:
        """The key as a JSON Web Key (RFC 7517; OKP per RFC 8037): public members only."""
        common = {"kid": self.kid, "alg": self.algorithm.value, "use": "sig"}
        public = self.public_key
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), **common}
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            n, e = _b64(_unsigned(numbers.n)), _b64(_unsigned(numbers.e))
            return {"kty": "RSA", "n": n, "e": e, **common}
        size = (public.curve.key_size + 7) // 8
        point = public.public_numbers()
        return {
            "kty": "EC",
            "crv": _CURVE_NAMES[public.curve.name],
            "x": _b64(point.x.to_bytes(size, "big")),
            "y": _b64(point.y.to_bytes(size, "big")),
            **common,
        }


_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _unsigned(number: int) -> bytes:
    return number.to_bytes((number.bit_length() + 7) // 8, "big")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key pair that can sign tokens. The private key never leaves this object but as PEM."""

    public: VerificationKey
    private_key: PrivateKey

    @property
    def kid(self) -> str:
        return self.public.kid

    @property
    def algorithm(self) -> SigningAlgorithm:
        return SigningAlgorithm(self.public.algorithm.value)

    @classmethod
    def generate(cls, algorithm: SigningAlgorithm, now: float) -> SigningKey:
        """A new key pair for ``algorithm``, made at ``now``."""
        private: PrivateKey
        if algorithm is SigningAlgorithm.EDDSA:
            private = ed25519.Ed25519PrivateKey.generate()
        else:
            private = ec.generate_private_key(ec.SECP256R1())
        return cls._of(new_kid(now), private)

    @classmethod
    def from_pem(cls, kid: str, pem: bytes) -> SigningKey:
        """The key ``kid`` from its PEM file's bytes.

        Raises ValueError saying what is wrong: not a key id, not an unencrypted PEM private key,
        or a kind of key runwire does not sign with.
        """
        if kid_time(kid) is None:
            raise ValueError(
                "the file name is no key id: it must be <UTC time>-<letters or digits>.pem, "
                "e.g. 20261206T120000Z-3f9a1c2b.pem"
            )
        try:
            private = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            # Not the library's message: for some inputs it quotes the file's bytes.
            why = "it is encrypted" if isinstance(exc, TypeError) else "it is not one"
            raise ValueError(f"not an unencrypted PEM private key ({why})") from None
        if isinstance(private, ed25519.Ed25519PrivateKey):
            return cls._of(kid, private)
        if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
            private.curve, ec.SECP256R1
        ):
            return cls._of(kid, private)
        if isinstance(private, ec.EllipticCurvePrivateKey):
            kind = f"an EC key on {private.curve.name}"
        elif isinstance(private, rsa.RSAPrivateKey):
            kind = "an RSA key"
        else:
            kind = "another kind of key"
        raise ValueError(
            f"runwire signs with Ed25519 (EdDSA) or P-256 (ES256) keys, and this is {kind}"
        )

    @classmethod
    def _of(cls, kid: str, private: PrivateKey) -> SigningKey:
        algorithm = (
            TokenAlgorithm.EDDSA
            if isinstance(private, ed25519.Ed25519PrivateKey)
            else TokenAlgorithm.ES256
        )
        created = kid_time(kid)
        assert created is not None
        return cls(VerificationKey(kid, algorithm, private.public_key(), created), private)

    def pem(self) -> bytes:
        """The private key as unencrypted PKCS #8 PEM (its file's content)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass(frozen=True, slots=True)
class KeySet:
    """Signing keys, newest first, and how long a superseded one stays published
    (``lifetime_s``, see :func:`key_lifetime`)."""

    keys: tuple[SigningKey, ...]
    lifetime_s: float

    @classmethod
    def of(cls, keys: list[SigningKey], lifetime_s: float) -> KeySet:
        ordered = sorted(keys, key=lambda k: (k.public.created_at, k.kid), reverse=True)
        return cls(tuple(ordered), lifetime_s)

    @property
    def signing(self) -> SigningKey | None:
        """The key that signs new tokens: the newest (None in an empty set)."""
        return self.keys[0] if self.keys else None

    def retires_at(self, key: SigningKey) -> float | None:
        """When ``key`` retires (epoch seconds): its successor's birth plus the lifetime of a
        token; None for the signing key, which has no successor yet."""
        index = self.keys.index(key)
        if index == 0:
            return None
        return self.keys[index - 1].public.created_at + self.lifetime_s

    def state(self, key: SigningKey, now: float) -> KeyState:
        retires = self.retires_at(key)
        if retires is None:
            return KeyState.SIGNING
        return KeyState.PUBLISHED if now < retires else KeyState.RETIRED

    def published(self, now: float) -> list[VerificationKey]:
        """The keys a verifier trusts at ``now``: the signing key and the published ones."""
        return [k.public for k in self.keys if self.state(k, now) is not KeyState.RETIRED]

    def retired(self, now: float) -> list[SigningKey]:
        return [k for k in self.keys if self.state(k, now) is KeyState.RETIRED]

    def without(self, gone: list[SigningKey]) -> KeySet:
        return KeySet(tuple(k for k in self.keys if k not in gone), self.lifetime_s)
