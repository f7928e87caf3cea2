"""users of outside OpenID Connect issuers

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A new table only: ``users`` is not altered (on SQLite that would rebuild the table every
    # other one refers to).
    op.create_table(
        "outside_identities",
        sa.Column("issuer", sa.String(length=2000), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_outside_identities_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("issuer", "subject", name=op.f("pk_outside_identities")),
        sa.UniqueConstraint("user_id", name=op.f("uq_outside_identities_user_id")),
    )


def downgrade() -> None:
    op.drop_table("outside_identities")
