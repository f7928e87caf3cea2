"""``runwire migrate`` and ``runwire doctor``: the database's schema brought up to date, and
what the server needs checked as ``GET /ready`` checks it, without changing anything."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape

from runwire.cli.terminal import DataDir, out, run_on_store, settings_of
from runwire.config import Settings
from runwire.errors import ConfigError, DependencyUnavailable

if TYPE_CHECKING:
    from runwire.readiness import Check
    from runwire.store.store import Store

__all__ = ["doctor", "migrate", "show_checks"]


def migrate(data_dir: DataDir = None) -> None:
    """Apply pending database migrations."""
    settings = settings_of(data_dir)

    async def work(store: Store) -> str:
        await store.db.migrate()
        current, _ = await store.db.schema_revision()
        return current or "none"

    revision = run_on_store(settings.model_copy(update={"auto_migrate": False}), work)
    out.print(f"database schema is at revision {revision}")


async def _database_checks(url: str) -> list[Check]:
    from runwire.readiness import MIGRATE, Check, Readiness
    from runwire.store.database import Database

    missing = Database.sqlite_file(url)
    if missing is not None and not missing.exists():
        # Opening it would create an empty database: doctor looks, it changes nothing.
        return [Check("database", False, "no database file yet", str(missing), MIGRATE)]
    async with Database.open(url) as db:
        return await Readiness(db).run()


async def _redis_check(url: str) -> Check:
    from runwire.bus.redis import RedisBus
    from runwire.readiness import REACH_REDIS, BusProbe, Check

    try:
        async with RedisBus(url).running() as bus:
            return await BusProbe(bus).check()
    except DependencyUnavailable as exc:  # it did not answer at start
        return Check("redis", False, exc.message, fix=REACH_REDIS)


async def _checks(settings: Settings) -> list[Check]:
    from runwire.cli.auth_checks import auth_checks
    from runwire.readiness import LLMProbe

    checks = await _database_checks(settings.effective_database_url)
    checks += await auth_checks(settings)
    if settings.redis_url is not None:
        checks.append(await _redis_check(settings.redis_url.get_secret_value()))
    llm = LLMProbe.configured(settings)
    if llm is not None:
        checks.append(await llm.check())
    return checks


def doctor(data_dir: DataDir = None) -> None:
    """Check what the server needs, as GET /ready does: settings, database, schema (and Redis
    when RUNWIRE_REDIS_URL is set, the LLM endpoint when RUNWIRE_LLM_BASE_URL is); with
    RUNWIRE_ROLE=chat the issuer's discovery and keys (and its service client, when set), with
    RUNWIRE_ROLE=auth the signing keys and a fresh token verified against the published ones.

    One line per check; exit code 0 when all pass, 1 when one fails.
    """
    from runwire.config import load_settings
    from runwire.readiness import Check
    from runwire.store.database import redact_url

    try:
        settings = load_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    except ConfigError as exc:
        show_checks([Check("settings", False, "; ".join(exc.problems))])
        raise typer.Exit(1) from None
    url = settings.effective_database_url
    out.print(f"database URL: {redact_url(url)}", highlight=False)
    checks = [Check("settings", True, detail=f"valid (RUNWIRE_ENV={settings.env.value})")]
    checks += asyncio.run(_checks(settings))
    show_checks(checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def show_checks(checks: list[Check], console: Console = out) -> None:
    """One line per check (ok, or failing with the reason, then the detail and the fix
    indented under it), then the verdict: ``ready`` or which checks are failing."""
    width = max(len(c.name) for c in checks)
    for check in checks:
        name = check.name.ljust(width)
        if check.ok:
            line = f"[green]ok[/green]       {name}  {escape(check.detail)}"
            console.print(line, soft_wrap=True, highlight=False)
            continue
        line = f"[red]failing[/red]  {name}  {escape(check.reason)}"
        console.print(line, soft_wrap=True, highlight=False)
        indent = " " * (width + 11)
        if check.detail:
            console.print(f"{indent}{escape(check.detail)}", soft_wrap=True, highlight=False)
        if check.fix:
            console.print(f"{indent}fix: {escape(check.fix)}", soft_wrap=True, highlight=False)
    failing = [c.name for c in checks if not c.ok]
    console.print(
        f"not ready: {', '.join(failing)} failing" if failing else "ready", highlight=False
    )
