"""inline artifacts: small outputs stored in the metadata store

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 00:10:00.000000

A step output whose materializer writes one file of at most `INLINE_LIMIT` bytes (an int, a
short string or list) is kept in its artifact version row, not as a file of its own: a file and
a folder per output cost a `mkdir` and a write per step and a few KB of disk each. Its URI is
`inline://<content hash>/<file name>`. A nullable column, added in place on SQLite (no rebuild
of `artifact_version`, whose rebuild would delete its links by ON DELETE CASCADE).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("artifact_version", sa.Column("inline_data", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild: see the module docstring. Rows
    # whose value lived only in this column lose it: a downgrade refuses while there are any.
    bind = op.get_bind()
    inline = bind.execute(
        sa.text("SELECT COUNT(*) FROM artifact_version WHERE inline_data IS NOT NULL")
    ).scalar()
    if inline:
        raise RuntimeError(
            f"{inline} artifact versions are stored inline in the metadata store (small step "
            "outputs, since revision 0013); downgrading would lose their values."
        )
    op.drop_column("artifact_version", "inline_data")
