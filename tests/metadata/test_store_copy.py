"""Copying a store with real runs into another (`metadata.store_copy`): into PostgreSQL and
into another SQLite file, compared table by table and through `Client`; idempotent,
resumable, and merging two laptops' histories of one pipeline."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Annotated

import pytest
from sqlalchemy import func, select

from branchwork import ArtifactConfig, Client, log_artifact_metadata, pipeline, step
from branchwork.config import home
from branchwork.exceptions import PipelineRunFailedError
from branchwork.metadata import schema, store_copy
from branchwork.metadata.run_figures import KEPT_FROM
from branchwork.metadata.run_groups import group_durations, step_groups
from branchwork.metadata.run_pages import find_run, run_counts
from branchwork.metadata.store import dispose_engines, get_engine
from branchwork.metadata.store_copy import copy_rows, prepare_copy
from branchwork.stack.components import register_artifact_store
from branchwork.stack.stacks import list_stacks, register_stack

# Tables every store seeds itself (the default stack): compared by name, not by id.
SEEDED = {"stack_component", "stack", "setting"}
COPIED = [t for t in schema.metadata.sorted_tables if t is not schema.run_summary]


@step
def numbers(n: int) -> list:
    print(f"made {n} numbers")
    return list(range(n))


@step
def square(x: int) -> int:
    return x * x


@step
def total(values: list) -> Annotated[int, ArtifactConfig(name="copy_total", tags=["copied"])]:
    log_artifact_metadata({"count": len(values)})
    return sum(values)


@step
def fails(values: list) -> int:
    raise ValueError(f"refusing {len(values)} values")


@step
def item(i: int) -> int:
    return i


@step
def checked(values: list, flag: str) -> int:
    if os.path.exists(flag):
        raise ValueError("the flag is set")
    return len(values)


@pipeline
def copy_resumed(flag: str):
    return checked(numbers(2), flag)


@pipeline
def copy_big(n: int):
    return total([item(i) for i in range(n)])


@pipeline
def copy_static(n: int = 3):
    return total(numbers(n))


@pipeline
def copy_dynamic(n: int = 4):
    return total([square(i) for i in range(len(numbers(n)))])


@pipeline
def copy_failing(n: int = 2):
    return fails(numbers(n))


def record_history(tmp_path) -> None:
    """Runs of every kind in the configured store: static (then cached), dynamic, failed,
    with logs, artifact tags and metadata, and a stack made of a default component."""
    assert copy_static(n=3) == 3
    assert copy_static(n=3) == 3  # served from the cache
    assert copy_dynamic(n=4) == 14
    with pytest.raises(PipelineRunFailedError):
        copy_failing()
    register_artifact_store("disk", path=tmp_path / "disk")
    register_stack("laptop", orchestrator="default", artifact_store="disk")


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'team.db'}"
    server = request.getfixturevalue("postgres_server")
    return str(server.create_database(f"team_{uuid.uuid4().hex[:12]}"))


def rows(url: str, table) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return sorted(tuple(row) for row in conn.execute(select(table)))


def named(url: str, table) -> set[str]:
    with get_engine(url).connect() as conn:
        return set(conn.execute(select(table.c.name)).scalars())


def count(url: str, table) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def assert_same_history(source: str, target: str) -> None:
    for table in COPIED:
        if table.name not in SEEDED:
            assert rows(target, table) == rows(source, table), table.name
    for table in (schema.stack_component, schema.stack):
        assert named(target, table) == named(source, table), table.name
    assert Client(target).list_pipeline_runs() == Client(source).list_pipeline_runs()


def test_a_copy_holds_every_run_step_artifact_log_and_stack(target_url, tmp_path):
    record_history(tmp_path)
    source = home.store_url()
    copies = copy_rows(prepare_copy(source, target_url))

    assert [copy.table for copy in copies] == [t.name for t in COPIED]
    assert {copy.table: copy.copied for copy in copies}["step_run"] == count(
        source, schema.step_run
    )
    assert_same_history(source, target_url)
    team = Client(target_url)
    statuses = [
        (run.pipeline_name, str(run.status), sorted(str(s.status) for s in run.steps.values()))
        for run in team.list_pipeline_runs()
    ]
    assert statuses == [
        ("copy_failing", "failed", ["completed", "failed"]),
        ("copy_dynamic", "completed", ["completed"] * 6),
        ("copy_static", "completed", ["cached", "cached"]),
        ("copy_static", "completed", ["completed", "completed"]),
    ]
    assert team.get_step_logs("latest:copy_dynamic", "numbers") == {"numbers": "made 4 numbers\n"}
    version = team.get_artifact_version("copy_total")
    assert version.load() == 14
    assert [v.version for v in team.list_artifact_versions(tag="copied")] == [2, 1]
    assert [v.load() for v in team.list_artifact_versions(metadata={"count": 3})] == [3]
    laptop = {stack.name: stack for stack in list_stacks(get_engine(target_url))}["laptop"]
    assert (laptop.orchestrator.name, laptop.artifact_store.name) == ("default", "disk")

    again = copy_rows(prepare_copy(source, target_url))
    assert sum(copy.copied for copy in again) == 0
    assert sum(copy.already_there for copy in again) == sum(
        c.copied + c.already_there for c in copies
    )


def test_an_interrupted_copy_completes_when_run_again(target_url, tmp_path, monkeypatch):
    record_history(tmp_path)
    source = home.store_url()
    monkeypatch.setattr(store_copy, "BATCH", 3)

    def interrupt_in_step_runs(copy, done):
        if copy.table == "step_run" and copy.copied == 6:
            raise KeyboardInterrupt  # Ctrl-C between two batches

    with pytest.raises(KeyboardInterrupt):
        copy_rows(prepare_copy(source, target_url), interrupt_in_step_runs)
    assert count(target_url, schema.step_run) == 6 < count(source, schema.step_run)
    assert count(target_url, schema.step_log) == 0

    resumed = {copy.table: copy for copy in copy_rows(prepare_copy(source, target_url))}
    assert resumed["step_run"].already_there == 6
    assert resumed["step_run"].copied == count(source, schema.step_run) - 6
    assert resumed["pipeline_run"].copied == 0
    assert_same_history(source, target_url)


def test_two_laptops_running_one_pipeline_merge_with_versions_numbered_after(
    postgres_server, tmp_path, monkeypatch
):
    team = postgres_server.create_database(f"team_{uuid.uuid4().hex[:12]}")
    laptops = []
    for n in (3, 5):  # each laptop makes versions 1 and 2 of the same artifact
        laptop = f"sqlite:///{tmp_path / f'laptop{n}.db'}"
        monkeypatch.setenv("BRANCHWORK_STORE_URL", laptop)
        assert copy_static(n=n) == sum(range(n))
        assert copy_static(n=n + 1) == sum(range(n + 1))
        dispose_engines()
        laptops.append(laptop)
    for laptop in laptops:
        copy_rows(prepare_copy(laptop, team))
    copy_rows(prepare_copy(laptops[1], team))  # again: nothing renumbered twice

    versions = Client(team).list_artifact_versions(name="copy_total")
    assert sorted((v.version, v.load()) for v in versions) == [(1, 3), (2, 6), (3, 10), (4, 15)]
    monkeypatch.setenv("BRANCHWORK_STORE_URL", team)
    assert copy_static(n=7) == 21  # a new run on the team store numbers after them all
    assert Client(team).get_artifact_version("copy_total").version == 5


def test_a_copy_made_again_after_a_resume_brings_the_run_up_to_date(target_url, tmp_path):
    """The second copy skipped the run's row: the target read the run failed, with its old
    error, beside the step run of the resume that completed it. A copy from a store that is
    behind the target takes nothing back."""
    flag = tmp_path / "flag"
    flag.touch()
    with pytest.raises(PipelineRunFailedError) as failed:
        copy_resumed(flag=str(flag))
    run_id = failed.value.run_id
    source, before = home.store_url(), f"sqlite:///{tmp_path / 'before.db'}"
    copy_rows(prepare_copy(source, before))
    copy_rows(prepare_copy(source, target_url))
    flag.unlink()
    assert Client().resume_run(run_id) == 2

    copies = copy_rows(prepare_copy(source, target_url))
    assert {copy.table: copy.updated for copy in copies if copy.updated} == {"pipeline_run": 1}
    assert_same_history(source, target_url)
    copied = Client(target_url).get_pipeline_run(run_id)
    assert (copied.status, copied.exception_message, copied.load_output()) == ("completed", None, 2)

    behind = copy_rows(prepare_copy(before, target_url))
    assert sum(copy.copied + copy.updated for copy in behind) == 0
    assert_same_history(source, target_url)


def test_a_run_the_target_recorded_lost_is_brought_back_by_the_next_copy(target_url):
    """Copied while it ran, then reaped in the target (its next run records lost runs): the
    reap's end time is later than the real one, and the next copy took the target's for
    further on, leaving a completed run failed there with its attempts lost."""
    assert copy_static(n=3) == 3
    source = home.store_url()
    copy_rows(prepare_copy(source, target_url))
    with get_engine(target_url).begin() as conn:  # what a reap there leaves
        for table in (schema.pipeline_run, schema.step_run):
            conn.execute(
                table.update().values(
                    status="failed",
                    exception_type="OrchestrationLost",
                    end_time=datetime(2099, 1, 1),
                )
            )
    copies = copy_rows(prepare_copy(source, target_url))
    assert {copy.table: copy.updated for copy in copies if copy.updated} == {
        "pipeline_run": 1,
        "step_run": 2,
    }
    assert_same_history(source, target_url)


def test_a_big_runs_kept_figures_stay_behind_and_the_copy_reads_the_same(target_url):
    """Figures kept when a run ended describe the run as it was then: a copy made before a
    resume, then topped up after it, would describe the old run with them. They are not
    copied; the target counts the run's step runs, which give the same figures."""
    assert copy_big(n=KEPT_FROM) == sum(range(KEPT_FROM))
    source = home.store_url()
    assert count(source, schema.run_summary) == 1
    copies = copy_rows(prepare_copy(source, target_url))
    assert "run_summary" not in [copy.table for copy in copies]
    assert count(target_url, schema.run_summary) == 0

    def figures(url: str) -> tuple[object, ...]:
        """The run's step groups and counts, and its durations to the microsecond (SQLite and
        PostgreSQL compute seconds with floating-point errors of their own); stragglers by
        their seconds (steps this short often take the same microseconds, and which of
        those comes first is either database's choice)."""
        engine = get_engine(url)
        run = find_run(engine, copy_big.last_run.id)
        durations = {
            name: [round(v, 6) for v in (d.p50, d.p95, d.max)]
            + sorted(round(s, 6) for _, s in d.stragglers)
            for name, d in group_durations(engine, run).items()
        }
        return step_groups(engine, run), durations, run_counts(engine, [run])[run.id]

    assert figures(target_url) == figures(source)
