"""snapshot argv: the command-line arguments of the script that started a run

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02 07:45:00.000000

A script that parses its arguments at import (`ARGS = parser.parse_args()`) was imported
again elsewhere (an orchestration process, a resume) with that process's arguments: it took
its defaults, silently, or exited. Each snapshot now records the arguments (JSON), which
`user_code.load_source` hands to the script again; snapshots recorded before (null) have none.
Added in place (a nullable column); the downgrade drops it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_snapshot", sa.Column("argv", sa.Text(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild, as in 0011.
    op.drop_column("pipeline_snapshot", "argv")
