"""usage summaries, per user and per batch

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 15:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A question reads its user's summary (one row) instead of scanning their records for the
    # aggregates every analysis reads. Batches stored before keep a NULL summary (unknown): their
    # users' questions read the records, as before, until those batches are deleted.
    op.create_table(
        "usage_summaries",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("digest", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_usage_summaries_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_usage_summaries")),
    )
    # Plain ALTER TABLE (see 0002): a batch rebuild of usage_batches would cascade into records.
    op.add_column("usage_batches", sa.Column("summary", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_batches", "summary")
    op.drop_table("usage_summaries")
