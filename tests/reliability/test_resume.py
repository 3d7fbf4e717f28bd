"""Resume: finish a failed, stopped or killed run as the same run, each invocation once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import resumable_pipelines as rp
from sqlalchemy import select

from branchwork import Client
from branchwork.exceptions import OrchestratorError, PipelineRunFailedError, ReplayDivergenceError
from branchwork.metadata import schema
from branchwork.metadata.store import get_engine

HERE = Path(__file__).parent


def executions(folder: Path) -> Counter:
    log = folder / "executions.log"
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def test_resume_reruns_only_what_did_not_complete(tmp_path):
    (tmp_path / "fail-3").touch()
    with pytest.raises(PipelineRunFailedError) as info:
        rp.fan_out(folder=str(tmp_path), n=6)
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.status == "failed" and run.failed_step == "process_item_4"
    (tmp_path / "fail-3").unlink()
    assert Client().resume_run(run.id) == sum(i * i for i in range(6))
    resumed = Client().get_pipeline_run(run.id)
    assert resumed.status == "completed" and resumed.failed_step is None
    assert executions(tmp_path) == Counter(f"item {i}" for i in range(6))
    attempts = [
        (a.name, a.attempt, str(a.status)) for a in resumed.attempts if a.name == "process_item_4"
    ]
    assert attempts == [("process_item_4", 1, "failed"), ("process_item_4", 2, "completed")]
    assert resumed.steps["process_item"].attempt == 1  # reused, not run again


def graph_edges(run_id: str) -> list[tuple[str, str, str]]:
    """The rows of the run's graph edges, as stored (a duplicate would show)."""
    edge = schema.step_edge.c
    query = select(edge.from_name, edge.to_name, edge.kind).where(edge.run_id == run_id)
    with get_engine().connect() as conn:
        return sorted(tuple(row) for row in conn.execute(query))


def test_a_resumed_run_records_its_graph_edges_once(tmp_path):
    """The first session wrote item_count -> process_item; the resumed one records a step
    run making that edge again (process_item_4), and the edge into sum_items."""
    (tmp_path / "fail-4").touch()
    with pytest.raises(PipelineRunFailedError) as info:
        rp.fan_out(folder=str(tmp_path), n=6)
    run_id = info.value.run_id
    assert graph_edges(run_id) == [("item_count", "process_item", "value")]
    (tmp_path / "fail-4").unlink()
    assert Client().resume_run(run_id) == sum(i * i for i in range(6))
    assert graph_edges(run_id) == [
        ("item_count", "process_item", "value"),
        ("process_item", "sum_items", "data"),
    ]


def test_resume_reuses_completed_invocations_even_with_caching_off(tmp_path):
    (tmp_path / "fail-1").touch()
    uncached = rp.fan_out.with_options(enable_cache=False)
    with pytest.raises(PipelineRunFailedError) as info:
        uncached(folder=str(tmp_path), n=3)
    (tmp_path / "fail-1").unlink()
    assert Client().resume_run(info.value.run_id) == 0 + 1 + 4
    assert executions(tmp_path) == Counter(f"item {i}" for i in range(3))


def test_only_failed_or_stopped_runs_can_be_resumed(tmp_path):
    rp.fan_out(folder=str(tmp_path), n=1)
    with pytest.raises(OrchestratorError, match="only failed or stopped runs"):
        Client().resume_run(rp.fan_out.last_run.id)


def test_resume_stops_where_the_graph_diverges(tmp_path):
    (tmp_path / "fail-last").touch()
    with pytest.raises(PipelineRunFailedError) as info:
        rp.switching(folder=str(tmp_path))
    run_id = info.value.run_id
    (tmp_path / "fail-last").unlink()
    (tmp_path / "use-b").touch()
    with pytest.raises(PipelineRunFailedError) as diverged:
        Client().resume_run(run_id)
    cause = diverged.value.__cause__
    assert isinstance(cause, ReplayDivergenceError)
    assert "'second' now names step 'variant_b', but ran step 'variant_a'" in str(cause)
    run = Client().get_pipeline_run(run_id)
    assert run.status == "failed" and run.failed_step == "second"
    assert Client().resume_run(run_id, accept_new_graph=True) == 5
    run = Client().get_pipeline_run(run_id)
    assert run.status == "completed" and run.steps["second"].step_name == "variant_b"
    assert run.steps["second"].cache_reason == (
        "the resume accepts the new graph, and it now names step 'variant_b', but ran step "
        "'variant_a'"
    )


