"""``runwire auth``: the access-token signing keys on the command line (docs/auth.md).

``rotate-keys`` adds a new signing key: it signs from now on (running servers see it within a
second), the keys before it stay published until every token they signed has expired, and keys
past that are removed. ``keys`` lists the keys and the state of each.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from runwire.config import Settings, SigningAlgorithm, load_settings
from runwire.errors import ConfigError

# Imported by the commands that use them: `runwire` starts without loading the server's auth
# package (and its database layer) for the commands that need neither.
if TYPE_CHECKING:
    from runwire.auth.key_files import KeyDirectory, Loaded

__all__ = ["auth_app"]

auth_app = typer.Typer(help="Manage the keys that sign access tokens.", no_args_is_help=True)

# Lines are never broken at the console's width (80 columns where the output is not a
# terminal): a message that a script greps for, or an id in it, stays on one line.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

KeysDir = Annotated[
    Path | None,
    typer.Option(
        "--keys-dir",
        help="The key directory [env var: RUNWIRE_AUTH_KEYS_DIR; default: DATA_DIR/keys].",
    ),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Where SQLite and the signing keys live. "
        "[env var: RUNWIRE_DATA_DIR; default: .runwire]",
    ),
]


def _settings(data_dir: Path | None, keys_dir: Path | None) -> Settings:
    overrides: dict[str, object] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if keys_dir is not None:
        overrides["auth_keys_dir"] = keys_dir
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        err.print(f"[red]{escape(exc.message)}[/red]", highlight=False)
        raise typer.Exit(2) from None


def _loaded(directory: KeyDirectory) -> Loaded:
    loaded = directory.load()
    if loaded.problems:
        for problem in loaded.problems:
            err.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    return loaded


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


@auth_app.command("rotate-keys")
def rotate_keys(
    algorithm: Annotated[
        SigningAlgorithm | None,
        typer.Option(
            "--algorithm",
            help="The new key's algorithm [env var: RUNWIRE_AUTH_ALGORITHM; default: EdDSA].",
        ),
    ] = None,
    keys_dir: KeysDir = None,
    data_dir: DataDir = None,
) -> None:
    """Add a new signing key; keep the older ones published until their tokens have expired,
    and remove those whose tokens all have. Nobody is logged out."""
    from runwire.auth.key_files import KeyDirectory
    from runwire.auth.keys import KeySet, KeyState, key_lifetime

    settings = _settings(data_dir, keys_dir)
    directory = KeyDirectory(settings.keys_dir)
    loaded = _loaded(directory)
    now = time.time()
    key = directory.add(algorithm or settings.auth_algorithm, now)
    keys = KeySet.of([*loaded.keys.values(), key], key_lifetime(settings.access_token_ttl_s))
    out.print(
        f"new signing key {key.kid} ({key.algorithm.value}) in {directory.path}; running "
        "servers sign with it within a second",
        highlight=False,
        soft_wrap=True,
    )
    for old in keys.keys[1:]:
        retires = keys.retires_at(old)
        assert retires is not None
        if keys.state(old, now) is KeyState.RETIRED:
            directory.remove(old.kid)
            out.print(f"removed {old.kid}: every token it signed has expired", highlight=False)
        else:
            out.print(
                f"{old.kid} verifies the tokens it signed until {_when(retires)}, then retires",
                highlight=False,
                soft_wrap=True,
            )


@auth_app.command("keys")
def list_keys(keys_dir: KeysDir = None, data_dir: DataDir = None) -> None:
    """List the signing keys: id, algorithm, state, when made and when it retires."""
    from runwire.auth.key_files import KeyDirectory
    from runwire.auth.keys import KeySet, key_lifetime

    settings = _settings(data_dir, keys_dir)
    directory = KeyDirectory(settings.keys_dir)
    loaded = _loaded(directory)
    if not loaded.keys:
        out.print(
            f"no keys in {directory.path}: `runwire auth rotate-keys` makes one (a server "
            "outside production makes one at its first start)",
            highlight=False,
            soft_wrap=True,
        )
        return
    keys = KeySet.of(list(loaded.keys.values()), key_lifetime(settings.access_token_ttl_s))
    now = time.time()
    for key in keys.keys:
        state = keys.state(key, now)
        retires = keys.retires_at(key)
        until = "" if retires is None else f"  retires {_when(retires)}"
        out.print(
            f"{key.kid}  {key.algorithm.value:<5}  {state.value:<9}  made {_when(key.public.created_at)}"
            f"{until}",
            highlight=False,
            soft_wrap=True,
        )
