"""replays and waits: the run a replay replays, and the questions runs ask with `wait`

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:00:00.000000

`pipeline_run.replay_of` is added in place on SQLite (no rebuild of `pipeline_run`, whose
rebuild would delete step runs by ON DELETE CASCADE); `run_wait` is a new table. A run's
new status, `paused`, fits the existing status column.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_run", sa.Column("replay_of", sa.String(length=32), nullable=True))
    op.create_table(
        "run_wait",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("wait_id", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer_schema", sa.Text(), nullable=True),
        sa.Column("timeout", sa.Float(), nullable=True),
        sa.Column("default_value", sa.Text(), nullable=True),
        sa.Column("asked", sa.DateTime(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered", sa.DateTime(), nullable=True),
        sa.Column("answered_by", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_run_wait_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "wait_id", name=op.f("pk_run_wait")),
    )


def downgrade() -> None:
    op.drop_table("run_wait")
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild: see the module docstring.
    op.drop_column("pipeline_run", "replay_of")
