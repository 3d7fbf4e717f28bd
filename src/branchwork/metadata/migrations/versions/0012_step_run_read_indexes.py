"""step run read indexes: what reading a run of a million step runs grouped needs

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 10:00:00.000000

Four indexes on `step_run` (see `schema` and `seconds`): a run's later attempts (run,
attempt); counts by state and duration percentiles (run, status, step name, and the seconds
from start to end, an expression: SQLite's and PostgreSQL's SQL for it differ, as in
`seconds.seconds_between`); when a step name first started and last ended (run, step name,
start time / end time). Indexes only: nothing is rebuilt, no row changes. Building them reads
every step run once (about half a minute for a million on a small machine).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SECONDS_INDEX = "ix_step_run_run_id_status_step_name_seconds"
SECONDS = {  # frozen copies of what `seconds.seconds_between` renders
    "sqlite": "round((julianday(substr(end_time, 1, 19)) - julianday(substr(start_time, 1, 19)))"
    " * 86400.0) + (CAST(substr(end_time, 20) AS REAL) - CAST(substr(start_time, 20) AS REAL))",
    "postgresql": "EXTRACT(epoch FROM end_time - start_time)",
}
COLUMN_INDEXES = {
    "ix_step_run_run_id_attempt": ["run_id", "attempt"],
    "ix_step_run_run_id_step_name_start_time": ["run_id", "step_name", "start_time"],
    "ix_step_run_run_id_step_name_end_time": ["run_id", "step_name", "end_time"],
}


def upgrade() -> None:
    for name, columns in COLUMN_INDEXES.items():
        op.create_index(name, "step_run", columns)
    seconds = SECONDS.get(op.get_bind().dialect.name, SECONDS["postgresql"])
    op.create_index(SECONDS_INDEX, "step_run", ["run_id", "status", "step_name", sa.text(seconds)])


def downgrade() -> None:
    op.drop_index(SECONDS_INDEX, table_name="step_run")
    for name in reversed(COLUMN_INDEXES):
        op.drop_index(name, table_name="step_run")
