"""run epoch and retention trimming

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE, not batch mode: on SQLite a batch rebuild drops the runs table, and with
    # foreign keys on that would cascade into run_events. Runs stored before this migration get
    # the legacy epoch "0" (an epoch only has to differ from the ones given to the run later).
    op.add_column(
        "runs",
        sa.Column("epoch", sa.String(length=16), server_default="0", nullable=False),
    )
    op.add_column("runs", sa.Column("trimmed_at", sa.BigInteger(), nullable=True))
    op.create_index("ix_runs_ended_at", "runs", ["ended_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_ended_at", table_name="runs")
    op.drop_column("runs", "trimmed_at")
    op.drop_column("runs", "epoch")
