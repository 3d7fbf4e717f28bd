"""Failure modes, hooks, retries at pipeline level, and bad input that must fail clearly."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from branchwork import Client, pipeline, step
from branchwork.artifact_stores.inline import INLINE_LIMIT
from branchwork.config import StepRetryConfig
from branchwork.exceptions import (
    ArtifactError,
    PipelineRunFailedError,
    StepFailedError,
    StoreUnavailableError,
)


class Broken(RuntimeError):
    pass


@step
def fine(x: int) -> int:
    return x


@step
def broken(x: int) -> int:
    raise Broken(f"broken {x}")


@step
def slowly(x: int) -> int:
    time.sleep(0.3)
    return x


def run_failing(pipeline_obj, **params):
    with pytest.raises(PipelineRunFailedError) as info:
        pipeline_obj(**params)
    return info.value, Client().get_pipeline_run(info.value.run_id)


def test_continue_on_failure_runs_everything_that_does_not_depend_on_the_failure():
    @pipeline(failure_mode="continue_on_failure", enable_cache=False)
    def branches():
        bad = broken(1)
        fine(bad)  # depends on the failure: not run
        return [slowly(i) for i in range(3)]

    error, run = run_failing(branches)
    assert isinstance(error.__cause__, Broken)
    assert run.failed_step == "broken"
    assert {n: str(s.status) for n, s in run.steps.items()} == {
        "broken": "failed",
        "slowly": "completed",
        "slowly_2": "completed",
        "slowly_3": "completed",
    }


def test_stop_on_failure_surfaces_an_unawaited_failure_at_the_next_step_call():
    seen = {}

    @pipeline(dynamic=True, enable_cache=False)
    def unawaited():
        broken(1)  # nobody looks at this future
        time.sleep(0.5)
        try:
            fine(2)
        except StepFailedError as error:
            seen["error"] = error
            raise

    error, run = run_failing(unawaited)
    assert seen["error"].invocation_id == "broken"
    assert "fine" not in run.steps


def test_fail_fast_kills_running_isolated_steps(tmp_path):
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    sys.path.insert(0, str(Path(__file__).parent))
    import resumable_pipelines as rp  # noqa: F401 - importable for the orchestration process

    stack = Stack(
        "lp", LocalProcessOrchestrator(failure_mode="fail_fast"), get_active_stack().artifact_store
    )
    start = time.monotonic()
    with active_stack(stack), pytest.raises(PipelineRunFailedError) as info:
        failing_fast(folder=str(tmp_path))
    assert time.monotonic() - start < 30  # the 60 s sleeper was killed, not waited for
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.failed_step == "explode_soon"
    assert run.steps["sleep_long"].status == "failed"
    assert "SIGKILL" in run.steps["sleep_long"].exception_message


@step(runtime="isolated")
def sleep_long(folder: str) -> int:
    time.sleep(60)
    return 0


@step(runtime="isolated")
def explode_soon(folder: str) -> int:
    time.sleep(0.5)
    raise Broken("soon")


@pipeline(dynamic=True, enable_cache=False)
def failing_fast(folder: str):
    return [sleep_long(folder), explode_soon(folder)]


def test_step_and_pipeline_hooks_receive_the_outcome():
    events = []

    @step(
        on_failure=lambda error: events.append(("step failed", str(error))),
        on_success=lambda: events.append(("step ok", None)),
    )
    def watched(fail: bool) -> int:
        if fail:
            raise Broken("watched failed")
        return 1

    @pipeline(
        on_failure=lambda error: events.append(("pipeline failed", type(error).__name__)),
        on_success=lambda: events.append(("pipeline ok", None)),
        enable_cache=False,
    )
    def hooked(fail: bool):
        return watched(fail)

    hooked(fail=False)
    assert events == [("step ok", None), ("pipeline ok", None)]
    events.clear()
    run_failing(hooked, fail=True)
    assert events == [("step failed", "watched failed"), ("pipeline failed", "Broken")]


def test_a_step_that_exits_calls_its_on_failure_hook_on_each_attempt():
    """A step failed by `sys.exit()` was recorded failed and retried, its hook never called."""
    seen = []

    @step(
        on_failure=lambda error: seen.append(repr(error)),
        retry=StepRetryConfig(max_retries=1, delay=0),
    )
    def validate() -> int:
        sys.exit("schema check failed")

    @pipeline(enable_cache=False)
    def validating():
        return validate()

    run_failing(validating)
    assert seen == ["SystemExit('schema check failed')"] * 2


def test_a_hook_that_raises_does_not_change_the_outcome(caplog):
    def bad_hook():
        raise ValueError("hook bug")

    @step(on_success=bad_hook)
    def fine_step() -> int:
        return 3

    @pipeline(enable_cache=False)
    def with_bad_hook():
        return fine_step()

    assert with_bad_hook() == 3
    hook = f"{__name__}:test_a_hook_that_raises_does_not_change_the_outcome.<locals>.bad_hook"
    assert [r.getMessage() for r in caplog.records if "raised; ignored" in r.getMessage()] == [
        f"Hook {hook} (on_success of step 'fine_step') raised; ignored"  # no memory address
    ]


def test_a_hook_that_exits_leaves_the_steps_own_outcome():
    """`sys.exit()` in an on_failure hook replaced the step's exception as its error."""

    @step(on_failure=lambda: sys.exit(3))
    def failing_step() -> int:
        raise Broken("the step's own error")

    @step(on_success=lambda: sys.exit(4))
    def fine_step() -> int:
        return 5

    @pipeline(enable_cache=False)
    def with_exiting_hooks():
        return fine_step(), failing_step()

    _, run = run_failing(with_exiting_hooks)
    assert (run.failed_step, run.exception_type) == ("failing_step", "Broken")
    assert run.steps["fine_step"].status == "completed"


