"""indexes for run dispatch across nodes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 12:00:00.000000
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nodes look for queued and running runs every few seconds, and claim a run by checking the
    # unfinished runs of its thread: these must stay index lookups however many runs have ended.
    op.create_index("ix_runs_status_created", "runs", ["status", "created_at"], unique=False)
    op.create_index("ix_runs_thread_created", "runs", ["thread_id", "created_at"], unique=False)
    # A message is accepted after counting its user's unfinished runs (the cap, the thread).
    op.create_index("ix_runs_user_status", "runs", ["user_id", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_runs_user_status", table_name="runs")
    op.drop_index("ix_runs_thread_created", table_name="runs")
    op.drop_index("ix_runs_status_created", table_name="runs")
