"""The signing keys on disk, and the live view a running server keeps of them (docs/auth.md).

The directory holds one PEM file per key, ``<kid>.pem`` (PKCS #8, unencrypted, mode 0600); the
file names say everything else (see :mod:`runwire.auth.keys`). A key file is written once and
never changed: a new key is written under a hidden temporary name and linked into place, so a
reader sees a whole file or none. Files whose name begins with a dot, or does not end ``.pem``,
are not keys and are left alone.

A running server does not need a restart to take a rotation: :class:`KeyRing` lists the directory
again at most once a second when it signs (and when a token names a key it does not know), loads
the keys that appeared and forgets those that went.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runwire.auth.keys import KeySet, SigningKey, VerificationKey, key_lifetime, kid_time
from runwire.config import Settings, SigningAlgorithm
from runwire.errors import ConfigError

__all__ = ["KeyDirectory", "KeyRing", "open_keys"]

log = logging.getLogger(__name__)

SUFFIX = ".pem"
# How often a running server looks for new key files, at most (seconds).
RECHECK_S = 1.0


@dataclass(frozen=True, slots=True)
class Loaded:
    """What a directory held: its keys, and each file that could not be read, with why."""

    keys: dict[str, SigningKey]
    problems: list[str]


class KeyDirectory:
    """The key files in ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def names(self) -> set[str]:
        """The kids of the key files present (an absent directory holds none)."""
        try:
            entries = os.listdir(self.path)
        except FileNotFoundError:
            return set()
        return {
            name.removesuffix(SUFFIX)
            for name in entries
            if name.endswith(SUFFIX) and not name.startswith(".")
        }

    def load(self, known: dict[str, SigningKey] | None = None) -> Loaded:
        """Every key file, read (those in ``known`` are taken from there: a key file never
        changes). A file that is not a usable key is reported, never half-used."""
        known = known or {}
        keys: dict[str, SigningKey] = {}
        problems: list[str] = []
        for kid in sorted(self.names()):
            if kid in known:
                keys[kid] = known[kid]
                continue
            path = self.path / f"{kid}{SUFFIX}"
            try:
                keys[kid] = self._read(kid, path)
            except ValueError as exc:
                problems.append(f"key file {path}: {exc}")
            except OSError as exc:
                problems.append(f"key file {path} cannot be read: {exc.strerror or exc}")
        return Loaded(keys, problems)

    @staticmethod
    def _read(kid: str, path: Path) -> SigningKey:
        with path.open("rb") as handle:
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & 0o077:
                # Like ssh with a private key: a key others can read is refused, not used.
                raise ValueError(
                    f"mode {mode:04o} lets other users read it: run `chmod 600 {path}`"
                )
            pem = handle.read()
        return SigningKey.from_pem(kid, pem)

    def add(self, algorithm: SigningAlgorithm, now: float | None = None) -> SigningKey:
        """Make a new key and write its file (mode 0600; the directory, if new, 0700)."""
        now = time.time() if now is None else now
        # Names order the keys by their birth, to the second: a key made in the same second as
        # the newest one present is dated a second after it, so "the newest signs" stays true.
        born = [t for t in map(kid_time, self.names()) if t is not None]
        if born and now < max(born) + 1:
            now = max(born) + 1
        key = SigningKey.generate(algorithm, now)
        # Private, as the data directory is (its parent when it is the default place).
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path.mkdir(mode=0o700, exist_ok=True)
        final = self.path / f"{key.kid}{SUFFIX}"
        temporary = self.path / f".{key.kid}{SUFFIX}.tmp"
        # Created 0600, so the key is never readable by others, not even before a chmod.
        fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(key.pem())
                out.flush()
                os.fsync(out.fileno())
            os.link(temporary, final)  # fails rather than replace a key of the same id
        finally:
            temporary.unlink(missing_ok=True)
        return key

    def remove(self, kid: str) -> None:
        (self.path / f"{kid}{SUFFIX}").unlink(missing_ok=True)


