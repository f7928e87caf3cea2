"""Integration fixtures: the ``store`` of these tests on every backend (SQLite, PostgreSQL).

A test taking ``store`` runs twice, ``[sqlite]`` on a fresh file and ``[postgresql]`` on one
database made for the session (migrated by the real migrations, emptied before each test and
dropped at the end): one suite proves the store's contract on both.
"""

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from runwire.config import Settings
from runwire.store.database import Database
from runwire.store.engine import create_private
from runwire.store.store import Store
from tests.databases import BACKENDS, empty_tables, fresh_postgres_database


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """The URL of a migrated PostgreSQL database for this session's store tests."""
    with fresh_postgres_database(migrate=True) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file migrated to head by the real migrations, once for the session (a worker's).

    Each test's ``[sqlite]`` store starts as a copy of it: the same file its own migration would
    make, without that migration's dozens of commits, each synced to disk (0.1-0.3 s a test,
    most of it waiting on the disk). The store still runs the migrations as it opens the copy,
    and finds nothing to do.
    """
    path = tmp_path_factory.mktemp("migrated-sqlite") / "runwire.db"

    async def migrate() -> None:
        async with Store.open(f"sqlite+aiosqlite:///{path}", migrate=True):
            pass

    asyncio.run(migrate())
    return path


@pytest.fixture
def store_url(backend: str, settings: Settings, request: pytest.FixtureRequest) -> str:
    # A synchronous fixture: the PostgreSQL one is made outside any test's event loop.
    if backend == "sqlite":
        url = settings.effective_database_url
        path = Database.sqlite_file(url)
        assert path is not None
        if not path.exists():
            create_private(path)  # the mode runwire gives the file (copyfile keeps it)
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        return url
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
async def store(backend: str, store_url: str) -> AsyncIterator[Store]:
    async with Store.open(store_url, migrate=backend == "sqlite") as opened:
        if backend == "postgresql":
            await empty_tables(opened.db)
        yield opened


@pytest.fixture
def database_url(backend: str, settings: Settings) -> Iterator[str]:
    """A database of its own for one test that runs the app: an SQLite file, or a fresh
    PostgreSQL database (the app migrates both at start, as outside production it does)."""
    if backend == "sqlite":
        yield settings.effective_database_url
        return
    with fresh_postgres_database(migrate=False) as url:
        yield url
