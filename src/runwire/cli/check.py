"""``runwire check``: the golden path of a deployment walked from outside (runwire.probe), once
or as a monitor. It imports the probe when it runs, and never the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated

import typer

from runwire.cli.terminal import err, out

if TYPE_CHECKING:
    from runwire.probe.client import Target
    from runwire.probe.report import Report
    from runwire.probe.sessions import Identities

__all__ = ["check", "refusal"]


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

    why = refusal(
        email=email,
        password=password,
        test_token_key=test_token_key,
        token=token,
        other_token=other_token,
        every=every,
        metrics_port=metrics_port,
        count=count,
    )
    if why is not None:
        raise usage(why)
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


def refusal(
    *,
    email: str | None,
    password: str | None,
    test_token_key: str | None,
    token: str | None,
    other_token: str | None,
    every: float | None,
    metrics_port: int | None,
    count: int | None,
) -> str | None:
    """Why ``runwire check``'s options do not go together, in the line it shows; None when they
    do."""
    if (email is None) != (password is None):
        return "give --email and --password together (or neither, to sign up a user)"
    if test_token_key is not None and email is not None:
        return "give --email and --password, or --test-token-key: not both"
    if token is not None and (email is not None or test_token_key is not None):
        return "give --token, or --email and --password, or --test-token-key: one of them"
    if other_token is not None and token is None:
        return "--other-token goes with --token"
    if every is None and (metrics_port is not None or count is not None):
        return "--metrics-port and --count go with --every"
    return None


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
    from runwire.probe.report import Outcome
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
