"""artifact versions: numbers per artifact, previews, tags and searchable metadata

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 19:00:00.000000

Existing versions are numbered 1, 2, 3 ... per artifact in the order they were made (created,
then id), and each artifact's `version_count` set to its number of versions.

On SQLite, columns are added in place (ALTER TABLE ADD COLUMN, hence the server defaults)
and the unique (artifact_id, version) is an index: rebuilding `artifact` or
`artifact_version` would drop the old table, and with foreign keys on, that deletes every
row referring to it by ON DELETE CASCADE.
"""

from __future__ import annotations

from itertools import groupby

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

artifact = sa.table("artifact", sa.column("id", sa.String), sa.column("version_count", sa.Integer))
artifact_version = sa.table(
    "artifact_version",
    sa.column("id", sa.String),
    sa.column("artifact_id", sa.String),
    sa.column("created", sa.DateTime),
    sa.column("version", sa.Integer),
)
_BATCH = 1000  # rows numbered per executemany


def upgrade() -> None:
    op.add_column(
        "artifact", sa.Column("version_count", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "artifact_version",
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("artifact_version", sa.Column("preview", sa.Text(), nullable=True))
    _number_existing_versions(op.get_bind())
    op.drop_index(op.f("ix_artifact_version_artifact_id"), table_name="artifact_version")
    op.create_index(
        op.f("ix_artifact_version_artifact_id_version"),
        "artifact_version",
        ["artifact_id", "version"],
        unique=True,
    )
    op.create_table(
        "artifact_version_tag",
        sa.Column("artifact_version_id", sa.String(length=32), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_version_id"],
            ["artifact_version.id"],
            name=op.f("fk_artifact_version_tag_artifact_version_id_artifact_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_version_id", "tag", name=op.f("pk_artifact_version_tag")),
    )
    op.create_index(op.f("ix_artifact_version_tag_tag"), "artifact_version_tag", ["tag"])
    op.create_table(
        "artifact_version_metadata",
        sa.Column("artifact_version_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_version_id"],
            ["artifact_version.id"],
            name=op.f("fk_artifact_version_metadata_artifact_version_id_artifact_version"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "artifact_version_id", "key", name=op.f("pk_artifact_version_metadata")
        ),
    )
    op.create_index(op.f("ix_artifact_version_metadata_key"), "artifact_version_metadata", ["key"])


def _number_existing_versions(conn: sa.Connection) -> None:
    """Versions 1..n per artifact by (created, id); version_count = n."""
    rows = conn.execute(
        sa.select(artifact_version.c.id, artifact_version.c.artifact_id).order_by(
            artifact_version.c.artifact_id, artifact_version.c.created, artifact_version.c.id
        )
    ).all()
    numbers: list[dict[str, object]] = []
    counts: list[dict[str, object]] = []
    for artifact_id, versions in groupby(rows, key=lambda row: row.artifact_id):
        ids = [row.id for row in versions]
        numbers.extend({"b_id": id_, "b_version": n} for n, id_ in enumerate(ids, start=1))
        counts.append({"b_id": artifact_id, "b_count": len(ids)})
    _update(conn, artifact_version, {"version": sa.bindparam("b_version")}, numbers)
    _update(conn, artifact, {"version_count": sa.bindparam("b_count")}, counts)


def _update(
    conn: sa.Connection,
    table: sa.TableClause,
    values: dict[str, sa.BindParameter[int]],
    rows: list[dict[str, object]],
) -> None:
    statement = table.update().where(table.c.id == sa.bindparam("b_id")).values(values)
    for start in range(0, len(rows), _BATCH):
        conn.execute(statement, rows[start : start + _BATCH])


def downgrade() -> None:
    op.drop_index(op.f("ix_artifact_version_metadata_key"), table_name="artifact_version_metadata")
    op.drop_table("artifact_version_metadata")
    op.drop_index(op.f("ix_artifact_version_tag_tag"), table_name="artifact_version_tag")
    op.drop_table("artifact_version_tag")
    op.drop_index(op.f("ix_artifact_version_artifact_id_version"), table_name="artifact_version")
    op.create_index(
        op.f("ix_artifact_version_artifact_id"), "artifact_version", ["artifact_id"], unique=False
    )
    # Plain DROP COLUMN (SQLite 3.35+), not a batch rebuild: see the module docstring.
    op.drop_column("artifact_version", "preview")
    op.drop_column("artifact_version", "version")
    op.drop_column("artifact", "version_count")
