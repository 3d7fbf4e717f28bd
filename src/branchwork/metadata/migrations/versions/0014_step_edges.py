"""step edges: the edges between a run's step names, recorded as the run goes

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 03:00:00.000000

A big run's graph draws one node per step name and the edges between them. Those were read
from every parent link and every dynamic configuration of the run (about 7 s for a million
step runs); now the recorder writes each edge once per run as it first appears, into
`step_edge`, and the graph reads a few rows by run id. A new table: nothing is rebuilt.

The upgrade fills it for the runs recorded before, with what the graph read then: a data edge
(parent's step name, child's) per parent link, and a value edge (read step's name, reader's)
per invocation named in a configuration's `value_inputs` that has a step run in the reader's
run (only dynamic runs' step runs have configurations), or in the `value_inputs` of the
invocation its `value_inputs_of` names (written since: the calls between the same two reads
name the first of them). About as long as drawing every run's graph once. The downgrade
drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

DATA_EDGES = """
    INSERT INTO step_edge (run_id, from_name, to_name, kind)
    SELECT DISTINCT child.run_id, parent.step_name, child.step_name, 'data'
    FROM step_run_parent AS link
    JOIN step_run AS child ON child.id = link.child_id
    JOIN step_run AS parent ON parent.id = link.parent_id"""
# The JSON array `value_inputs` of each step configuration (or of the one its
# `value_inputs_of` names), unnested, reduced to distinct (run, reading step name, read
# invocation) before the read invocations are looked up: a fan-out of 10,000 that read one
# value is one lookup, not 10,000.
JSON_SQL = {
    "sqlite": {
        "first": "json_extract(own.config, '$.value_inputs_of')",
        "unnest": "JOIN json_each(config.config, '$.value_inputs') AS value_input",
    },
    "postgresql": {
        "first": "CAST(own.config AS json) ->> 'value_inputs_of'",
        "unnest": "CROSS JOIN LATERAL json_array_elements_text("
        "CAST(config.config AS json) -> 'value_inputs') AS value_input(value)",
    },
}
VALUE_EDGES = """
    INSERT INTO step_edge (run_id, from_name, to_name, kind)
    WITH readers AS MATERIALIZED (
        SELECT DISTINCT child.run_id, child.step_name AS reader,
            COALESCE({first}, child.name) AS first_name
        FROM step_run AS child
        JOIN step_configuration AS own ON own.step_run_id = child.id
    ),
    reads AS MATERIALIZED (
        SELECT DISTINCT readers.run_id, readers.reader, value_input.value AS read_name
        FROM readers
        JOIN step_run AS first ON first.run_id = readers.run_id AND first.name = readers.first_name
        JOIN step_configuration AS config ON config.step_run_id = first.id
        {unnest}
    )
    SELECT DISTINCT reads.run_id, parent.step_name, reads.reader, 'value'
    FROM reads
    JOIN step_run AS parent ON parent.run_id = reads.run_id AND parent.name = reads.read_name"""


def upgrade() -> None:
    op.create_table(
        "step_edge",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("from_name", sa.String(length=255), nullable=False),
        sa.Column("to_name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["pipeline_run.id"],
            name=op.f("fk_step_edge_run_id_pipeline_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "run_id", "from_name", "to_name", "kind", name=op.f("pk_step_edge")
        ),
    )
    bind = op.get_bind()
    bind.execute(sa.text(DATA_EDGES))
    json_sql = JSON_SQL.get(bind.dialect.name)
    if json_sql is not None:  # a database without these JSON functions: no value edges
        bind.execute(sa.text(VALUE_EDGES.format(**json_sql)))


def downgrade() -> None:
    op.drop_table("step_edge")
