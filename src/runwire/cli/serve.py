"""``runwire serve``: the server, on uvicorn with runwire's own HTTP and WebSocket protocols."""

from __future__ import annotations

import asyncio
import logging
import logging.config
from typing import Annotated, Any

import typer
from rich.markup import escape

from runwire.cli.terminal import DataDir, err, out, setting_help, settings_of
from runwire.config import Settings
from runwire.errors import ConfigError

__all__ = ["serve", "server_options"]


def serve(
    host: Annotated[
        str | None, typer.Option(help=setting_help("Interface to listen on.", "host"))
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=setting_help("Port to listen on.", "port"))
    ] = None,
    data_dir: DataDir = None,
    role: Annotated[
        str | None,
        typer.Option(
            help=setting_help(
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
    from runwire.cli.auth_checks import issuer_problems, service_client_problems
    from runwire.cli.collector import tune_collector
    from runwire.config import LogFormat, Role
    from runwire.telemetry.logs import logging_config
    from runwire.telemetry.traces import Tracing

    settings = settings_of(data_dir, host=host, port=port, role=role)
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
        # `serve` has configured logging (runwire.telemetry.logs): uvicorn leaves it as it is.
        "log_config": None,
    }
