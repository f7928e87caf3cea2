"""``runwire auth``: the access-token signing keys and the service clients on the command line
(docs/auth.md).

``rotate-keys`` adds a new signing key: it signs from now on (running servers see it within a
second), the keys before it stay published until every token they signed has expired, and keys
past that are removed. ``keys`` lists the keys and the state of each. ``clients`` registers,
lists, disables and deletes the services that may get service tokens.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from runwire.cli.terminal import DataDir, err, out, run_on_store, settings_of
from runwire.config import SigningAlgorithm

# Imported by the commands that use them: `runwire` starts without loading the server's auth
# package (and its database layer) for the commands that need neither.
if TYPE_CHECKING:
    from runwire.auth.key_files import KeyDirectory, Loaded
    from runwire.store.records import ServiceClient
    from runwire.store.store import Store

__all__ = ["auth_app"]

auth_app = typer.Typer(
    help="Manage the keys that sign access tokens, and the service clients.",
    no_args_is_help=True,
)
clients_app = typer.Typer(
    help="Manage service clients: the services that may get service tokens (client "
    "credentials) at POST /auth/token.",
    no_args_is_help=True,
)
auth_app.add_typer(clients_app, name="clients")

KeysDir = Annotated[
    Path | None,
    typer.Option(
        "--keys-dir",
        help="The key directory [env var: RUNWIRE_AUTH_KEYS_DIR; default: DATA_DIR/keys].",
    ),
]


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

    settings = settings_of(data_dir, auth_keys_dir=keys_dir)
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

    settings = settings_of(data_dir, auth_keys_dir=keys_dir)
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


def _described(client: ServiceClient) -> str:
    state = f"disabled {_when(client.disabled_at / 1000)}" if client.disabled_at else "active"
    return (
        f"{client.id}  {client.name}  scopes={' '.join(client.scopes)}  "
        f"audience={client.audience}  auth={client.auth_method}  "
        f"made {_when(client.created_at / 1000)}  {state}"
    )


@clients_app.command("create")
def create_client(
    name: Annotated[str, typer.Argument(help="A name for the service, e.g. chat-node.")],
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope",
            help="A scope it may have (repeat for several): messages:write (post messages on "
            "users' behalf), revocations:read (chat nodes without Redis).",
        ),
    ],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help="A PEM public key (Ed25519, P-256 or RSA): the client then proves itself with "
            "assertions signed by its private key (private_key_jwt) and gets no secret.",
        ),
    ] = None,
    audience: Annotated[
        str | None,
        typer.Option(
            "--audience",
            help="The aud of its tokens [default: RUNWIRE_AUTH_AUDIENCE, runwire's own APIs].",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Register a service client; a secret is printed once (keep it: only its hash is stored)."""
    from runwire.auth.client_credentials import register_client

    pem = None
    if public_key is not None:
        try:
            pem = public_key.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            err.print(
                f"[red]error:[/red] {escape(str(public_key))} cannot be read: {escape(str(exc))}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    settings = settings_of(data_dir)

    async def work(store: Store) -> tuple[ServiceClient, str | None]:
        return await register_client(
            store.clients,
            name,
            [part for item in scope for part in item.split()],
            audience=audience or settings.auth_audience,
            public_key=pem,
        )

    client, secret = run_on_store(settings, work)
    out.print(f"client_id: {client.id}", highlight=False)
    if secret is not None:
        out.print(f"client_secret: {secret}", highlight=False)
        out.print(
            "The secret is shown once and stored only as a hash: put it where the service "
            "reads it (e.g. RUNWIRE_SERVICE_CLIENT_SECRET).",
            highlight=False,
            soft_wrap=True,
        )
    out.print(escape(_described(client)), highlight=False, soft_wrap=True)


@clients_app.command("list")
def list_clients(data_dir: DataDir = None) -> None:
    """List the service clients (never their secrets)."""

    async def work(store: Store) -> list[ServiceClient]:
        return await store.clients.all()

    found = run_on_store(settings_of(data_dir), work)
    if not found:
        out.print(
            "no service clients: `runwire auth clients create NAME --scope SCOPE` makes one",
            highlight=False,
            soft_wrap=True,
        )
    for client in found:
        out.print(escape(_described(client)), highlight=False, soft_wrap=True)


def _change(client_id: str, data_dir: Path | None, *, delete: bool) -> None:
    async def work(store: Store) -> bool:
        if delete:
            return await store.clients.remove(client_id)
        return await store.clients.disable(client_id)

    if not run_on_store(settings_of(data_dir), work):
        err.print(
            f"[red]error:[/red] no {'' if delete else 'active '}service client {escape(client_id)}"
            " (`runwire auth clients list` shows them)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1)
    out.print(
        f"{'deleted' if delete else 'disabled'} {client_id}: it gets no new tokens; those it has "
        "expire within RUNWIRE_SERVICE_TOKEN_TTL_S",
        highlight=False,
        soft_wrap=True,
    )


ClientId = Annotated[str, typer.Argument(help="The client id (svc_...).")]


@clients_app.command("disable")
def disable_client(client_id: ClientId, data_dir: DataDir = None) -> None:
    """Refuse a client new tokens, keeping its record."""
    _change(client_id, data_dir, delete=False)


@clients_app.command("delete")
def delete_client(client_id: ClientId, data_dir: DataDir = None) -> None:
    """Delete a client: it gets no new tokens."""
    _change(client_id, data_dir, delete=True)
