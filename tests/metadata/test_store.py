"""What the metadata store holds after runs: read back through SQL, as users' tools would."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from racing_processes import failures, open_at_once, revision_and_completed_runs
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

from branchwork import pipeline, step
from branchwork.exceptions import ConfigurationError
from branchwork.metadata import store
from processes import python_env


@step
def source() -> int:
    return 3


@step
def double(x: int) -> int:
    return 2 * x


@step
def add(a: int, b: int) -> int:
    return a + b


@pipeline
def wiring():
    s = source()
    return add(double(s), s)


@pipeline
def branching():
    s = source()
    if s > 2:
        return add(double(s), s)
    return s


def db(home):
    return sqlite3.connect(home / "branchwork.db")


def test_store_is_created_with_every_table_at_head(branchwork_home):
    engine = store.get_engine()
    tables = set(inspect(engine).get_table_names())
    assert {
        "pipeline",
        "pipeline_snapshot",
        "step_configuration",
        "pipeline_run",
        "step_run",
        "artifact",
        "artifact_version",
        "step_run_input_artifact",
        "step_run_output_artifact",
        "pipeline_run_output",
        "step_run_parent",
        "alembic_version",
    } <= tables
    assert store.current_revision(engine) == store.HEAD_REVISION
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_head_revision_constant_matches_the_newest_migration():
    from alembic.script import ScriptDirectory

    config = store.alembic_config()
    assert ScriptDirectory.from_config(config).get_current_head() == store.HEAD_REVISION


def test_migrations_upgrade_and_downgrade_cleanly(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    store.upgrade(engine)
    assert store.current_revision(engine) == store.HEAD_REVISION
    store.upgrade(engine)  # idempotent
    from alembic import command

    with engine.begin() as conn:
        command.downgrade(store.alembic_config(conn), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}


INFO_SCRIPT = """
import logging
logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
from branchwork import pipeline, step

@step
def one() -> int:
    return 1

@pipeline
def first():
    return one()

print(first(), logging.getLogger("alembic").level)
logging.getLogger("app").info("the program's own")
"""


def test_a_new_store_is_made_without_alembics_info_records(tmp_path):
    """A program logging at INFO printed about 25 of Alembic's lines on a new store."""
    script = tmp_path / "script.py"
    script.write_text(INFO_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=python_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "1 0\n"  # the alembic logger's level left unset
    assert "alembic" not in done.stderr
    assert "app: the program's own\n" in done.stderr


def test_static_run_links_step_configurations_to_the_snapshot(branchwork_home):
    assert wiring() == 9
    run = wiring.last_run
    with db(branchwork_home) as conn:
        is_dynamic = conn.execute(
            "SELECT is_dynamic FROM pipeline_snapshot WHERE id = ?", (run.snapshot.id,)
        ).fetchone()[0]
        configs = conn.execute(
            "SELECT name, snapshot_id, step_run_id FROM step_configuration ORDER BY name"
        ).fetchall()
    assert is_dynamic == 0
    assert configs == [
        ("add", run.snapshot.id, None),
        ("double", run.snapshot.id, None),
        ("source", run.snapshot.id, None),
    ]


def test_dynamic_run_links_step_configurations_to_step_runs(branchwork_home):
    assert branching() == 9
    run = branching.last_run
    with db(branchwork_home) as conn:
        is_dynamic = conn.execute(
            "SELECT is_dynamic FROM pipeline_snapshot WHERE id = ?", (run.snapshot.id,)
        ).fetchone()[0]
        configs = conn.execute(
            "SELECT c.name, c.snapshot_id, r.name FROM step_configuration c "
            "JOIN step_run r ON r.id = c.step_run_id ORDER BY c.name"
        ).fetchall()
    assert is_dynamic == 1
    assert configs == [("add", None, "add"), ("double", None, "double"), ("source", None, "source")]


def test_configuration_must_link_to_exactly_one_owner(branchwork_home):
    engine = store.get_engine()
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO step_configuration (id, name, step_name, config) "
                "VALUES ('x', 'a', 'a', '{}')"
            )
        )


def test_edges_inputs_and_outputs_are_recorded(branchwork_home):
    branching()
    run = branching.last_run
    steps = run.steps
    assert set(steps["add"].parent_step_run_ids) == {steps["double"].id, steps["source"].id}
    assert steps["double"].parent_step_run_ids == (steps["source"].id,)
    assert steps["source"].parent_step_run_ids == ()
    assert steps["double"].inputs["x"].id == steps["source"].output.id
    assert steps["add"].inputs["a"].id == steps["double"].output.id
    assert steps["add"].output.load() == 9
    assert steps["add"].output.name == "branching::add::output"
    assert len(steps["add"].output.content_hash) == 64
    assert run.outputs[0].id == steps["add"].output.id
    with db(branchwork_home) as conn:
        edges = conn.execute("SELECT COUNT(*) FROM step_run_parent").fetchone()[0]
    assert edges == 3


def test_run_times_and_orchestrator_are_recorded(branchwork_home):
    wiring()
    run = wiring.last_run
    assert run.status == "completed"
    assert run.orchestrator == "local"
    assert run.orchestrator_run_id and run.orchestrator_run_id.startswith("local-")
    assert run.start_time <= run.end_time
    for step_run in run.steps.values():
        assert run.start_time <= step_run.start_time <= step_run.end_time <= run.end_time
        assert len(step_run.code_hash) == 64 and len(step_run.cache_key) == 64


def test_a_corrupt_store_file_gives_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("BRANCHWORK_STORE_URL", f"sqlite:///{bad}")
    with pytest.raises(ConfigurationError) as info:
        store.get_engine()
    assert str(info.value) == (
        f"The SQLite metadata store {str(bad)!r} cannot be opened or migrated: file is not a "
        "database. If it is corrupt, move it away; if it is locked, stop the process holding it."
    )


@pytest.mark.parametrize("processes", [4, 8])
@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_processes_opening_a_new_sqlite_store_at_once_all_succeed(tmp_path, processes, attempt):
    url = f"sqlite:///{tmp_path / 'team.db'}"
    failed = failures(open_at_once(url, processes, tmp_path))
    assert not failed, "\n".join(failed)
    assert revision_and_completed_runs(url) == (store.HEAD_REVISION, processes)


def test_an_unknown_store_url_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("BRANCHWORK_STORE_URL", "nosuchdb://x")
    with pytest.raises(ConfigurationError, match="BRANCHWORK_STORE_URL"):
        store.get_engine()


def test_store_url_environment_variable_is_honoured(tmp_path, monkeypatch):
    path = tmp_path / "elsewhere.db"
    monkeypatch.setenv("BRANCHWORK_STORE_URL", f"sqlite:///{path}")
    assert wiring() == 9
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pipeline_run").fetchone()[0] == 1
