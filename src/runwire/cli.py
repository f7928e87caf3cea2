"""The ``runwire`` command line: serve, migrate, doctor, check a deployment from outside, manage
users, import usage data."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import logging.config
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from runwire.auth_commands import auth_app

# The settings are read at import: every option's help names its variable and default.
from runwire.config import Settings
from runwire.errors import ConfigError, DependencyUnavailable, RunwireError

# Each command imports the rest of what it needs when it runs: `runwire check`, a client, starts
# without loading the server (its database layer alone takes a second to import).
if TYPE_CHECKING:
    from runwire.probe.client import Target
    from runwire.probe.sessions import Identities
    from runwire.readiness import Check
    from runwire.store.store import Store
    from runwire.store.usage import UsageBatch
    from runwire.workload import ImportResult

__all__ = ["app", "main"]

# Plain help, not rich's: rich markup eats every "[...]" of a help text, and its panels show a
# "<bool>" value after a flag, which takes none. Sub-apps inherit the mode.
app = typer.Typer(
    help="runwire: multi-user, real-time AI agent chat.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
usage_app = typer.Typer(
    help="Import, generate, list or delete a user's LLM-usage records.", no_args_is_help=True
)
app.add_typer(user_app, name="user")
app.add_typer(usage_app, name="usage")
app.add_typer(auth_app, name="auth")

# Lines are never broken at the console's width (80 columns where the output is not a
# terminal): a message that a script greps for, or an id in it, stays on one line.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def _setting_help(text: str, name: str) -> str:
    """``text`` and the setting the option overrides, shown as typer shows its own: the option's
    default is None (the setting decides), so the setting's variable and default are named here."""
    variable = f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
    return f"{text} [env var: {variable}; default: {Settings.model_fields[name].default}]"


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help=_setting_help("Where SQLite and the signing keys live.", "data_dir")
    ),
]


