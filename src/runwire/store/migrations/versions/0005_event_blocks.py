"""run events stored in blocks

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A row may now hold a run's consecutive events from ``seq`` to ``last_seq``; the rows
    # written before (one event each) keep NULL and read as they did.
    op.add_column("run_events", sa.Column("last_seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("run_events") as batch_op:
        batch_op.drop_column("last_seq")
