"""safe_url: what a log line or an error message may show of a URL from the settings."""

from __future__ import annotations

import pytest

from runwire.config import safe_url

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rediss://:hunter2@redis.internal:6380/2", "rediss://redis.internal:6380/2"),
        ("redis://default:hunter2@redis:6379", "redis://redis:6379"),
        (
            "postgresql+asyncpg://app:hunter2@db.example:5432/runwire",
            "postgresql+asyncpg://db.example:5432/runwire",
        ),
        ("postgresql+asyncpg://app@db.example/runwire", "postgresql+asyncpg://db.example/runwire"),
        ("sqlite+aiosqlite:///var/lib/runwire.db", "sqlite+aiosqlite://?/var/lib/runwire.db"),
        # A query may carry a password too (asyncpg reads ?password=): it is dropped whole.
        ("postgresql+asyncpg://db/runwire?password=hunter2", "postgresql+asyncpg://db/runwire"),
        ("https://user:hunter2@collector.example/v1#frag", "https://collector.example/v1"),
        # An IPv6 host keeps its brackets; a bad port is shown as written, never raised.
        ("redis://:hunter2@[::1]:6379/0", "redis://[::1]:6379/0"),
        ("redis://:hunter2@redis:99999/0", "redis://redis:99999/0"),
        ("redis://:pass@word@redis:6379", "redis://redis:6379"),
    ],
)
def test_credentials_never_show(url: str, shown: str) -> None:
    assert safe_url(url) == shown
    assert "hunter2" not in safe_url(url)


def test_the_host_is_lowercased_and_the_scheme_and_path_kept() -> None:
    assert safe_url("redis://:pw@Redis.Internal:6379/0") == "redis://redis.internal:6379/0"
