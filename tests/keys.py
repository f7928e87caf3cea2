"""Keys for tests: signing keys for tests of production settings, which refuse to start without
them, and RSA keys for the tests that need some RSA key."""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

from runwire.auth.key_files import KeyDirectory
from runwire.config import SigningAlgorithm


def key_directory(path: Path, algorithm: SigningAlgorithm = SigningAlgorithm.EDDSA) -> Path:
    """``path`` made a key directory holding one signing key, as `runwire auth rotate-keys`
    makes it; returns ``path``."""
    KeyDirectory(path).add(algorithm)
    return path


@functools.cache
def rsa_key(which: int = 0, bits: int = 2048) -> rsa.RSAPrivateKey:
    """An RSA private key of ``bits``, made once per test process: making a 2048-bit key takes
    0.05-0.3 s (a search for primes), and no test needs a fresh one, only some RSA key. Keys
    that must differ (one the issuer does not own) differ in ``which``."""
    del which  # only the cache's key: each value names another key
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
