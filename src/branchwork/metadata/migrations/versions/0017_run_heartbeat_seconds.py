"""run heartbeat seconds: a run is lost by its own loop's heartbeat interval

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 01:30:00.000000

A run read as lost once its heartbeat was older than six heartbeats of the *reader's*
interval (`BRANCHWORK_HEARTBEAT_SECONDS`): a loop told to heartbeat every 60 s was reaped,
alive, by any process on the default 5 s. Each run now records its loop's interval, which
the rule uses; runs recorded before (null) keep the reader's. Added in place (a nullable
column); the downgrade drops it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_run", sa.Column("heartbeat_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild, as in 0011.
    op.drop_column("pipeline_run", "heartbeat_seconds")
