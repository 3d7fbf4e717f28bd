"""the built-in default stack as rows; indexes for deleting runs by cascade

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 16:00:00.000000

The "default" orchestrator (flavor local, no settings), the "default" artifact store (flavor
local, `{"path": null}`: the branchwork home's artifacts folder, resolved when used, so it
follows the home), the "default" stack of the two, and the "active_stack" setting naming it
unless another stack is active. A store at 0003 may already hold default component rows
(made when a stack first used one, config "{}"); those are kept, with the marker config.

Deleting a run now relies on ON DELETE CASCADE, so the columns referring to step runs and
artifact versions that had no index get one (see `schema`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEFAULT = "default"
COMPONENTS = {"orchestrator": {}, "artifact_store": {"path": None}}

stack_component = sa.table(
    "stack_component",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("kind", sa.String),
    sa.column("flavor", sa.String),
    sa.column("config", sa.Text),
    sa.column("created", sa.DateTime),
)
stack = sa.table(
    "stack",
    sa.column("id", sa.String),
    sa.column("name", sa.String),
    sa.column("orchestrator_id", sa.String),
    sa.column("artifact_store_id", sa.String),
    sa.column("created", sa.DateTime),
)
setting = sa.table("setting", sa.column("key", sa.String), sa.column("value", sa.Text))
INDEXES = {
    "step_run_parent": "parent_id",
    "step_run_input_artifact": "artifact_version_id",
    "pipeline_run_output": "artifact_version_id",
}


def _default_component(kind: str) -> sa.ColumnElement[bool]:
    return sa.and_(stack_component.c.kind == kind, stack_component.c.name == DEFAULT)


def upgrade() -> None:
    for table, column in INDEXES.items():
        op.create_index(op.f(f"ix_{table}_{column}"), table, [column], unique=False)
    _seed_default_stack(op.get_bind())


def _seed_default_stack(conn: sa.Connection) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)  # naive UTC, as the store keeps it
    ids: dict[str, str] = {}
    for kind, config in COMPONENTS.items():
        where = _default_component(kind)
        found = conn.execute(sa.select(stack_component.c.id).where(where)).scalar()
        if found is None:
            found = uuid.uuid4().hex
            row = {"id": found, "name": DEFAULT, "kind": kind, "flavor": "local", "created": now}
            conn.execute(stack_component.insert().values(**row, config=json.dumps(config)))
        else:
            conn.execute(stack_component.update().where(where).values(config=json.dumps(config)))
        ids[kind] = found
    conn.execute(
        stack.insert().values(
            id=uuid.uuid4().hex,
            name=DEFAULT,
            orchestrator_id=ids["orchestrator"],
            artifact_store_id=ids["artifact_store"],
            created=now,
        )
    )
    active = conn.execute(sa.select(setting.c.value).where(setting.c.key == "active_stack"))
    if active.scalar() is None:
        conn.execute(setting.insert().values(key="active_stack", value=DEFAULT))


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(
        setting.delete().where(setting.c.key == "active_stack", setting.c.value == DEFAULT)
    )
    conn.execute(stack.delete().where(stack.c.name == DEFAULT))
    used = sa.union(sa.select(stack.c.orchestrator_id), sa.select(stack.c.artifact_store_id))
    defaults = stack_component.c.name == DEFAULT
    conn.execute(stack_component.delete().where(defaults, stack_component.c.id.not_in(used)))
    conn.execute(stack_component.update().where(defaults).values(config="{}"))
    for table, column in INDEXES.items():
        op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
