"""The files runwire keeps on disk hold password hashes and the signing keys: only the user the
server runs as may read them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runwire.auth.key_files import open_keys
from runwire.store.store import Store
from tests.conftest import test_settings


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@contextmanager
def umask(value: int) -> Iterator[None]:
    before = os.umask(value)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.parametrize("mask", [0o022, 0o002], ids=["umask-022", "umask-002"])
async def test_the_data_directory_and_its_files_are_private(tmp_path: Path, mask: int) -> None:
    data = tmp_path / "data"
    settings = test_settings(data)
    with umask(mask):  # the usual ones, which leave new files readable by others
        keys = open_keys(settings)  # the first start makes a key
        async with Store.open(settings.effective_database_url, migrate=True) as store:
            await store.accounts.create_user("usr_a", "a@example.com", "$argon2id$hash")
            wal, shm = data / "runwire.db-wal", data / "runwire.db-shm"
            assert wal.exists() and shm.exists()  # written to, not yet checkpointed away
            assert (mode(wal), mode(shm)) == (0o600, 0o600)
    assert mode(data) == 0o700
    assert mode(data / "runwire.db") == 0o600
    assert mode(data / "keys") == 0o700
    assert [mode(data / "keys" / f"{k.kid}.pem") for k in keys.keys] == [0o600]