def open_keys(settings: Settings, *, now: float | None = None) -> KeySet:
    """The key set a server starts with.

    Outside production a missing key is made (the first start); in production there must be one.
    Keys retired by now are deleted. Raises :class:`ConfigError` naming every file that cannot be
    used, or the missing key and how to make it.
    """
    directory = KeyDirectory(settings.keys_dir)
    now = time.time() if now is None else now
    loaded = directory.load()
    if loaded.problems:
        raise ConfigError(loaded.problems)
    if not loaded.keys:
        if settings.is_production:
            raise ConfigError(
                [
                    f"no access-token signing key in {directory.path} (RUNWIRE_AUTH_KEYS_DIR): "
                    "create one with `RUNWIRE_ENV=production runwire auth rotate-keys`, or copy "
                    "the key files of your other nodes there (docs/auth.md)"
                ]
            )
        key = directory.add(settings.auth_algorithm, now)
        log.warning("made a development signing key %s in %s", key.kid, directory.path)
        loaded.keys[key.kid] = key
    keys = KeySet.of(list(loaded.keys.values()), key_lifetime(settings.access_token_ttl_s))
    retired = keys.retired(now)
    for key in retired:
        directory.remove(key.kid)
    return keys.without(retired)


class KeyRing:
    """The keys of a running server, kept in step with the directory.

    ``clock`` (monotonic seconds) paces the re-reads; ``wall`` (epoch seconds) decides which keys
    are published. Both are the real ones unless a test passes its own.
    """

    def __init__(
        self,
        directory: KeyDirectory,
        keys: KeySet,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._directory = directory
        self._clock = clock
        self._wall = wall
        self._checked = clock()
        self._use(keys)

    def _use(self, keys: KeySet) -> None:
        self._keys = keys
        self._by_kid = {k.kid: k for k in keys.keys}
        self._retires = {k.kid: keys.retires_at(k) for k in keys.keys}

    @property
    def keys(self) -> KeySet:
        return self._keys

    def signing(self) -> SigningKey:
        """The key to sign with now (the newest; a rotation is seen within a second)."""
        self._recheck()
        key = self._keys.signing
        assert key is not None  # open_keys never gives an empty set, and a reload keeps one
        return key

    def find(self, kid: str) -> VerificationKey | None:
        """The published key ``kid``. The ring looks at the directory again once a second at
        most (so tokens naming made-up kids cost no more than that): a key added elsewhere is
        found, and a key file removed (a key thought leaked) stops verifying within a second."""
        self._recheck()
        key = self._by_kid.get(kid)
        if key is None:
            return None
        retires = self._retires[kid]
        if retires is not None and self._wall() >= retires:
            return None
        return key.public

    async def learn(self, kid: str) -> None:
        """Nothing to wait for: :meth:`find` looks at the directory itself."""

    def published(self) -> list[VerificationKey]:
        """The keys a verifier should trust now (what ``/.well-known/jwks.json`` lists)."""
        self._recheck()
        return self._keys.published(self._wall())

    def _recheck(self) -> bool:
        """Look at the directory again if a second has passed; True when the set changed."""
        now = self._clock()
        if now - self._checked < RECHECK_S:
            return False
        self._checked = now
        if self._directory.names() == set(self._by_kid):
            return False
        loaded = self._directory.load(self._by_kid)
        for problem in loaded.problems:
            log.warning("%s; the key is not used", problem)
        if not loaded.keys:
            log.warning("no key file is left in %s; keeping the keys in use", self._directory.path)
            return False
        self._use(KeySet.of(list(loaded.keys.values()), self._keys.lifetime_s))
        log.info("signing keys reloaded from %s: %s signs", self._directory.path, self.signing_kid)
        return True

    @property
    def signing_kid(self) -> str:
        key = self._keys.signing
        return key.kid if key is not None else "none"
