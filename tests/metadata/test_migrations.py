"""What the migrations leave in a store: the schema of `schema.py`, and the built-in default
stack as rows, on a new store and on one created at an older revision."""

from __future__ import annotations

import json
import time

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text

from branchwork import pipeline, step
from branchwork.metadata import schema, store
from branchwork.stack import stacks


def default_stack_rows(engine: Engine) -> dict[str, object]:
    """The default components and stack, and the active-stack setting, read with plain SQL."""
    with engine.connect() as conn:
        components = conn.execute(
            text(
                "SELECT kind, flavor, config FROM stack_component WHERE name = 'default' "
                "ORDER BY kind"
            )
        ).all()
        stack = conn.execute(
            text(
                "SELECT o.name, o.kind, a.name, a.kind FROM stack s "
                "JOIN stack_component o ON o.id = s.orchestrator_id "
                "JOIN stack_component a ON a.id = s.artifact_store_id WHERE s.name = 'default'"
            )
        ).all()
        active = conn.execute(text("SELECT value FROM setting WHERE key = 'active_stack'")).all()
    return {
        "components": [(kind, flavor, json.loads(config)) for kind, flavor, config in components],
        "stack": [tuple(row) for row in stack],
        "active": [value for (value,) in active],
    }


DEFAULT_ROWS = {
    "components": [("artifact_store", "local", {"path": None}), ("orchestrator", "local", {})],
    "stack": [("default", "orchestrator", "default", "artifact_store")],
    "active": ["default"],
}


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), schema.metadata))


def test_a_new_store_holds_the_default_stack_as_rows(store_url):
    engine = store.get_engine(store_url)
    assert default_stack_rows(engine) == DEFAULT_ROWS
    assert schema_differences(engine) == []


def test_a_store_created_at_0003_gets_the_default_stack_on_upgrade(store_url):
    engine = create_engine(store_url)
    try:
        store.upgrade(engine, "0003")
        assert store.current_revision(engine) == "0003"
        store.upgrade(engine)
        assert store.current_revision(engine) == store.HEAD_REVISION
        assert default_stack_rows(engine) == DEFAULT_ROWS
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_upgrading_keeps_the_default_rows_and_the_active_stack_0003_made(
    store_url, branchwork_home
):
    """At 0003 a default component got a row when a stack first used it (config "{}"): the
    upgrade keeps that row (stacks refer to it), and the stack set active stays active."""
    engine = create_engine(store_url)
    try:
        store.upgrade(engine, "0003")
        with engine.begin() as conn:
            for statement in (
                "INSERT INTO stack_component VALUES "
                "('o1', 'default', 'orchestrator', 'local', '{}', '2026-11-01 00:00:00'), "
                "('p1', 'lp', 'orchestrator', 'local_process', '{\"max_workers\": 2}', "
                "'2026-11-01 00:00:00'), "
                "('a1', 'default', 'artifact_store', 'local', '{}', '2026-11-01 00:00:00')",
                "INSERT INTO stack VALUES ('s1', 'proc', 'p1', 'a1', '2026-11-01 00:00:00')",
                "INSERT INTO setting VALUES ('active_stack', 'proc')",
            ):
                conn.execute(text(statement))
        store.upgrade(engine)
        rows = default_stack_rows(engine)
        assert rows["components"] == DEFAULT_ROWS["components"]
        assert rows["stack"] == DEFAULT_ROWS["stack"]
        assert rows["active"] == ["proc"]
        with engine.connect() as conn:
            default_ids = conn.execute(
                text("SELECT orchestrator_id, artifact_store_id FROM stack WHERE name = 'default'")
            ).one()
        assert tuple(default_ids) == ("o1", "a1")
    finally:
        engine.dispose()

    described = stacks.describe_stack()  # the active one, through the registry
    assert (described.name, described.orchestrator.name) == ("proc", "lp")
    assert described.artifact_store.location == str(branchwork_home / "artifacts")
    assert [s.name for s in stacks.list_stacks()] == ["default", "proc"]


