"""run stack and active time: the stack that started a run, and how long its earlier
sessions ran

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 10:00:00.000000

Both columns are nullable and added in place on SQLite (no rebuild of `pipeline_run`, whose
rebuild would delete step runs by ON DELETE CASCADE). Runs recorded before read NULL: no
stack (readers show the orchestrator's flavor) and no earlier sessions counted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_run", sa.Column("stack", sa.String(length=255), nullable=True))
    op.add_column("pipeline_run", sa.Column("earlier_sessions_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild: see the module docstring.
    op.drop_column("pipeline_run", "earlier_sessions_seconds")
    op.drop_column("pipeline_run", "stack")
