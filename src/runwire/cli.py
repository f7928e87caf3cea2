"""The ``runwire`` command line: serve, migrate, check (doctor), manage users, import usage data."""

from __future__ import annotations

import asyncio
import getpass
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from runwire.auth.passwords import Passwords
from runwire.auth.service import MIN_PASSWORD, AuthService, normalize_email
from runwire.auth.throttle import AuthLimits, AuthThrottle
from runwire.auth.tokens import AccessTokens
from runwire.config import Settings, load_settings, resolve_secret
from runwire.errors import ConfigError, DependencyUnavailable, RunwireError
from runwire.limits.memory import MemoryRateLimiter
from runwire.readiness import MIGRATE, REACH_REDIS, BusProbe, Check, Readiness
from runwire.store.database import Database, redact_url
from runwire.store.records import iso_from_ms
from runwire.store.store import Store
from runwire.store.usage import UsageBatch
from runwire.usage.pricing import PricingTable
from runwire.workload import ImportResult, Workload

__all__ = ["app", "main"]

app = typer.Typer(help="runwire: multi-user, real-time AI agent chat.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
usage_app = typer.Typer(
    help="Import, generate, list or delete a user's LLM-usage records.", no_args_is_help=True
)
app.add_typer(user_app, name="user")
app.add_typer(usage_app, name="usage")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where SQLite and the dev secret live [env RUNWIRE_DATA_DIR]."),
]


