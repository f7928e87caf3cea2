"""What every ``runwire`` command shares: its two consoles, its settings (the files and
environment, with the command's options over them), and its work against the store, with a
failure shown as one line and an exit code rather than a traceback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

# The settings are read at import: every option's help names its variable and default.
from runwire.config import Settings
from runwire.errors import ConfigError, RunwireError

if TYPE_CHECKING:
    from runwire.store.store import Store

__all__ = ["DataDir", "err", "out", "run_on_store", "setting_help", "settings_of"]

# Lines are never broken at the console's width (80 columns where the output is not a
# terminal): a message that a script greps for, or an id in it, stays on one line.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


def setting_help(text: str, name: str) -> str:
    """``text`` and the setting the option overrides, shown as typer shows its own: the option's
    default is None (the setting decides), so the setting's variable and default are named here."""
    variable = f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
    return f"{text} [env var: {variable}; default: {Settings.model_fields[name].default}]"


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help=setting_help("Where SQLite and the signing keys live.", "data_dir")
    ),
]


def settings_of(data_dir: Path | None = None, **extra: Any) -> Settings:
    """The settings with the options given (those not None) over them; a setting that is not
    valid is shown and ends the command (exit code 2)."""
    from runwire.config import load_settings

    overrides = {k: v for k, v in extra.items() if v is not None}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]{escape(exc.message)}[/red]", highlight=False)
        raise typer.Exit(2) from None


def run_on_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Run ``work`` against the store the settings name; a :class:`RunwireError` it raises is
    shown and ends the command (exit code 1)."""
    from runwire.store.store import Store

    async def main() -> T:
        async with Store.open(
            settings.effective_database_url, migrate=settings.migrate_on_start
        ) as store:
            return await work(store)

    try:
        return asyncio.run(main())
    except RunwireError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False)
        raise typer.Exit(1) from None
