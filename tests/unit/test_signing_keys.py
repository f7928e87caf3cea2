"""Signing keys: ids, JWKs, states over a rotation, and the key files a server reads."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from runwire.auth.key_files import KeyDirectory, KeyRing, open_keys
from runwire.auth.keys import RETIRE_MARGIN_S, KeySet, KeyState, SigningKey, key_lifetime, kid_time
from runwire.config import Environment, SigningAlgorithm, TokenAlgorithm
from runwire.errors import ConfigError
from tests.conftest import test_settings
from tests.keys import rsa_key

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
TTL = 900


def test_a_kid_says_when_its_key_was_made() -> None:
    key = SigningKey.generate(SigningAlgorithm.EDDSA, T0)
    assert key.kid.startswith("20270115T080000Z-")
    assert key.public.created_at == T0 == kid_time(key.kid)
    for bad in ("", "key", "20271315T080000Z-abcd", "20270115T080000Z-AB", "20270115T080000Z"):
        assert kid_time(bad) is None, bad


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm), ids=lambda a: a.value)
def test_a_jwk_has_the_public_members_only(algorithm: SigningAlgorithm) -> None:
    key = SigningKey.generate(algorithm, T0)
    jwk = key.public.jwk()
    if algorithm is SigningAlgorithm.EDDSA:
        assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
        assert (jwk["kty"], jwk["crv"], len(jwk["x"])) == ("OKP", "Ed25519", 43)
    else:
        assert set(jwk) == {"kty", "crv", "x", "y", "kid", "alg", "use"}
        assert (jwk["kty"], jwk["crv"], len(jwk["x"]), len(jwk["y"])) == ("EC", "P-256", 43, 43)
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == (key.kid, algorithm.value, "sig")
    assert SigningKey.from_pem(key.kid, key.pem()).public.jwk() == jwk  # the file keeps it


def test_states_over_a_rotation() -> None:
    first = SigningKey.generate(SigningAlgorithm.EDDSA, T0)
    second = SigningKey.generate(SigningAlgorithm.EDDSA, T0 + 3600)
    keys = KeySet.of([first, second], key_lifetime(TTL))
    assert keys.signing is second
    assert keys.retires_at(second) is None
    retires = T0 + 3600 + TTL + RETIRE_MARGIN_S
    assert keys.retires_at(first) == retires
    assert keys.state(second, T0 + 3600) is KeyState.SIGNING
    assert keys.state(first, retires - 1) is KeyState.PUBLISHED
    assert keys.state(first, retires) is KeyState.RETIRED
    assert [k.kid for k in keys.published(retires - 1)] == [second.kid, first.kid]
    assert [k.kid for k in keys.published(retires)] == [second.kid]
    assert keys.retired(retires) == [first]


def test_the_first_start_makes_a_key_and_the_next_keeps_it(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    made = open_keys(settings)
    assert len(made.keys) == 1 and made.signing is not None
    assert made.signing.algorithm is SigningAlgorithm.EDDSA
    again = open_keys(settings)
    assert again.signing is not None and again.signing.kid == made.signing.kid
    assert es256_start(tmp_path / "other").algorithm is SigningAlgorithm.ES256


def es256_start(data: Path) -> SigningKey:
    key = open_keys(test_settings(data, auth_algorithm="ES256")).signing
    assert key is not None
    return key


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    settings = test_settings(tmp_path).model_copy(update={"env": Environment.PRODUCTION})
    with pytest.raises(ConfigError) as caught:
        open_keys(settings)
    assert caught.value.problems == [
        f"no access-token signing key in {tmp_path / 'keys'} (RUNWIRE_AUTH_KEYS_DIR): create one "
        "with `RUNWIRE_ENV=production runwire auth rotate-keys`, or copy the key files of your "
        "other nodes there (docs/auth.md)"
    ]
    assert not (tmp_path / "keys").exists()  # nothing was made


def test_every_unusable_key_file_is_named(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    good = KeyDirectory(keys).add(SigningAlgorithm.EDDSA)
    open_to_all = KeyDirectory(keys).add(SigningAlgorithm.EDDSA)
    os.chmod(keys / f"{open_to_all.kid}.pem", 0o644)
    (keys / "20270115T080000Z-garbage.pem").write_bytes(b"not a key")
    os.chmod(keys / "20270115T080000Z-garbage.pem", 0o600)
    (keys / "20270115T080000Z-rsa2048.pem").write_bytes(_pem(rsa_key()))
    os.chmod(keys / "20270115T080000Z-rsa2048.pem", 0o600)
    (keys / "20270115T080000Z-p384.pem").write_bytes(_pem(ec.generate_private_key(ec.SECP384R1())))
    os.chmod(keys / "20270115T080000Z-p384.pem", 0o600)
    (keys / "production.pem").write_bytes(good.pem())
    os.chmod(keys / "production.pem", 0o600)
    (keys / "README").write_text("not a key, and not named like one: left alone")
    with pytest.raises(ConfigError) as caught:
        open_keys(test_settings(tmp_path))
    assert sorted(caught.value.problems) == sorted(
        [
            f"key file {keys / open_to_all.kid}.pem: mode 0644 lets other users read it: run "
            f"`chmod 600 {keys / open_to_all.kid}.pem`",
            f"key file {keys}/20270115T080000Z-garbage.pem: not an unencrypted PEM private key "
            "(it is not one)",
            f"key file {keys}/20270115T080000Z-rsa2048.pem: runwire signs with Ed25519 (EdDSA) or "
            "P-256 (ES256) keys, and this is an RSA key",
            f"key file {keys}/20270115T080000Z-p384.pem: runwire signs with Ed25519 (EdDSA) or "
            "P-256 (ES256) keys, and this is an EC key on secp384r1",
            f"key file {keys}/production.pem: the file name is no key id: it must be <UTC "
            "time>-<letters or digits>.pem, e.g. 20261206T120000Z-3f9a1c2b.pem",
        ]
    )
    assert "PRIVATE KEY" not in caught.value.message


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_a_start_removes_the_keys_whose_tokens_have_all_expired(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    directory = KeyDirectory(settings.keys_dir)
    old = directory.add(SigningAlgorithm.EDDSA, T0)
    new = directory.add(SigningAlgorithm.EDDSA, T0 + 60)
    retires = T0 + 60 + key_lifetime(settings.access_token_ttl_s)
    assert len(open_keys(settings, now=retires - 1).keys) == 2
    assert directory.names() == {old.kid, new.kid}
    kept = open_keys(settings, now=retires)
    assert [k.kid for k in kept.keys] == [new.kid]
    assert directory.names() == {new.kid}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_running_ring_takes_a_new_key_within_a_second(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    directory = KeyDirectory(settings.keys_dir)
    clock = Clock()
    ring = KeyRing(directory, open_keys(settings), clock=clock)
    first = ring.signing()
    second = directory.add(SigningAlgorithm.EDDSA)  # `runwire auth rotate-keys`, elsewhere
    clock.now = 0.5
    assert ring.signing().kid == first.kid  # not looked again yet
    assert ring.find(second.kid) is None  # an unknown kid looks no more often either
    clock.now = 1.0
    assert ring.signing().kid == second.kid
    assert ring.find(first.kid) is not None  # still published
    assert [k.kid for k in ring.published()] == [second.kid, first.kid]


def test_an_unknown_kid_makes_the_ring_look_again(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    directory = KeyDirectory(settings.keys_dir)
    clock = Clock()
    ring = KeyRing(directory, open_keys(settings), clock=clock)
    added = directory.add(SigningAlgorithm.ES256)  # signed with already by another node
    clock.now = 5.0
    found = ring.find(added.kid)
    assert found is not None and found.algorithm is TokenAlgorithm.ES256


def test_a_broken_new_file_leaves_the_ring_working(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = test_settings(tmp_path)
    directory = KeyDirectory(settings.keys_dir)
    clock = Clock()
    ring = KeyRing(directory, open_keys(settings), clock=clock)
    first = ring.signing()
    broken = settings.keys_dir / "20990101T000000Z-half.pem"
    broken.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    os.chmod(broken, 0o600)
    clock.now = 2.0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="runwire.auth.key_files"):
        assert ring.signing().kid == first.kid
    assert [r.getMessage() for r in caplog.records] == [
        f"key file {broken}: not an unencrypted PEM private key (it is not one); the key is not used"
    ]
    for kid in directory.names():
        directory.remove(kid)  # every key file gone: the ring keeps what it has
    clock.now = 4.0
    assert ring.signing().kid == first.kid


def test_a_retired_key_verifies_nothing_even_before_its_file_goes(tmp_path: Path) -> None:
    settings = test_settings(tmp_path)
    directory = KeyDirectory(settings.keys_dir)
    old = directory.add(SigningAlgorithm.EDDSA, T0)
    directory.add(SigningAlgorithm.EDDSA, T0 + 60)
    retires = T0 + 60 + key_lifetime(settings.access_token_ttl_s)
    wall = Clock()
    wall.now = retires - 1
    ring = KeyRing(directory, open_keys(settings, now=wall.now), wall=wall)
    assert ring.find(old.kid) is not None
    wall.now = retires
    assert ring.find(old.kid) is None
    assert old.kid not in [k.kid for k in ring.published()]


def test_keys_made_in_one_second_are_ordered_as_they_were_made(tmp_path: Path) -> None:
    # Names order keys by birth to the second: two rotations in one second must still leave
    # the last one signing, whatever the random parts of their names.
    directory = KeyDirectory(tmp_path / "keys")
    made = [directory.add(SigningAlgorithm.EDDSA, now=1_800_000_000.25) for _ in range(5)]
    assert sorted(directory.names()) == [key.kid for key in made]