def _settings(data_dir: Path | None = None, **extra: Any) -> Settings:
    from runwire.config import load_settings

    overrides = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]{exc.message}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _run(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    from runwire.store.store import Store

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
        str | None, typer.Option(help=_setting_help("Interface to listen on.", "host"))
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=_setting_help("Port to listen on.", "port"))
    ] = None,
    data_dir: DataDir = None,
    role: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "all: one process does everything; auth: /auth/* and the signing keys; "
                "chat: /api/*, /ws and the page, verifying tokens against the auth service's "
                "keys (docs/auth.md).",
                "role",
            )
        ),
    ] = None,
) -> None:
    """Start the server (embedded defaults: SQLite, in-process bus, offline agents)."""
    import uvicorn

    from runwire.app import create_app
    from runwire.auth_checks import issuer_problems, service_client_problems
    from runwire.collector import tune_collector
    from runwire.config import LogFormat, Role
    from runwire.logs import logging_config
    from runwire.traces import Tracing

    settings = _settings(data_dir, host=host, port=port, role=role)
    as_json = settings.log_format is LogFormat.JSON
    trace_id = Tracing.current_trace_id if settings.otlp_endpoint else None
    logging.config.dictConfig(
        logging_config(json=as_json, level=settings.log_level.value, trace_id=trace_id)
    )
    try:
        # Reads (or, outside production, makes) the signing keys: their problems stop it here.
        app = create_app(settings)
        # A chat node's keys are the issuer's: one that cannot be read stops it here too, and
        # so does a service client of its own that the auth service refuses.
        if problems := asyncio.run(issuer_problems(settings)):
            raise ConfigError(problems)
        if problems := asyncio.run(service_client_problems(settings)):
            raise ConfigError(problems)
    except ConfigError as exc:
        err.print(f"[red]{escape(exc.message)}[/red]", highlight=False)
        raise typer.Exit(2) from None
    shown_host = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::") else settings.host  # noqa: S104
    starting = f"runwire is starting: open http://{shown_host}:{settings.port}/"
    if settings.role is Role.AUTH:
        starting = f"runwire (role auth) is starting on http://{shown_host}:{settings.port}/auth"
    elif settings.outside_issuer:
        starting = (
            f"{starting} (role chat; tokens of the outside issuer {settings.expected_issuer})"
        )
    elif settings.role is Role.CHAT:
        starting = f"{starting} (role chat; auth at {settings.auth_client_url})"
    if as_json:  # every line of the output is a JSON object
        logging.getLogger("runwire.cli").info("%s", starting)
    else:
        out.print(starting, highlight=False)
    tune_collector(settings.gc_young_threshold)
    uvicorn.run(app, **server_options(settings))


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for ``runwire serve``, from the settings."""
    from runwire.config import WebSocketPath
    from runwire.transport.http_protocol import RunwireHttpProtocol
    from runwire.transport.ws_coalescing import CoalescingWebSocketProtocol
    from runwire.transport.ws_protocol import RunwireWebSocketProtocol

    return {
        "host": settings.host,
        "port": settings.port,
        "http": RunwireHttpProtocol,
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
        # `serve` has configured logging (runwire.logs): uvicorn leaves it as it is.
        "log_config": None,
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
    from runwire.auth_checks import auth_checks
    from runwire.readiness import LLMProbe

    checks = await _database_checks(settings.effective_database_url)
    checks += await auth_checks(settings)
    if settings.redis_url is not None:
        checks.append(await _redis_check(settings.redis_url.get_secret_value()))
    llm = LLMProbe.configured(settings)
    if llm is not None:
        checks.append(await llm.check())
    return checks


@app.command()
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


@app.command()
def check(
    url: Annotated[
        str, typer.Argument(help="The deployment's base URL, e.g. https://chat.example.com")
    ],
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            envvar="RUNWIRE_CHECK_EMAIL",
            help="Sign in as this user (default: sign up a fresh check-…@example.com user).",
        ),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="RUNWIRE_CHECK_PASSWORD",
            help="The user's password (the environment variable keeps it out of `ps`).",
            show_default=False,
        ),
    ] = None,
    test_token_key: Annotated[
        str | None,
        typer.Option(
            "--test-token-key",
            envvar="RUNWIRE_CHECK_TEST_TOKEN_KEY",
            help="Get two fresh e2e test users from POST /auth/test-token with this key (the "
            "deployment's RUNWIRE_TEST_TOKEN_KEY; staging only) instead of signing up.",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="RUNWIRE_CHECK_TOKEN",
            help="Walk as the user of this access token (e.g. from the outside OpenID Connect "
            "issuer a chat node trusts) instead of signing in; nothing signs it out.",
            show_default=False,
        ),
    ] = None,
    other_token: Annotated[
        str | None,
        typer.Option(
            "--other-token",
            envvar="RUNWIRE_CHECK_OTHER_TOKEN",
            help="With --token: the access token of another user, for the isolation step.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Bound on every single wait, in seconds.")
    ] = 10.0,
    auth_url: Annotated[
        str | None,
        typer.Option(
            "--auth-url",
            help="Where /auth/* lives, when not at URL [default: what URL's GET /api/config "
            "names, else URL].",
        ),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option("--every", min=0.0, help="Monitor: walk again every this many seconds."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port", min=0, max=65535, help="Monitor: serve Prometheus metrics here."
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Monitor: the interface for the metrics.")
    ] = "127.0.0.1",
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Monitor: stop after this many walks.")
    ] = None,
) -> None:
    """Walk the golden path of a deployment as a client: sign in, load sample data, open /ws, send
    a message, check its events, cut and resume, stop a run, isolation, /health and /ready.

    Exit code 0 when every step passed (skipped is fine), 1 when one failed, 2 when the URL cannot
    be reached or does not answer as runwire. With --every it runs until interrupted.
    """
    from runwire.probe.client import Target
    from runwire.probe.sessions import Credentials, Identities

    def usage(message: str) -> typer.Exit:
        err.print(f"runwire check: {message}", highlight=False, markup=False, soft_wrap=True)
        return typer.Exit(2)

    if (email is None) != (password is None):
        raise usage("give --email and --password together (or neither, to sign up a user)")
    if test_token_key is not None and email is not None:
        raise usage("give --email and --password, or --test-token-key: not both")
    if token is not None and (email is not None or test_token_key is not None):
        raise usage("give --token, or --email and --password, or --test-token-key: one of them")
    if other_token is not None and token is None:
        raise usage("--other-token goes with --token")
    if every is None and (metrics_port is not None or count is not None):
        raise usage("--metrics-port and --count go with --every")
    try:
        base = Target.base(url)
        target = Target(base, Target.base(auth_url) if auth_url else base, timeout)
    except ValueError as exc:
        raise usage(str(exc)) from None
    try:
        outcome = asyncio.run(
            _check(
                target,
                Identities(
                    main=Credentials(email, password)
                    if email is not None and password is not None
                    else None,
                    test_token_key=test_token_key,
                    token=token,
                    other_token=other_token,
                ),
                as_json,
                every,
                metrics_port,
                metrics_host,
                count,
            )
        )
    except KeyboardInterrupt:
        err.print("runwire check: interrupted", highlight=False)
        raise typer.Exit(130) from None
    raise typer.Exit(outcome)


async def _check(
    target: Target,
    identities: Identities,
    as_json: bool,
    every: float | None,
    metrics_port: int | None,
    metrics_host: str,
    count: int | None,
) -> int:
    from runwire.probe.monitor import Metrics, Monitor
    from runwire.probe.rendering import as_json as report_json
    from runwire.probe.rendering import summary, table, unreachable_line, walk_line
    from runwire.probe.report import Outcome, Report
    from runwire.probe.walk import Walk

    if target.auth_url == target.url:  # no --auth-url: where the API says /auth/* is
        target = await target.discovered()

    def walk() -> Awaitable[Report]:
        return Walk(target, identities).run()

    if every is None:
        report = await walk()
        if as_json:
            print(report_json(report))
        elif report.outcome is Outcome.UNREACHABLE:
            err.print(unreachable_line(report), highlight=False, markup=False, soft_wrap=True)
        else:
            out.print(table(report))
            out.print(summary(report))
        return int(report.outcome)

    def show(report: Report) -> None:
        line = report_json(report, indent=None) if as_json else walk_line(report)
        print(line, flush=True)

    metrics = Metrics() if metrics_port is not None else None
    monitor = Monitor(walk, every=every, count=count, metrics=metrics)
    if metrics is None:
        return int(await monitor.run(show))
    async with contextlib.AsyncExitStack() as stack:
        try:
            port = await stack.enter_async_context(metrics.served(metrics_host, metrics_port or 0))
        except OSError as exc:
            err.print(
                f"runwire check: cannot serve metrics on {metrics_host}:{metrics_port}: "
                f"{exc.strerror or exc}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
            return 2
        err.print(f"serving metrics on http://{metrics_host}:{port}/metrics", highlight=False)
        return int(await monitor.run(show))


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
    from runwire.auth.passwords import Passwords
    from runwire.auth.service import MIN_PASSWORD, account_email, create_account

    settings = _settings(data_dir)
    try:
        account = account_email(email)  # before the password is asked for
    except RunwireError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    password = _read_password(password_stdin)
    if len(password) < MIN_PASSWORD:
        err.print(f"[red]the password must have at least {MIN_PASSWORD} characters[/red]")
        raise typer.Exit(1)

    async def work(store: Store) -> str:
        # Local administration, not a sign-up: no sign-up limit applies.
        passwords = Passwords(
            time_cost=settings.argon2_time_cost, memory_kib=settings.argon2_memory_kib
        )
        user = await create_account(store.accounts, passwords, account, password)
        return user.id

    user_id = _run(settings, work)
    out.print(f"created user {account} ({user_id})", highlight=False)


def _user_id(store: Store, email: str) -> Awaitable[str]:
    from runwire.auth.service import normalize_email

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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from runwire.usage.pricing import PricingTable
    from runwire.workload import Workload

    settings = _settings(data_dir)
    try:
        kind = Workload.format_of_file(file.name)
    except RunwireError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
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
    from runwire.usage.pricing import PricingTable
    from runwire.workload import Workload

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
    from runwire.store.records import iso_from_ms
    from runwire.usage.pricing import PricingTable
    from runwire.workload import Workload

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
    from runwire.usage.pricing import PricingTable
    from runwire.workload import Workload

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