def test_migrating_a_store_keeps_the_rows_that_refer_to_its_step_runs(store_url):
    """With the store's own engine (SQLite foreign keys on), a migration that rebuilds
    `step_run` must not delete, by cascade, the logs and links of its rows: 0004 -> head
    added columns to it, and going down to 0004 and up again rebuilds it twice."""
    from alembic import command

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0004")
        with engine.begin() as conn:
            for statement in (
                "INSERT INTO pipeline (id, name, created) VALUES ('p', 'old', '2026-11-01')",
                "INSERT INTO pipeline_snapshot (id, pipeline_id, is_dynamic, source, parameters, "
                "spec, created) VALUES ('s', 'p', false, 'x:old', '{}', '{}', '2026-11-01')",
                "INSERT INTO pipeline_run (id, name, pipeline_id, snapshot_id, status, "
                "orchestrator, parameters, created) VALUES ('r', 'old-run', 'p', 's', "
                "'completed', 'local', '{}', '2026-11-01')",
                "INSERT INTO step_run (id, run_id, name, step_name, attempt, status, code_hash) "
                "VALUES ('a', 'r', 'load', 'load', 1, 'completed', 'h'), "
                "('b', 'r', 'train', 'train', 1, 'completed', 'h')",
                "INSERT INTO step_run_parent (child_id, parent_id) VALUES ('b', 'a')",
                "INSERT INTO step_log (step_run_id, text) VALUES ('b', 'epoch 1')",
            ):
                conn.execute(text(statement))

        tables = ("step_run", "step_run_parent", "step_log")
        store.upgrade(engine)
        assert row_counts(engine, tables) == (2, 1, 1)
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0004")
        store.upgrade(engine)
        assert row_counts(engine, tables) == (2, 1, 1)
        if engine.dialect.name == "sqlite":  # and they are on again afterwards
            with engine.connect() as conn:
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


ROWS_AT_0008 = (
    "INSERT INTO pipeline (id, name, created) VALUES ('p', 'old', '2026-12-01')",
    "INSERT INTO pipeline_snapshot (id, pipeline_id, is_dynamic, source, parameters, spec, "
    "created) VALUES ('s', 'p', false, 'x:old', '{}', '{}', '2026-12-01')",
    "INSERT INTO pipeline_run (id, name, pipeline_id, snapshot_id, status, orchestrator, "
    "parameters, created, start_time, end_time) VALUES ('r', 'old-run', 'p', 's', 'completed', "
    "'local_process', '{}', '2026-12-01 10:00:00', '2026-12-01 10:00:00', "
    "'2026-12-01 10:01:30')",
    "INSERT INTO step_run (id, run_id, name, step_name, attempt, status, code_hash) "
    "VALUES ('a', 'r', 'load', 'load', 1, 'completed', 'h'), "
    "('b', 'r', 'train', 'train', 1, 'completed', 'h')",
    "INSERT INTO step_run_parent (child_id, parent_id) VALUES ('b', 'a')",
    "INSERT INTO step_log (step_run_id, text) VALUES ('b', 'epoch 1')",
    "INSERT INTO run_wait (run_id, wait_id, position, question, asked) "
    "VALUES ('r', 'wait', 1, 'Release?', '2026-12-01 10:00:30')",
)
TABLES_KEPT = ("pipeline_run", "step_run", "step_run_parent", "step_log", "run_wait")
# ... and load's output, version 1 of an artifact (a file's URI: older than inline data)
ROWS_WITH_AN_OUTPUT = (
    *ROWS_AT_0008,
    "INSERT INTO artifact (id, name, created, version_count) "
    "VALUES ('art', 'old::load::output', '2026-12-01', 1)",
    "INSERT INTO artifact_version (id, artifact_id, uri, data_type, materializer, "
    "content_hash, producer_step_run_id, created, version) VALUES ('v', 'art', "
    "'/a/v', 'builtins.list', 'm:M', 'h', 'a', '2026-12-01', 1)",
    "INSERT INTO step_run_output_artifact (step_run_id, name, artifact_version_id) "
    "VALUES ('a', 'output', 'v')",
)


def row_counts(engine: Engine, tables: tuple[str, ...] = TABLES_KEPT) -> tuple[object, ...]:
    """How many rows each of `tables` holds."""
    with engine.connect() as conn:
        return tuple(
            conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in tables
        )


def run_columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("pipeline_run")}


