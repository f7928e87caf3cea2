"""usage records in batches, with a key per record

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 06:00:00.000000
"""

import hashlib
import time
import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_KEYED = (
    "timestamp",
    "provider",
    "model",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "status",
    "prompt_hash",
    "feature",
)
_SLICE = 1000


def upgrade() -> None:
    op.create_table(
        "usage_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_usage_batches_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_batches")),
    )
    op.create_index(
        "ix_usage_batches_user_created", "usage_batches", ["user_id", "created_at"], unique=False
    )
    op.add_column("usage_records", sa.Column("batch_id", sa.String(length=40), nullable=True))
    op.add_column("usage_records", sa.Column("record_key", sa.String(length=64), nullable=True))
    _fill(op.get_bind())
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.alter_column("batch_id", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("record_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_usage_records_batch_id_usage_batches"),
            "usage_batches",
            ["batch_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_usage_records_batch_id"), ["batch_id"], unique=False)
        batch_op.create_unique_constraint(
            "uq_usage_records_user_ts_key", ["user_id", "timestamp", "record_key"]
        )
        # The unique index leads with the same two columns: this one would only cost writes.
        batch_op.drop_index("ix_usage_records_user_ts")


def _fill(conn: Any) -> None:
    """Each user's records so far become one batch ("earlier"), and every record gets its key.

    The key is store/record_keys.py's ``RecordKeys``, frozen here: a hash of the record's content and
    of how many equal records of the same user came before it (by insertion order). Records
    stored twice (the sample loaded twice the same day, a file imported twice) are therefore
    kept, under keys #0 and #1, and a later import of the same file adds nothing.
    """
    records = sa.table(
        "usage_records",
        sa.column("pk"),
        sa.column("user_id"),
        sa.column("batch_id"),
        sa.column("record_key"),
        *(sa.column(name) for name in _KEYED),
    )
    batches = sa.table(
        "usage_batches",
        sa.column("id"),
        sa.column("user_id"),
        sa.column("source"),
        sa.column("name"),
        sa.column("created_at"),
    )
    users = [row[0] for row in conn.execute(sa.select(records.c.user_id).distinct())]
    created = int(time.time() * 1000)
    for user_id in users:
        batch_id = f"imp_{uuid.uuid4().hex}"
        conn.execute(
            batches.insert().values(
                id=batch_id, user_id=user_id, source="earlier", name=None, created_at=created
            )
        )
        conn.execute(records.update().where(records.c.user_id == user_id).values(batch_id=batch_id))
        seen: dict[bytes, int] = {}
        update = (
            records.update()
            .where(records.c.pk == sa.bindparam("row_pk"))
            .values(record_key=sa.bindparam("key"))
        )
        keyed: list[dict[str, Any]] = []
        rows = conn.execute(
            sa.select(records.c.pk, *(records.c[name] for name in _KEYED))
            .where(records.c.user_id == user_id)
            .order_by(records.c.pk)
        ).fetchall()
        for pk, *values in rows:
            values[5] = float(values[5])  # latency_ms
            content = orjson.dumps(values)
            count = seen.get(content, 0)
            seen[content] = count + 1
            keyed.append(
                {"row_pk": pk, "key": hashlib.sha256(content + b"#%d" % count).hexdigest()}
            )
            if len(keyed) == _SLICE:
                conn.execute(update, keyed)
                keyed = []
        if keyed:
            conn.execute(update, keyed)


def downgrade() -> None:
    with op.batch_alter_table("usage_records") as batch_op:
        batch_op.create_index("ix_usage_records_user_ts", ["user_id", "timestamp"], unique=False)
        batch_op.drop_constraint("uq_usage_records_user_ts_key", type_="unique")
        batch_op.drop_index(batch_op.f("ix_usage_records_batch_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_usage_records_batch_id_usage_batches"), type_="foreignkey"
        )
        batch_op.drop_column("record_key")
        batch_op.drop_column("batch_id")
    op.drop_index("ix_usage_batches_user_created", table_name="usage_batches")
    op.drop_table("usage_batches")
