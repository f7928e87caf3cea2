"""a version per user's usage data

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 04:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every run checks that its user's cached usage set is current: counting the user's records
    # did that in time proportional to them; a version bumped by each import does it in one
    # key lookup.
    op.create_table(
        "usage_versions",
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_usage_versions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_usage_versions")),
    )
    op.execute(
        "INSERT INTO usage_versions (user_id, version) "
        "SELECT DISTINCT user_id, 1 FROM usage_records"
    )


def downgrade() -> None:
    op.drop_table("usage_versions")