def test_0009_adds_the_runs_stack_in_place_and_goes_down_and_up_keeping_every_row(store_url):
    """A run recorded at 0008 keeps its rows through 0009 and reads with no stack (readers
    show its orchestrator's flavor) and its one session's duration; going down to 0008 and
    up again (through `store.migrating`) keeps every row too."""
    from alembic import command

    from branchwork.metadata.queries import get_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0008")
        with engine.begin() as conn:
            for statement in ROWS_AT_0008:
                conn.execute(text(statement))

        store.upgrade(engine)
        assert store.current_revision(engine) == store.HEAD_REVISION
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        assert {"stack", "earlier_sessions_seconds"} <= run_columns(engine)
        old = get_run(engine, "old-run")
        assert (old.stack, old.orchestrator, old.duration_seconds()) == (None, "local_process", 90)
        assert old.earlier_sessions_seconds is None
        assert [step.status for step in old.steps.values()] == ["completed", "completed"]

        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0008")
        assert store.current_revision(engine) == "0008"
        assert not {"stack", "earlier_sessions_seconds"} & run_columns(engine)
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        store.upgrade(engine)
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0010_adds_the_item_count_in_place_and_goes_down_and_up_keeping_every_row(store_url):
    """An output recorded at 0009 keeps its version and its links through 0010 and reads with
    no item count (mapping over it loads it once to count); down and up again keeps them."""
    from alembic import command

    from branchwork.metadata.artifact_listing import get_artifact_version

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0009")
        with engine.begin() as conn:
            for statement in ROWS_WITH_AN_OUTPUT:
                conn.execute(text(statement))

        tables = (*TABLES_KEPT, "artifact_version", "step_run_output_artifact")

        store.upgrade(engine)
        assert row_counts(engine, tables) == (1, 2, 1, 1, 1, 1, 1)
        assert get_artifact_version(engine, "v").item_count is None
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0009")
        assert row_counts(engine, tables) == (1, 2, 1, 1, 1, 1, 1)
        store.upgrade(engine)
        assert row_counts(engine, tables) == (1, 2, 1, 1, 1, 1, 1)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


READ_INDEXES = {
    "ix_step_run_run_id_attempt",
    "ix_step_run_run_id_step_name_start_time",
    "ix_step_run_run_id_step_name_end_time",
    "ix_step_run_run_id_status_step_name_seconds",
}


def step_run_indexes(engine: Engine) -> set[str]:
    """The names of step_run's indexes, from the database's catalog (SQLAlchemy does not
    reflect SQLite's indexes on expressions)."""
    query = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'step_run'"
        if engine.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'step_run'"
    )
    with engine.connect() as conn:
        return set(conn.execute(text(query)).scalars())


