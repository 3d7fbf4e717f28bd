"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 19:58:20.848188
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifact",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact")),
        sa.UniqueConstraint("name", name=op.f("uq_artifact_name")),
    )
    op.create_table(
        "pipeline",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline")),
        sa.UniqueConstraint("name", name=op.f("uq_pipeline_name")),
    )
    op.create_table(
        "artifact_version",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("artifact_id", sa.String(length=32), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("data_type", sa.String(length=255), nullable=False),
        sa.Column("materializer", sa.String(length=255), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("producer_step_run_id", sa.String(length=32), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifact.id"],
            name=op.f("fk_artifact_version_artifact_id_artifact"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_version")),
    )
    with op.batch_alter_table("artifact_version", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_artifact_version_artifact_id"), ["artifact_id"], unique=False
        )

    op.create_table(
        "pipeline_snapshot",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("is_dynamic", sa.Boolean(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipeline.id"],
            name=op.f("fk_pipeline_snapshot_pipeline_id_pipeline"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_snapshot")),
    )
    with op.batch_alter_table("pipeline_snapshot", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_snapshot_pipeline_id"), ["pipeline_id"], unique=False
        )

    op.create_table(
        "pipeline_run",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("pipeline_id", sa.String(length=32), nullable=False),
        sa.Column("snapshot_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("orchestrator", sa.String(length=64), nullable=False),
        sa.Column("orchestrator_run_id", sa.String(length=255), nullable=True),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("heartbeat", sa.Float(), nullable=True),
        sa.Column("failed_step", sa.String(length=255), nullable=True),
        sa.Column("exception_type", sa.String(length=255), nullable=True),
        sa.Column("exception_message", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("output_structure", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipeline.id"],
            name=op.f("fk_pipeline_run_pipeline_id_pipeline"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["pipeline_snapshot.id"],
            name=op.f("fk_pipeline_run_snapshot_id_pipeline_snapshot"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_run")),
        sa.UniqueConstraint("name", name=op.f("uq_pipeline_run_name")),
    )
    with op.batch_alter_table("pipeline_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_pipeline_run_pipeline_id_created"),
            ["pipeline_id", "created"],
            unique=False,
        )

    op.create_table(
        "pipeline_run_output",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("artifact_version_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_version_id"],
            ["artifact_version.id"],
            name=op.f("fk_pipeline_run_output_artifact_version_id_artifact_version"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_pipeline_run_output_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "position", name=op.f("pk_pipeline_run_output")),
    )
    op.create_table(
        "step_run",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("step_name", sa.String(length=255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.DateTime(), nullable=True),
        sa.Column("end_time", sa.DateTime(), nullable=True),
        sa.Column("cache_key", sa.String(length=64), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("original_step_run_id", sa.String(length=32), nullable=True),
        sa.Column("exception_type", sa.String(length=255), nullable=True),
        sa.Column("exception_message", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("run_metadata", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_step_run_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_run")),
        sa.UniqueConstraint(
            "run_id", "name", "attempt", name=op.f("uq_step_run_run_id_name_attempt")
        ),
    )
    with op.batch_alter_table("step_run", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_step_run_cache_key_status"), ["cache_key", "status"], unique=False
        )

    op.create_table(
        "step_configuration",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("step_name", sa.String(length=255), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=32), nullable=True),
        sa.Column("step_run_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "(snapshot_id IS NULL) <> (step_run_id IS NULL)",
            name=op.f("ck_step_configuration_snapshot_xor_step_run"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["pipeline_snapshot.id"],
            name=op.f("fk_step_configuration_snapshot_id_pipeline_snapshot"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_run.id"],
            name=op.f("fk_step_configuration_step_run_id_step_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_configuration")),
    )
    with op.batch_alter_table("step_configuration", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_step_configuration_snapshot_id"), ["snapshot_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_step_configuration_step_run_id"), ["step_run_id"], unique=False
        )

    op.create_table(
        "step_run_input_artifact",
        sa.Column("step_run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("artifact_version_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_version_id"],
            ["artifact_version.id"],
            name=op.f("fk_step_run_input_artifact_artifact_version_id_artifact_version"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_run.id"],
            name=op.f("fk_step_run_input_artifact_step_run_id_step_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_run_id", "name", name=op.f("pk_step_run_input_artifact")),
    )
    op.create_table(
        "step_run_output_artifact",
        sa.Column("step_run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("artifact_version_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_version_id"],
            ["artifact_version.id"],
            name=op.f("fk_step_run_output_artifact_artifact_version_id_artifact_version"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["step_run_id"],
            ["step_run.id"],
            name=op.f("fk_step_run_output_artifact_step_run_id_step_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_run_id", "name", name=op.f("pk_step_run_output_artifact")),
    )
    with op.batch_alter_table("step_run_output_artifact", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_step_run_output_artifact_artifact_version_id"),
            ["artifact_version_id"],
            unique=False,
        )

    op.create_table(
        "step_run_parent",
        sa.Column("child_id", sa.String(length=32), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["step_run.id"],
            name=op.f("fk_step_run_parent_child_id_step_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["step_run.id"],
            name=op.f("fk_step_run_parent_parent_id_step_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("child_id", "parent_id", name=op.f("pk_step_run_parent")),
    )


def downgrade() -> None:
    op.drop_table("step_run_parent")
    with op.batch_alter_table("step_run_output_artifact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_run_output_artifact_artifact_version_id"))

    op.drop_table("step_run_output_artifact")
    op.drop_table("step_run_input_artifact")
    with op.batch_alter_table("step_configuration", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_configuration_step_run_id"))
        batch_op.drop_index(batch_op.f("ix_step_configuration_snapshot_id"))

    op.drop_table("step_configuration")
    with op.batch_alter_table("step_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_step_run_cache_key_status"))

    op.drop_table("step_run")
    op.drop_table("pipeline_run_output")
    with op.batch_alter_table("pipeline_run", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_run_pipeline_id_created"))

    op.drop_table("pipeline_run")
    with op.batch_alter_table("pipeline_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pipeline_snapshot_pipeline_id"))

    op.drop_table("pipeline_snapshot")
    with op.batch_alter_table("artifact_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_artifact_version_artifact_id"))

    op.drop_table("artifact_version")
    op.drop_table("pipeline")
    op.drop_table("artifact")
