"""Alembic environment: runs on the connection that ``Database.migrate`` hands over."""

from alembic import context

from runwire.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - runwire always passes its own connection
    raise RuntimeError("run migrations through `runwire migrate`")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
