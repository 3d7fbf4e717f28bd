"""step log run ids: a run's logs found by its id

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 18:00:00.000000

`runs logs RUN` found a run's logs by walking its step runs and looking each one up in
`step_log`: about 1.7 s for a run of a million step runs that logged a few hundred times. Each
log now carries its step run's run id, indexed. Added in place (a nullable column, filled from
the step runs, and an index; no table is rebuilt); the downgrade drops both.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("step_log", sa.Column("run_id", sa.String(length=32), nullable=True))
    op.execute(
        "UPDATE step_log SET run_id = "
        "(SELECT step_run.run_id FROM step_run WHERE step_run.id = step_log.step_run_id)"
    )
    op.create_index("ix_step_log_run_id", "step_log", ["run_id"])


def downgrade() -> None:
    # Plain DROP INDEX / DROP COLUMN (SQLite 3.35+), not a batch rebuild, as in 0011.
    op.drop_index("ix_step_log_run_id", table_name="step_log")
    op.drop_column("step_log", "run_id")
