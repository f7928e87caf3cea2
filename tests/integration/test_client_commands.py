"""``runwire auth clients``, in process, on SQLite and PostgreSQL: a client is made (its secret
printed once, never listed), listed, disabled and deleted; mistakes get one line and exit 1."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from runwire.cli import app


def test_clients_are_made_listed_disabled_and_deleted(tmp_path: Path, database_url: str) -> None:
    env = {
        "RUNWIRE_ENV": "test",
        "RUNWIRE_DATA_DIR": str(tmp_path),
        "RUNWIRE_DATABASE_URL": database_url,
        "COLUMNS": "300",
    }
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str, str]:
        done = runner.invoke(app, ["auth", "clients", *args], env=env)
        return done.exit_code, done.stdout, done.stderr

    assert run("list") == (
        0,
        "no service clients: `runwire auth clients create NAME --scope SCOPE` makes one\n",
        "",
    )
    code, said, _ = run("create", "scheduler", "--scope", "messages:write")
    assert code == 0, said
    found = re.search(r"client_id: (svc_\w+)\nclient_secret: (rwcs_\S+)\n", said)
    assert found is not None, said
    client_id, secret = found[1], found[2]
    assert "shown once" in said

    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "partner.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    code, said, _ = run(
        "create",
        "partner",
        "--scope",
        "messages:write revocations:read",
        "--public-key",
        str(public),
        "--audience",
        "partner-api",
    )
    assert code == 0 and "client_secret" not in said, said
    partner_id = re.search(r"client_id: (svc_\w+)", said)[1]  # type: ignore[index]

    code, listed, _ = run("list")
    assert code == 0 and secret not in listed
    lines = listed.splitlines()
    assert lines[0].startswith(
        f"{client_id}  scheduler  scopes=messages:write  audience=runwire  auth=client_secret"
    )
    assert lines[0].endswith("active")
    assert lines[1].startswith(
        f"{partner_id}  partner  scopes=messages:write revocations:read  audience=partner-api  "
        "auth=private_key_jwt"
    )

    assert run("create", "scheduler", "--scope", "x")[2] == (
        "error: a service client named 'scheduler' exists already\n"
    )
    assert "a scope is 1 to 100 printable ASCII" in run("create", "other", "--scope", 'a"b')[2]
    assert "a client name is" in run("create", "bad name!", "--scope", "x")[2]
    (tmp_path / "junk.pem").write_text("junk")
    code, _, said = run(
        "create", "other", "--scope", "x", "--public-key", str(tmp_path / "junk.pem")
    )
    assert code == 1 and "not a PEM public key" in said
    code, _, said = run("create", "other", "--scope", "x", "--public-key", str(tmp_path / "no.pem"))
    assert code == 1 and "cannot be read" in said

    code, said, _ = run("disable", client_id)
    assert code == 0 and said.startswith(f"disabled {client_id}: it gets no new tokens")
    assert re.search(rf"{client_id} .* disabled \d{{4}}-", run("list")[1])
    code, _, said = run("disable", client_id)
    assert (code, said) == (
        1,
        f"error: no active service client {client_id} (`runwire auth clients list` shows them)\n",
    )
    assert run("delete", client_id)[0] == 0
    assert run("delete", client_id)[0] == 1
    assert client_id not in run("list")[1]
