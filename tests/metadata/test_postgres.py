"""The metadata store on a real PostgreSQL server, started for these tests.

Skipped (with the reason) only where no PostgreSQL server binaries are installed; `.ci/run`
installs them.
"""

from __future__ import annotations

import pytest
from racing_processes import failures, open_at_once, revision_and_completed_runs
from sqlalchemy import inspect, text

from branchwork import pipeline, step
from branchwork.exceptions import ConfigurationError
from branchwork.metadata import store
from branchwork.steps.command import command_step


@pytest.fixture(scope="module")
def postgres_url(postgres_server):
    return postgres_server.create_database("branchwork")


@step
def size(n: int) -> int:
    return n


@step
def part(i: int) -> int:
    return i * i


@step
def total(values: list) -> int:
    return sum(values)


@pipeline
def squares(n: int):
    return total([part(i) for i in range(size(n))])


def test_migrations_create_the_schema_on_postgres(postgres_url):
    engine = store.get_engine(postgres_url)
    assert store.current_revision(engine) == store.HEAD_REVISION
    assert {"pipeline_snapshot", "step_configuration", "step_run_parent"} <= set(
        inspect(engine).get_table_names()
    )


def test_a_dynamic_run_is_recorded_and_cached_on_postgres(postgres_url, monkeypatch):
    monkeypatch.setenv("BRANCHWORK_STORE_URL", postgres_url)
    assert squares(n=4) == 14
    run = squares.last_run
    assert run.snapshot.is_dynamic is True and run.status == "completed"
    assert sorted(run.steps) == ["part", "part_2", "part_3", "part_4", "size", "total"]
    for step_run in run.steps.values():
        assert step_run.configuration.step_run_id == step_run.id
    assert squares(n=4) == 14
    assert {str(s.status) for s in squares.last_run.steps.values()} == {"cached"}
    engine = store.get_engine(postgres_url)
    with engine.connect() as conn:
        dynamic = conn.execute(
            text("SELECT is_dynamic FROM pipeline_snapshot WHERE id = :id"), {"id": run.snapshot.id}
        ).scalar()
        edges = conn.execute(text("SELECT COUNT(*) FROM step_run_parent")).scalar()
    assert dynamic is True
    assert edges == 2 * 4  # two runs, each: total <- part_i (range(size) is a value use)


def test_the_longest_names_allowed_fit_postgres_columns(postgres_url, monkeypatch, tmp_path):
    """100-character pipeline and step names (the limit the decorators check) and a
    50-character command output name make a run name, invocation ids and default artifact
    names (`{pipeline}::{step}::{output}`) that PostgreSQL's 255-character columns hold; one
    character more is refused at the decorator, before any run (it failed mid-run with 'value
    too long for type character varying(255)')."""
    monkeypatch.setenv("BRANCHWORK_STORE_URL", postgres_url)
    monkeypatch.chdir(tmp_path)
    long_step = step(name="s" * 100)(part.func)
    writer = command_step(
        name="c" * 100, command=["touch", "made.txt"], outputs={"o" * 50: "made.txt"}
    )

    def body():
        return [long_step(i) for i in range(12)], writer()

    long_pipeline = pipeline(name="p" * 100)(body)
    squares, made = long_pipeline()
    assert squares == [i * i for i in range(12)] and made.name == "made.txt"
    run = long_pipeline.last_run
    assert run.status == "completed" and len(run.name) > 100
    p, s, c, o = "p" * 100, "s" * 100, "c" * 100, "o" * 50
    assert run.steps[f"{s}_12"].outputs["output"].name == f"{p}::{s}::output"
    assert run.steps[c].outputs[o].name == f"{p}::{c}::{o}"
    with pytest.raises(ConfigurationError, match="name= is longer than 100 characters"):
        step(name="s" * 101)(part.func)
    with pytest.raises(ConfigurationError, match="must be an identifier of up to 50 characters"):
        command_step(name="c", command=["true"], outputs={"o" * 51: "made.txt"})


def test_the_configuration_check_holds_on_postgres(postgres_url):
    from sqlalchemy.exc import IntegrityError

    engine = store.get_engine(postgres_url)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO step_configuration (id, name, step_name, config) "
                "VALUES ('x', 'a', 'a', '{}')"
            )
        )


@pytest.mark.parametrize("processes", [4, 8])
@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_processes_opening_a_new_postgres_store_at_once_all_succeed(
    postgres_server, tmp_path, processes, attempt
):
    url = postgres_server.create_database(f"race_{processes}_{attempt}")
    failed = failures(open_at_once(url, processes, tmp_path))
    assert not failed, "\n".join(failed)
    assert revision_and_completed_runs(url) == (store.HEAD_REVISION, processes)


def test_a_stopped_postgres_server_gives_an_error_naming_the_server(postgres_server):
    url = postgres_server.url("branchwork").replace("postgres@", "postgres:s3cret@")
    postgres_server.stop()
    try:
        with pytest.raises(ConfigurationError) as info:
            store.get_engine(url)
    finally:
        postgres_server.start()
    message = str(info.value)
    assert message.startswith(
        "The PostgreSQL metadata store at 'postgresql+psycopg://postgres:***@/branchwork?host="
    )
    assert f"&port={postgres_server.port}' could not be reached or migrated: " in message
    assert message.endswith(
        "Check that the PostgreSQL server is running and BRANCHWORK_STORE_URL is right."
    )
    assert "s3cret" not in message
    assert "corrupt" not in message and "move it away" not in message
