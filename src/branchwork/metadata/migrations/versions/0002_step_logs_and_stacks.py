"""step logs and stacks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 20:39:27.256522
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "setting",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_setting")),
    )
    op.create_table(
        "stack_component",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("flavor", sa.String(length=64), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stack_component")),
        sa.UniqueConstraint("kind", "name", name=op.f("uq_stack_component_kind_name")),
    )
    op.create_table(
        "stack",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("orchestrator_id", sa.String(length=32), nullable=False),
        sa.Column("artifact_store_id", sa.String(length=32), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_store_id"],
            ["stack_component.id"],
            name=op.f("fk_stack_artifact_store_id_stack_component"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["orchestrator_id"],
            ["stack_component.id"],
            name=op.f("fk_stack_orchestrator_id_stack_component"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stack")),
        sa.UniqueConstraint("name", name=op.f("uq_stack_name")),
    )
    op.create_table(
        "step_log",
        sa.Column("step_run_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_run.id"],
            name=op.f("fk_step_log_step_run_id_step_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_run_id", name=op.f("pk_step_log")),
    )


def downgrade() -> None:
    op.drop_table("step_log")
    op.drop_table("stack")
    op.drop_table("stack_component")
    op.drop_table("setting")
