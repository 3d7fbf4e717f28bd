"""artifact item count: how many items a list, array or table output has

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00.000000

`step.map(output)` fans out over a stored output's items without loading it into the
orchestration loop: the count is recorded when the output is saved. A nullable column, added
in place on SQLite (no rebuild of `artifact_version`, whose rebuild would delete its links by
ON DELETE CASCADE). Versions saved before read NULL: mapping over one loads it once instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("artifact_version", sa.Column("item_count", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild: see the module docstring.
    op.drop_column("artifact_version", "item_count")
