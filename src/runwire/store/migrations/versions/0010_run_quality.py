"""the quality gate's verdict on a run's answer

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 15:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("quality_score", sa.Float()),
    ("quality_outcome", sa.String(length=16)),
    ("quality_reasons", sa.Text()),
)


def upgrade() -> None:
    # Plain ALTER TABLE, as 0009 (a batch rebuild of runs on SQLite would cascade into
    # run_events). Runs that ended before the gate, or without an answer, keep NULLs.
    for name, kind in _COLUMNS:
        op.add_column("runs", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("runs", name)
