"""the tokens and cost a run's model turns took

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 14:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("model_name", sa.String(length=200)),
    ("model_requests", sa.Integer()),
    ("model_prompt_tokens", sa.BigInteger()),
    ("model_completion_tokens", sa.BigInteger()),
    ("model_cost_usd", sa.Float()),
)


def upgrade() -> None:
    # Plain ALTER TABLE, not batch mode (see 0002): a batch rebuild of runs on SQLite would
    # cascade into run_events. Runs answered offline, and those stored before, keep NULLs.
    for name, kind in _COLUMNS:
        op.add_column("runs", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(_COLUMNS):
        op.drop_column("runs", name)
