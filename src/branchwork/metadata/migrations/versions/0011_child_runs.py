"""child runs: the run and the invocation that started a run of a nested pipeline

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 10:00:00.000000

A pipeline called inside a running pipeline runs as a child run, linked to its parent run and
to the invocation of the parent that called it (`pipelines.nesting`). Nullable columns and an
index, added in place on SQLite (no rebuild of `pipeline_run`, whose rebuild would delete step
runs by ON DELETE CASCADE). Runs recorded before are top-level runs: NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_run", sa.Column("parent_run_id", sa.String(length=32), nullable=True))
    op.add_column(
        "pipeline_run", sa.Column("parent_invocation_id", sa.String(length=255), nullable=True)
    )
    op.create_index("ix_pipeline_run_parent_run_id", "pipeline_run", ["parent_run_id"])


def downgrade() -> None:
    # Plain DROP INDEX / DROP COLUMN (SQLite 3.35+), not a batch rebuild: see the docstring.
    op.drop_index("ix_pipeline_run_parent_run_id", table_name="pipeline_run")
    op.drop_column("pipeline_run", "parent_invocation_id")
    op.drop_column("pipeline_run", "parent_run_id")
