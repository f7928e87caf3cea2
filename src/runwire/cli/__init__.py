"""The ``runwire`` command line: serve, migrate, doctor, check a deployment from outside, manage
users, import usage data.

Each command is a module of this package; each imports the rest of what it needs when it runs:
`runwire check`, a client, starts without loading the server (its database layer alone takes a
second to import).
"""

from __future__ import annotations

import typer

from runwire.cli.auth import auth_app
from runwire.cli.check import check
from runwire.cli.doctor import doctor, migrate
from runwire.cli.serve import serve
from runwire.cli.usage import usage_app
from runwire.cli.users import user_app

__all__ = ["app", "main"]

# Plain help, not rich's: rich markup eats every "[...]" of a help text, and its panels show a
# "<bool>" value after a flag, which takes none. Sub-apps inherit the mode.
app = typer.Typer(
    help="runwire: multi-user, real-time AI agent chat.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(user_app, name="user")
app.add_typer(usage_app, name="usage")
app.add_typer(auth_app, name="auth")
app.command()(serve)
app.command()(migrate)
app.command()(doctor)
app.command()(check)


def main() -> None:
    """The console script ``runwire`` (and ``python -m runwire``)."""
    app()
