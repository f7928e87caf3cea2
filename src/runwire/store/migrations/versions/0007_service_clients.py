"""service clients, their spent assertions, and the revocation feed's index

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 11:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_clients",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("public_key", sa.Text(), nullable=True),
        sa.Column("scopes", sa.String(length=1000), nullable=False),
        sa.Column("audience", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("disabled_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_service_clients_name")),
    )
    op.create_table(
        "client_assertions",
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("jti", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["service_clients.id"],
            name=op.f("fk_client_assertions_client_id_service_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "jti", name=op.f("pk_client_assertions")),
    )
    op.create_index(
        op.f("ix_client_assertions_expires_at"), "client_assertions", ["expires_at"], unique=False
    )
    op.create_index("ix_token_families_revoked_at", "token_families", ["revoked_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_token_families_revoked_at", table_name="token_families")
    op.drop_index(op.f("ix_client_assertions_expires_at"), table_name="client_assertions")
    op.drop_table("client_assertions")
    op.drop_table("service_clients")
