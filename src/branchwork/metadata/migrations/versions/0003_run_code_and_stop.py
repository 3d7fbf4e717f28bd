"""where a run's code lives, stop requests, rebuildable exceptions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_snapshot") as batch:
        batch.add_column(sa.Column("import_path", sa.Text(), nullable=True))
        batch.add_column(sa.Column("working_dir", sa.Text(), nullable=True))
    with op.batch_alter_table("pipeline_run") as batch:
        batch.add_column(sa.Column("stop_requested", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("exception_data", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pipeline_run") as batch:
        batch.drop_column("exception_data")
        batch.drop_column("stop_requested")
    with op.batch_alter_table("pipeline_snapshot") as batch:
        batch.drop_column("working_dir")
        batch.drop_column("import_path")