def test_0012_adds_the_read_indexes_and_goes_down_and_up_keeping_every_row(store_url):
    """A run recorded at 0011 keeps its rows through 0012 and reads grouped from the new
    indexes: counts of latest attempts, durations to the microsecond (train's superseded
    first attempt, 61 s, is not its maximum); down to 0011 drops the indexes, up makes them."""
    from alembic import command

    from branchwork.metadata.run_groups import group_durations, step_groups
    from branchwork.metadata.run_pages import find_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0011")
        with engine.begin() as conn:
            for statement in (
                *ROWS_AT_0008,
                "UPDATE step_run SET start_time = '2026-12-01 10:00:00.250000', "
                "end_time = '2026-12-01 10:00:01.500001' WHERE id = 'a'",
                "UPDATE step_run SET status = 'failed', start_time = '2026-12-01 10:00:02', "
                "end_time = '2026-12-01 10:01:03.000002' WHERE id = 'b'",
                "INSERT INTO step_run (id, run_id, name, step_name, attempt, status, code_hash, "
                "start_time, end_time) VALUES ('c', 'r', 'train', 'train', 2, 'completed', 'h', "
                "'2026-12-01 10:01:04', '2026-12-01 10:01:06.5')",
            ):
                conn.execute(text(statement))

        assert not READ_INDEXES & step_run_indexes(engine)
        store.upgrade(engine)
        assert step_run_indexes(engine) >= READ_INDEXES
        assert row_counts(engine) == (1, 3, 1, 1, 1)
        run = find_run(engine, "old-run")
        groups = step_groups(engine, run)
        assert [(g.step_name, g.total, g.counts["completed"], g.executed) for g in groups] == [
            ("load", 1, 1, 1),
            ("train", 1, 1, 1),
        ]
        durations = group_durations(engine, run, groups)
        load, train = durations["load"], durations["train"]  # to the microsecond:
        assert (load.p50, load.max) == pytest.approx((1.250001, 1.250001), abs=1e-9)
        assert (train.p95, train.max) == pytest.approx((2.5, 2.5), abs=1e-9)

        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0011")
        assert not READ_INDEXES & step_run_indexes(engine)
        assert row_counts(engine) == (1, 3, 1, 1, 1)
        store.upgrade(engine)
        assert step_run_indexes(engine) >= READ_INDEXES
        assert row_counts(engine) == (1, 3, 1, 1, 1)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0011_adds_the_parent_of_a_child_run_in_place_and_goes_down_and_up(store_url):
    """Runs recorded at 0010 keep their rows through 0011 and read as top-level runs; down
    to 0010 and up again keeps them too."""
    from alembic import command

    from branchwork.metadata.queries import child_run_ids, get_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0010")
        with engine.begin() as conn:
            for statement in ROWS_AT_0008:
                conn.execute(text(statement))

        store.upgrade(engine, "0011")
        assert {"parent_run_id", "parent_invocation_id"} <= run_columns(engine)
        with engine.connect() as conn:  # as 0011 has it (get_run reads later columns too)
            parent = conn.execute(
                text("SELECT parent_run_id, parent_invocation_id FROM pipeline_run")
            ).one()
        assert tuple(parent) == (None, None)
        assert child_run_ids(engine, "old-run") == []
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0010")
        assert not {"parent_run_id", "parent_invocation_id"} & run_columns(engine)
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        store.upgrade(engine)
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        old = get_run(engine, "old-run")
        assert (old.parent_run_id, old.parent_invocation_id) == (None, None)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0013_adds_inline_data_in_place_and_refuses_to_go_down_over_inline_values(store_url):
    """A version recorded at 0012 keeps its row and links through 0013 and loads from its
    files as before; a version kept inline makes a downgrade refuse (its value would be lost,
    nothing is changed); without one, down and up again keeps every row."""
    from alembic import command

    from branchwork.metadata.artifact_listing import get_artifact_version

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0012")
        with engine.begin() as conn:
            for statement in ROWS_WITH_AN_OUTPUT:
                conn.execute(text(statement))
        tables = (*TABLES_KEPT, "artifact_version", "step_run_output_artifact")

        store.upgrade(engine)
        assert row_counts(engine, tables) == (1, 2, 1, 1, 1, 1, 1)
        assert get_artifact_version(engine, "v").inline_data is None
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO artifact_version (id, artifact_id, uri, data_type, "
                    "materializer, content_hash, producer_step_run_id, created, version, "
                    "inline_data) VALUES ('w', 'art', 'inline://h2', 'builtins.int', 'm:M', "
                    "'h2', 'b', '2026-12-01', 2, :data)"
                ),
                {"data": b"data.json\x0042"},
            )
        refused = pytest.raises(RuntimeError, match="1 artifact versions are stored inline")
        with refused, store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0012")
        assert store.current_revision(engine) == store.HEAD_REVISION
        assert get_artifact_version(engine, "w").inline_data == b"data.json\x0042"

        with engine.begin() as conn:
            conn.execute(text("DELETE FROM artifact_version WHERE id = 'w'"))
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0012")
        assert "inline_data" not in {
            column["name"] for column in inspect(engine).get_columns("artifact_version")
        }
        assert row_counts(engine, tables) == (1, 2, 1, 1, 1, 1, 1)
        store.upgrade(engine)
        assert row_counts(engine, tables) == (1, 2, 1, 1, 1, 1, 1)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


