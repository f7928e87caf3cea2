"""What verifying an access token costs per request: ``AccessTokens.verify`` with its key found
by ``kid`` in the server's key ring (loaded once, as a running server holds it), for each
algorithm: a token's first verification (its signature checked) and its repeats (a client sends
one token with every request for its lifetime: remembered, the signature is not checked again).
Beside them, for scale: the bare signature check of ``cryptography`` alone, and the HS256
verification of earlier versions (PyJWT with a shared secret). Issuing is timed too (once per
login or refresh, not per request).

Times are this process's CPU per call (on a shared machine, wall time would count the other
processes' turns), the best of several rounds.

Usage: python bench/token_verify.py [--tokens 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from runwire.app.tokens import build_access_tokens
from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.config import SigningAlgorithm, load_settings


def best_us(work: Callable[[], object], n: int, rounds: int) -> float:
    """The best of ``rounds`` runs of ``n`` calls, in µs of CPU per call."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(n):
            work()
        best = min(best, time.process_time() - started)
    return best / n * 1e6


def first_us(verify: Callable[[str], object], tokens: list[str]) -> float:
    """Each token verified once: µs of CPU per token."""
    started = time.process_time()
    for token in tokens:
        verify(token)
    return (time.process_time() - started) / len(tokens) * 1e6


def bare_us(algorithm: SigningAlgorithm, n: int, rounds: int) -> float:
    """The signature check alone, as ``cryptography`` does it."""
    message = b"x" * 300
    if algorithm is SigningAlgorithm.EDDSA:
        key = ed25519.Ed25519PrivateKey.generate()
        signature = key.sign(message)
        public = key.public_key()
        return best_us(partial(public.verify, signature, message), n, rounds)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    scheme = ec.ECDSA(hashes.SHA256())
    ec_signature = ec_key.sign(message, scheme)
    ec_public = ec_key.public_key()
    return best_us(partial(ec_public.verify, ec_signature, message, scheme), n, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in SigningAlgorithm:
            settings = load_settings(
                env="test", data_dir=Path(tmp) / algorithm.value, auth_algorithm=algorithm
            )
            ring = KeyRing(KeyDirectory(settings.keys_dir), open_keys(settings))
            issuer = build_access_tokens(settings, ring)
            fresh = [issuer.issue("usr_bench", f"ses_{i}") for i in range(args.tokens)]
            best_first = min(
                # A verifier of its own each round: it remembers none of the tokens.
                first_us(build_access_tokens(settings, ring).verify, fresh)
                for _ in range(args.rounds)
            )
            repeat = best_us(partial(issuer.verify, fresh[0]), args.tokens, args.rounds)
            issue = best_us(
                partial(issuer.issue, "usr_bench", "ses_bench"), args.tokens // 4, args.rounds
            )
            bare = bare_us(algorithm, args.tokens, args.rounds)
            rows.append((f"{algorithm.value}", best_first, repeat, issue, bare))
    secret = "s" * 48
    now = int(time.time())
    claims = {"sub": "usr_bench", "sid": "ses_bench", "iat": now, "exp": now + 900}
    old = jwt.encode(claims | {"iss": "runwire", "typ": "access"}, secret, algorithm="HS256")
    hs256 = best_us(
        partial(jwt.decode, old, secret, algorithms=["HS256"], issuer="runwire"),
        args.tokens,
        args.rounds,
    )
    print(f"{'algorithm':<10} {'first µs':>9} {'repeat µs':>10} {'issue µs':>9} {'bare µs':>8}")
    for name, best_first, repeat, issue, bare in rows:
        print(f"{name:<10} {best_first:>9.1f} {repeat:>10.1f} {issue:>9.1f} {bare:>8.1f}")
    print(f"{'HS256 (before)':<21} {hs256:>9.1f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
