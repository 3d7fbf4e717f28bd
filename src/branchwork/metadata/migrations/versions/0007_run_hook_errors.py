"""run hook errors: what a pipeline's run-level hooks raised in the run's latest session

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000

A nullable column, added in place on SQLite (no rebuild of `pipeline_run`).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_run", sa.Column("hook_errors", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild of pipeline_run, as in 0008.
    op.drop_column("pipeline_run", "hook_errors")