def test_a_resume_runs_again_what_was_invalidated_since_and_what_its_new_value_changes(tmp_path):
    (tmp_path / "value").write_text("1")
    (tmp_path / "fail-last").touch()
    with pytest.raises(PipelineRunFailedError) as info:
        rp.recomputed(folder=str(tmp_path))
    run_id = info.value.run_id
    (tmp_path / "value").write_text("5")  # the data changed: its result is no longer right
    assert Client().invalidate_cache("read_value", "recomputed") == 1
    (tmp_path / "fail-last").unlink()
    assert Client().resume_run(run_id) == (5 + 1) * 10 + 1
    assert executions(tmp_path) == Counter({"read": 2})
    reasons = {name: d.reason for name, d in Client().get_cache_decisions(run_id).items()}
    assert reasons["read_value"] == (
        "its result was invalidated since it ran (branchwork cache invalidate)"
    )
    assert reasons["plus_one"] == (
        "it comes after 'read_value', which ran again, and its inputs differ"
    )
    assert reasons["after_read"] == (
        "it comes after 'plus_one', which ran again, and its inputs differ"
    )


def test_a_resume_where_an_input_file_cannot_be_read_fails_that_step_cleanly(tmp_path, monkeypatch):
    """Resumed from another folder, `data.txt` is not found: its key cannot be computed, so
    `read_text` runs again as attempt 2 and fails saying so (the store refused a second
    attempt 1). Resumed from the right folder, the run completes."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "data.txt").write_text("hello")
    (tmp_path / "fail-last").touch()
    monkeypatch.chdir(project)
    with pytest.raises(PipelineRunFailedError) as info:
        rp.reads_a_file(folder=str(tmp_path))
    run_id = info.value.run_id
    (tmp_path / "fail-last").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PipelineRunFailedError, match="step 'read_text' raised FileNotFoundError"):
        Client().resume_run(run_id)
    run = Client().get_pipeline_run(run_id)
    assert (run.status, run.failed_step) == ("failed", "read_text")
    assert [(a.name, a.attempt, str(a.status)) for a in run.attempts] == [
        ("read_text", 1, "completed"),
        ("fail_if_told", 1, "failed"),
        ("read_text", 2, "failed"),
    ]
    monkeypatch.chdir(project)
    assert Client().resume_run(run_id) == 5


SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import resumable_pipelines as rp
from branchwork.orchestrators import LocalOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack
stack = Stack("two", LocalOrchestrator(max_workers=2), get_active_stack().artifact_store)
with active_stack(stack):
    rp.fan_out(folder={folder!r}, n=10, block_on=5)
"""


