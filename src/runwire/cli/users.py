"""``runwire user``: users managed on the command line."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from runwire.cli.terminal import DataDir, err, out, run_on_store, settings_of
from runwire.errors import RunwireError

if TYPE_CHECKING:
    from runwire.store.store import Store

__all__ = ["user_app", "user_id_of"]

user_app = typer.Typer(help="Manage users.", no_args_is_help=True)


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

    settings = settings_of(data_dir)
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

    user_id = run_on_store(settings, work)
    out.print(f"created user {account} ({user_id})", highlight=False)


def user_id_of(store: Store, email: str) -> Awaitable[str]:
    """The id of the user of ``email``; :class:`RunwireError` naming the command that creates
    one when there is none."""
    from runwire.auth.service import normalize_email

    async def find() -> str:
        user = await store.accounts.user_by_email(normalize_email(email))
        if user is None:
            raise RunwireError(f"no user {email}; create one with `runwire user create {email}`")
        return user.id

    return find()