ROWS_OF_A_DYNAMIC_RUN = (  # beside ROWS_AT_0008's static run: count -> work x 2 -> total
    "INSERT INTO pipeline_snapshot (id, pipeline_id, is_dynamic, source, parameters, spec, "
    "created) VALUES ('ds', 'p', true, 'x:old', '{}', '{}', '2026-12-01')",
    "INSERT INTO pipeline_run (id, name, pipeline_id, snapshot_id, status, orchestrator, "
    "parameters, created) VALUES ('dr', 'dynamic-run', 'p', 'ds', 'completed', 'local', '{}', "
    "'2026-12-01')",
    "INSERT INTO step_run (id, run_id, name, step_name, attempt, status, code_hash) VALUES "
    "('c', 'dr', 'count', 'count', 1, 'completed', 'h'), "
    "('w1', 'dr', 'work', 'work', 1, 'completed', 'h'), "
    "('w2', 'dr', 'work_2', 'work', 1, 'retried', 'h'), "
    "('w2b', 'dr', 'work_2', 'work', 2, 'completed', 'h'), "
    "('t', 'dr', 'total', 'total', 1, 'completed', 'h')",
    # total read count's value too (an edge the graph leaves out: count -> work -> total
    # leads there), and names load, an invocation of the other run only: no edge
    "INSERT INTO step_configuration (id, name, step_name, config, step_run_id) VALUES "
    "('cc', 'count', 'count', '{}', 'c'), "
    "('cw1', 'work', 'work', '{\"value_inputs\": [\"count\"]}', 'w1'), "
    "('cw2', 'work_2', 'work', '{\"value_inputs\": [\"count\"]}', 'w2'), "
    "('cw2b', 'work_2', 'work', '{\"value_inputs\": [\"count\"]}', 'w2b'), "
    "('ct', 'total', 'total', '{\"value_inputs\": [\"count\", \"load\"]}', 't')",
    "INSERT INTO step_run_parent (child_id, parent_id) VALUES ('t', 'w1'), ('t', 'w2b')",
)


def step_edges(engine: Engine) -> list[tuple[object, ...]]:
    """Every row of `step_edge`, sorted."""
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(schema.step_edge.select()))


def test_0014_fills_the_step_edges_of_runs_recorded_before_and_goes_down_and_up(store_url):
    """Runs recorded at 0013, a static and a dynamic one, get the edges their graphs drew from
    parent links and value inputs (a read the graph leaves out is a row too: that is decided
    when it is drawn); down to 0013 drops the table and keeps every other row, up fills it
    again."""
    from alembic import command

    from branchwork.metadata.run_groups import group_edges
    from branchwork.metadata.run_pages import find_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0013")
        with engine.begin() as conn:
            for statement in (*ROWS_AT_0008, *ROWS_OF_A_DYNAMIC_RUN):
                conn.execute(text(statement))

        filled = [
            ("dr", "count", "total", "value"),
            ("dr", "count", "work", "value"),
            ("dr", "work", "total", "data"),
            ("r", "load", "train", "data"),
        ]
        store.upgrade(engine)
        assert step_edges(engine) == filled
        assert group_edges(engine, find_run(engine, "old-run")) == {("load", "train", "data")}
        assert group_edges(engine, find_run(engine, "dynamic-run")) == {
            ("count", "work", "value"),
            ("work", "total", "data"),
        }

        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0013")
        assert "step_edge" not in inspect(engine).get_table_names()
        assert row_counts(engine) == (2, 7, 3, 1, 1)
        store.upgrade(engine)
        assert step_edges(engine) == filled
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


@step
def seed(n: int) -> int:
    return n


@step
def part(i: int) -> int:
    return i


@step
def add(values: list) -> int:
    return sum(values)


@step
def note(n: int) -> int:
    return n


@pipeline
def static_sum():
    return add([part(1), part(2)])


@pipeline
def dynamic_sum(n: int):
    parts = [part(i) for i in range(seed(n))]  # seed's value read: seed -> part
    note(n)  # after the same read, which only the first part's configuration names
    total = add(parts)
    return part(int(total) + 1, id="last") if total > 1 else total  # add -> part, read


def test_0014_fills_in_the_edges_the_recorder_writes(store_url):
    """What the recorder wrote for real runs (static, dynamic, and served from the cache) is
    what the upgrade makes of their parent links and value inputs."""
    from alembic import command

    from branchwork.metadata.run_groups import group_edges
    from branchwork.metadata.run_pages import find_run

    assert static_sum() == 3
    assert dynamic_sum(n=3) == 4
    assert dynamic_sum(n=3) == 4
    engine = store._create_engine(store_url)
    try:
        cached = find_run(engine, dynamic_sum.last_run.id)
        assert group_edges(engine, cached) == {
            ("seed", "part", "value"),
            ("seed", "note", "value"),
            ("part", "add", "data"),
            ("add", "part", "value"),
        }
        recorded = step_edges(engine)
        assert len(recorded) == 1 + 4 + 4
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0013")
        store.upgrade(engine)
        assert step_edges(engine) == recorded
    finally:
        engine.dispose()