def _settings(data_dir: Path | None = None, **extra: Any) -> Settings:
    overrides = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]{exc.message}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Store.open(
            settings.effective_database_url, migrate=settings.migrate_on_start
        ) as store:
            return await work(store)

    try:
        return asyncio.run(main())
    except RunwireError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on [default 127.0.0.1].")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default 8000].")] = None,
    data_dir: DataDir = None,
) -> None:
    """Start the server (embedded defaults: SQLite, in-process bus, offline agents)."""
    import uvicorn

    from runwire.app import create_app
    from runwire.collector import tune_collector

    settings = _settings(data_dir, host=host, port=port)
    _, generated = resolve_secret(settings)
    if generated:
        err.print(
            f"[yellow]development secret[/yellow] in {settings.data_dir / 'secret.key'} "
            "(set RUNWIRE_SECRET_KEY for production)",
            highlight=False,
        )
    shown_host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host  # noqa: S104
    out.print(f"runwire is starting: open http://{shown_host}:{settings.port}/", highlight=False)
    app = create_app(settings)
    tune_collector(settings.gc_young_threshold)
    uvicorn.run(app, **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for ``runwire serve``, from the settings."""
    from runwire.config import WebSocketPath
    from runwire.transport.ws_coalescing import CoalescingWebSocketProtocol
    from runwire.transport.ws_protocol import RunwireWebSocketProtocol

    return {
        "host": settings.host,
        "port": settings.port,
        "ws_max_size": settings.max_frame_bytes,
        "ws_per_message_deflate": False,
        "ws": (
            RunwireWebSocketProtocol
            if settings.ws_path is WebSocketPath.DIRECT
            else CoalescingWebSocketProtocol
        ),
        "ws_ping_interval": settings.ws_ping_interval_s or None,
        "ws_ping_timeout": settings.ws_ping_timeout_s,
        # The app reads X-Forwarded-For itself, from RUNWIRE_TRUSTED_PROXIES only; uvicorn's own
        # reading would trust 127.0.0.1 (FORWARDED_ALLOW_IPS) and let local clients pick an address.
        "proxy_headers": False,
        "timeout_keep_alive": settings.http_keep_alive_s,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_s) + 5,
        "log_level": "info",
    }


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Apply pending database migrations."""
    settings = _settings(data_dir)

    async def work(store: Store) -> str:
        await store.db.migrate()
        current, _ = await store.db.schema_revision()
        return current or "none"

    revision = _run(settings.model_copy(update={"auto_migrate": False}), work)
    out.print(f"database schema is at revision {revision}")


async def _database_checks(url: str) -> list[Check]:
    missing = Database.sqlite_file(url)
    if missing is not None and not missing.exists():
        # Opening it would create an empty database: doctor looks, it changes nothing.
        return [Check("database", False, "no database file yet", str(missing), MIGRATE)]
    async with Database.open(url) as db:
        return await Readiness(db).run()


async def _redis_check(url: str) -> Check:
    from runwire.bus.redis import RedisBus

    try:
        async with RedisBus(url).running() as bus:
            return await BusProbe(bus).check()
    except DependencyUnavailable as exc:  # it did not answer at start
        return Check("redis", False, exc.message, fix=REACH_REDIS)


async def _checks(settings: Settings) -> list[Check]:
    checks = await _database_checks(settings.effective_database_url)
    if settings.redis_url is not None:
        checks.append(await _redis_check(settings.redis_url.get_secret_value()))
    return checks


@app.command()
def doctor(data_dir: DataDir = None) -> None:
    """Check what the server needs, as GET /ready does: settings, database, schema (and Redis
    when RUNWIRE_REDIS_URL is set).

    One line per check; exit code 0 when all pass, 1 when one fails.
    """
    try:
        settings = load_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    except ConfigError as exc:
        _report([Check("settings", False, "; ".join(exc.problems))])
        raise typer.Exit(1) from None
    url = settings.effective_database_url
    out.print(f"database URL: {redact_url(url)}", highlight=False)
    checks = [Check("settings", True, detail=f"valid (RUNWIRE_ENV={settings.env.value})")]
    checks += asyncio.run(_checks(settings))
    _report(checks)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _report(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for check in checks:
        name = check.name.ljust(width)
        if check.ok:
            line = f"[green]ok[/green]       {name}  {escape(check.detail)}"
            out.print(line, soft_wrap=True, highlight=False)
            continue
        line = f"[red]failing[/red]  {name}  {escape(check.reason)}"
        out.print(line, soft_wrap=True, highlight=False)
        indent = " " * (width + 11)
        if check.detail:
            out.print(f"{indent}{escape(check.detail)}", soft_wrap=True, highlight=False)
        if check.fix:
            out.print(f"{indent}fix: {escape(check.fix)}", soft_wrap=True, highlight=False)
    failing = [c.name for c in checks if not c.ok]
    out.print(f"not ready: {', '.join(failing)} failing" if failing else "ready", highlight=False)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        err.print("[red]the passwords differ[/red]")
        raise typer.Exit(1)
    return first


@user_app.command("create")
def user_create(
    email: str,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Create a user (asks for the password)."""
    settings = _settings(data_dir)
    password = _read_password(password_stdin)
    if len(password) < MIN_PASSWORD:
        err.print(f"[red]the password must have at least {MIN_PASSWORD} characters[/red]")
        raise typer.Exit(1)

    async def work(store: Store) -> str:
        secret, _ = resolve_secret(settings)
        auth = AuthService(
            store.accounts,
            Passwords(time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib),
            AccessTokens(secret, settings.access_token_ttl_s),
            # Not consulted: an account made here is local administration, not a sign-up.
            throttle=AuthThrottle(
                AuthLimits.from_settings(settings), MemoryRateLimiter(time.monotonic)
            ),
            refresh_ttl_s=settings.refresh_token_ttl_s,
            ticket_ttl_s=settings.ws_ticket_ttl_s,
        )
        user = await auth.register(email, password)
        return user.id

    user_id = _run(settings, work)
    out.print(f"created user {normalize_email(email)} ({user_id})", highlight=False)


def _user_id(store: Store, email: str) -> Awaitable[str]:
    async def find() -> str:
        user = await store.accounts.user_by_email(normalize_email(email))
        if user is None:
            raise RunwireError(f"no user {email}; create one with `runwire user create {email}`")
        return user.id

    return find()


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        yield from handle


@usage_app.command("import")
def usage_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    user: Annotated[str, typer.Option("--user", help="E-mail of the user who owns the data.")],
    data_dir: DataDir = None,
) -> None:
    """Import a JSONL or CSV file of LLM calls; good lines are kept, bad ones listed.

    Records already stored are not added again, so importing a file twice adds nothing.
    """
    settings = _settings(data_dir)
    try:
        kind = Workload.format_of(None, file.name)
    except RunwireError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    total = sum(1 for _ in _lines(file))

    async def work(store: Store) -> Any:
        user_id = await _user_id(store, user)
        workload = Workload(store.usage, PricingTable.load())
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
        ) as progress:
            task = progress.add_task("lines", total=total)
            return await workload.import_lines(
                user_id,
                _lines(file),
                kind,
                on_progress=lambda n: progress.update(task, completed=n),
                name=file.name[:200],
            )

    result = _run(settings, work)
    out.print(f"imported {result.imported} records from {file} ({_added(result)})", highlight=False)
    if result.rejected_total:
        err.print(f"[yellow]rejected {result.rejected_total} lines:[/yellow]")
        for line, why in result.rejected[:200]:
            err.print(f"  line {line}: {why}", highlight=False)
        if result.rejected_total > 200:
            err.print(f"  … and {result.rejected_total - 200} more")
        raise typer.Exit(1 if result.imported == 0 else 0)


def _added(result: ImportResult) -> str:
    added = f"{result.new} new, {result.already_present} already present"
    return f"{added}; batch {result.batch_id}" if result.batch_id else added


@usage_app.command("sample")
def usage_sample(
    user: Annotated[str, typer.Option("--user", help="E-mail of the user to give the sample.")],
    data_dir: DataDir = None,
) -> None:
    """Give a user a generated, realistic set of LLM calls (30 days, several models), once."""
    settings = _settings(data_dir)

    async def work(store: Store) -> ImportResult:
        user_id = await _user_id(store, user)
        return await Workload(store.usage, PricingTable.load()).load_sample(user_id)

    result = _run(settings, work)
    out.print(
        f"loaded {result.imported} sample records for {user} ({_added(result)})", highlight=False
    )


@usage_app.command("batches")
def usage_batches(
    user: Annotated[str, typer.Option("--user", help="E-mail of the user whose data to list.")],
    data_dir: DataDir = None,
) -> None:
    """List a user's import batches, newest first: id, records, source, file, when."""
    settings = _settings(data_dir)

    async def work(store: Store) -> list[UsageBatch]:
        return await Workload(store.usage, PricingTable.load()).batches(await _user_id(store, user))

    batches = _run(settings, work)
    if not batches:
        out.print(f"{user} has no usage batches", highlight=False)
    for batch in batches:
        when = iso_from_ms(batch.created_at)[:19].replace("T", " ")
        name = f"  {batch.name}" if batch.name else ""
        out.print(
            f"{batch.id}  {batch.records:>8} records  {batch.source:<7}  {when} UTC{name}",
            highlight=False,
            soft_wrap=True,
        )


@usage_app.command("delete")
def usage_delete(
    user: Annotated[str, typer.Option("--user", help="E-mail of the user whose data to delete.")],
    batch: Annotated[
        str | None,
        typer.Option("--batch", help="Delete this batch only (see `runwire usage batches`)."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete all of the user's usage records.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a user's usage records: one batch (--batch ID) or all of them (--all)."""
    if (batch is None) == (not everything):
        err.print("[red]error:[/red] give either --batch ID or --all", highlight=False)
        raise typer.Exit(2)
    settings = _settings(data_dir)

    async def work(store: Store) -> int:
        user_id = await _user_id(store, user)
        return await Workload(store.usage, PricingTable.load()).delete(user_id, batch)

    deleted = _run(settings, work)
    what = f"batch {batch}" if batch else "all usage data"
    out.print(f"deleted {deleted} records ({what} of {user})", highlight=False)


def main() -> None:
    app()