def test_pipeline_level_retry_applies_to_steps_without_their_own():
    attempts = []

    @step
    def flaky_once() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise Broken("first try")
        return len(attempts)

    @pipeline(retry=StepRetryConfig(max_retries=1), enable_cache=False)
    def retried():
        return flaky_once()

    assert retried() == 2
    assert [str(a.status) for a in retried.last_run.attempts] == ["retried", "completed"]


def test_an_output_that_does_not_match_its_annotation_fails_the_step():
    @step
    def says_int() -> int:
        return "not an int"  # type: ignore[return-value]

    @pipeline
    def mismatched():
        return says_int()

    error, run = run_failing(mismatched)
    assert "output 'output' is annotated int but the step returned a str" in str(error)
    assert run.steps["says_int"].status == "failed"


def test_an_artifact_deleted_from_the_store_fails_the_reading_step_clearly(tmp_path):
    marker = tmp_path / "deleted"

    @step
    def produce() -> dict:
        return {"a": "x" * INLINE_LIMIT}  # over the limit: a file in the artifact store

    @step
    def consume(data: dict) -> int:
        return len(data)

    @pipeline(dynamic=True, enable_cache=False)
    def produce_then_consume():
        data = produce()
        data.wait()
        run = Client().list_pipeline_runs(pipeline="produce_then_consume")[0]
        uri = run.steps["produce"].output.uri
        for file in Path(uri).iterdir():
            file.unlink()
        marker.write_text(uri)
        return consume(data)

    error, run = run_failing(produce_then_consume)
    cause = error.__cause__
    assert isinstance(cause, ArtifactError)
    assert marker.read_text() in str(cause) and "missing from the artifact store" in str(cause)
    assert run.steps["produce"].status == "completed"
    assert run.steps["consume"].status == "failed"


def test_a_locked_store_gives_a_clear_error_and_no_half_written_run(branchwork_home, monkeypatch):
    @pipeline
    def simple():
        return fine(1)

    simple()  # creates the store
    monkeypatch.setenv("BRANCHWORK_SQLITE_BUSY_TIMEOUT", "0.3")
    monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", "1")
    from branchwork.metadata.store import dispose_engines

    dispose_engines()
    holder = sqlite3.connect(branchwork_home / "branchwork.db")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(
            StoreUnavailableError, match="while creating the run: database is locked"
        ):
            simple()
    finally:
        holder.rollback()
        holder.close()
    assert len(Client().list_pipeline_runs(pipeline="simple")) == 1


def test_two_processes_running_pipelines_on_one_store_both_complete(tmp_path):
    script = tmp_path / "two_writers.py"
    script.write_text(
        "import sys\n"
        "from branchwork import pipeline, step\n"
        "@step\ndef part(i: int, tag: str) -> int:\n    return i\n"
        "@step\ndef total(xs: list) -> int:\n    return sum(xs)\n"
        "@pipeline\ndef busy(tag: str):\n    return total([part(i, tag) for i in range(40)])\n"
        "print(busy(tag=sys.argv[1]))\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), tag],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for tag in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120)[0].strip() for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    assert outputs == ["780", "780"]
    runs = Client().list_pipeline_runs(pipeline="busy")
    assert [str(r.status) for r in runs] == ["completed", "completed"]
    assert all(len(r.steps) == 41 for r in runs)