def test_0015_adds_the_kept_figures_table_and_goes_down_and_up_keeping_every_row(store_url):
    """Runs recorded at 0014 keep no figures: they are read from their step runs, as before;
    down to 0014 drops the table (and any figures kept) and keeps every other row."""
    from alembic import command

    from branchwork.metadata.run_groups import step_groups
    from branchwork.metadata.run_pages import find_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0014")
        with engine.begin() as conn:
            for statement in (*ROWS_AT_0008, *ROWS_OF_A_DYNAMIC_RUN):
                conn.execute(text(statement))
        store.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM run_summary")).scalar() == 0
        groups = step_groups(engine, find_run(engine, "dynamic-run"))
        assert sorted(group.step_name for group in groups) == ["count", "total", "work"]

        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0014")
        assert "run_summary" not in inspect(engine).get_table_names()
        assert row_counts(engine) == (2, 7, 3, 1, 1)
        store.upgrade(engine)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0016_gives_each_step_log_its_run_and_goes_down_and_up_keeping_every_row(store_url):
    """Logs recorded at 0015 get their step run's run id, and `runs logs` finds them by it;
    down to 0015 drops the column and its index and keeps every row."""
    from alembic import command

    from branchwork.metadata.run_logs import StepLog, step_logs
    from branchwork.metadata.run_pages import find_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0015")
        with engine.begin() as conn:
            for statement in ROWS_AT_0008:
                conn.execute(text(statement))
        store.upgrade(engine)
        with engine.connect() as conn:
            logs = conn.execute(text("SELECT step_run_id, run_id FROM step_log")).all()
        assert [tuple(row) for row in logs] == [("b", "r")]
        run = find_run(engine, "old-run")
        assert step_logs(engine, run) == [StepLog("train", "completed", "epoch 1")]

        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0015")
        assert "run_id" not in {c["name"] for c in inspect(engine).get_columns("step_log")}
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        store.upgrade(engine)
        assert step_logs(engine, run) == [StepLog("train", "completed", "epoch 1")]
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0017_adds_each_runs_heartbeat_interval_and_goes_down_and_up_keeping_every_row(
    store_url, monkeypatch
):
    """A running run recorded at 0016 has no interval of its own: it is lost by the
    reader's, as before; down to 0016 drops the column and keeps every row."""
    from alembic import command

    from branchwork.metadata.run_pages import find_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0016")
        with engine.begin() as conn:
            for statement in ROWS_AT_0008:
                conn.execute(text(statement))
            beat = time.time() - 20  # silent for 20 s: lost on 0.2 s heartbeats, not on 5 s
            conn.execute(text(f"UPDATE pipeline_run SET status = 'running', heartbeat = {beat}"))
        store.upgrade(engine)
        monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", "1")  # lost after it too
        monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "5")
        assert find_run(engine, "old-run").status == "running"
        monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "0.2")
        assert find_run(engine, "old-run").status == "failed"

        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0016")
        columns = {c["name"] for c in inspect(engine).get_columns("pipeline_run")}
        assert "heartbeat_seconds" not in columns
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        store.upgrade(engine)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0018_adds_the_snapshots_argv_and_goes_down_and_up_keeping_every_row(store_url):
    """A snapshot recorded at 0017 has no arguments: it reads as none."""
    from alembic import command

    from branchwork.metadata.run_pages import find_run

    engine = store._create_engine(store_url)
    try:
        store.upgrade(engine, "0017")
        with engine.begin() as conn:
            for statement in ROWS_AT_0008:
                conn.execute(text(statement))
        store.upgrade(engine)
        assert find_run(engine, "old-run").snapshot.argv == ()
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0017")
        columns = {c["name"] for c in inspect(engine).get_columns("pipeline_snapshot")}
        assert "argv" not in columns
        assert row_counts(engine) == (1, 2, 1, 1, 1)
        store.upgrade(engine)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