def test_a_killed_fan_out_resumes_with_every_item_run_exactly_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", "1")  # lost after it too
    script = tmp_path / "run_fan_out.py"
    script.write_text(SCRIPT.format(here=str(HERE), folder=str(tmp_path)))
    process = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        # Wait until every item but the blocked one is recorded, then kill the process.
        while True:
            runs = Client().list_pipeline_runs(pipeline="fan_out")
            done = [s for s in runs[0].steps.values() if s.status == "completed"] if runs else []
            if len(done) == 10:  # item_count + 9 items
                break
            assert time.monotonic() < deadline, "the fan-out never got that far"
            time.sleep(0.05)
        assert (tmp_path / "blocked").exists()
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        process.kill()
    # The dead loop stops heartbeating; reading the run marks it FAILED within bounded time.
    deadline = time.monotonic() + 10
    while (run := Client().get_pipeline_run(runs[0].id)).status == "running":
        assert time.monotonic() < deadline, "the killed run was never marked failed"
        time.sleep(0.2)
    assert run.status == "failed" and run.exception_type == "OrchestrationLost"
    assert executions(tmp_path) == Counter(f"item {i}" for i in range(10) if i != 5)
    (tmp_path / "go").touch()
    assert Client().resume_run(run.id) == sum(i * i for i in range(10))
    assert executions(tmp_path) == Counter(f"item {i}" for i in range(10))
    final = Client().get_pipeline_run(run.id)
    assert final.status == "completed"
    assert {name: s.attempt for name, s in final.steps.items()}["process_item_6"] == 2
    # The attempt in flight at the kill was closed by the resume, not left running.
    assert not [a for a in final.attempts if a.status == "running"]
    (lost,) = [a for a in final.attempts if a.status == "failed"]
    assert (lost.name, lost.attempt, lost.exception_type) == (
        "process_item_6",
        1,
        "OrchestrationLost",
    )
    assert len(final.attempts) == len(final.steps) + 1


def test_a_killed_loop_over_values_resumes_each_item_once_and_records_its_reads(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "0.2")
    monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", "1")  # lost after it too
    script = tmp_path / "run_read_each.py"
    call = "rp.fan_out(folder={folder!r}, n=10, block_on=5)"
    script.write_text(
        SCRIPT.replace(call, "rp.read_each(folder={folder!r}, n=8, block_on=5)").format(
            here=str(HERE), folder=str(tmp_path)
        )
    )
    process = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:  # items 0-4 read, item 5 running (and recorded so)
            runs = Client().list_pipeline_runs(pipeline="read_each")
            steps = runs[0].steps if runs else {}
            if "process_item_6" in steps and (tmp_path / "blocked").exists():
                break
            assert time.monotonic() < deadline, "the loop never reached item 5"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        process.kill()
    (run,) = Client().list_pipeline_runs(pipeline="read_each")
    deadline = time.monotonic() + 10
    while (run := Client().get_pipeline_run(run.id)).status == "running":
        assert time.monotonic() < deadline, "the killed run was never marked failed"
        time.sleep(0.2)
    (tmp_path / "go").touch()
    assert Client().resume_run(run.id) == sum(i * i for i in range(8))
    assert executions(tmp_path) == Counter(f"item {i}" for i in range(8))
    steps = Client().get_pipeline_run(run.id).steps
    assert steps["process_item_3"].attempt == 1  # read before the kill: taken over
    assert steps["process_item_6"].attempt == 2  # in flight at the kill
    configs = {name: s.configuration.config for name, s in steps.items()}
    for i in range(2, 9):  # each call records the one value read just before it
        assert configs[f"process_item_{i}"]["value_inputs"] == [
            "process_item" if i == 2 else f"process_item_{i - 1}"
        ]


def test_a_rerun_whose_graph_differs_runs_the_new_graph(tmp_path):
    """Divergence is an error on resume only: a fresh run with the same parameters that
    makes another graph runs it (the differing steps simply miss the cache)."""
    assert rp.switching(folder=str(tmp_path)) == 4  # variant_a
    (tmp_path / "use-b").touch()  # same parameters, but the body now decides otherwise
    assert rp.switching(folder=str(tmp_path)) == 5  # variant_b
    run = rp.switching.last_run
    assert run.status == "completed" and run.steps["item_count"].status == "cached"
    assert run.steps["second"].step_name == "variant_b"
    assert run.steps["second"].status == "completed"


def test_a_rerun_whose_body_feeds_a_step_other_inputs_recomputes_it(tmp_path):
    from branchwork import pipeline

    counter = iter(range(100))

    @pipeline
    def drifting():
        return rp.variant_a(rp.variant_a(next(counter)))  # a value from outside the inputs

    first = drifting()
    second = drifting()
    assert second != first
    assert drifting.last_run.steps["variant_a"].status == "completed"
