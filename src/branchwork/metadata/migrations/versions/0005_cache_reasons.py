"""cache reasons: key parts, verdict and reason per step run; code fingerprints; invalidation

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 17:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain default ("0", not sa.false()) lets SQLite add the columns in place, without
    # rebuilding step_run.
    with op.batch_alter_table("step_run") as batch:
        batch.add_column(sa.Column("cache_parts", sa.Text(), nullable=True))
        batch.add_column(sa.Column("cache_verdict", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("cache_reason", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("cache_invalidated", sa.Boolean(), nullable=False, server_default="0")
        )
    op.create_table(
        "code_fingerprint",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_code_fingerprint")),
    )


def downgrade() -> None:
    op.drop_table("code_fingerprint")
    with op.batch_alter_table("step_run") as batch:
        batch.drop_column("cache_invalidated")
        batch.drop_column("cache_reason")
        batch.drop_column("cache_verdict")
        batch.drop_column("cache_parts")
