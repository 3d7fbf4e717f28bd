"""run summaries: a big run's figures per step name, kept when it ends

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 17:00:00.000000

Reading a finished run of a million step runs grouped by step name walked its indexes (counts
by state, duration percentiles: about half a second); a run that recorded many step runs now
keeps those figures in one row of `run_summary` when it ends (`metadata.run_figures`). A new
table: runs recorded before are read from their step runs, as they were. The downgrade drops
the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_summary",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_run_summary_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_summary")),
    )


def downgrade() -> None:
    op.drop_table("run_summary")
