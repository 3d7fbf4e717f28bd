"""Pipeline-level hooks: on_start, on_success, on_failure and on_end, called once per run
session in the process that hosts the run's loop, with the run's context."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3

import hook_pipelines as hp
import pytest
from typer.testing import CliRunner

from branchwork import Client, PipelineHookContext, pipeline, step
from branchwork.cli.app import app
from branchwork.exceptions import ConfigurationError, PipelineHookError, PipelineRunFailedError
from processes import Spawned, python, python_env


def hook_lines(log):
    return [line for line in hp.lines(log) if "hook" in line]


@pytest.mark.parametrize("pipeline_obj", [hp.hooked_static, hp.hooked_dynamic])
def test_each_hook_runs_once_in_order_with_the_runs_context(tmp_path, local_flavor, pipeline_obj):
    log = tmp_path / "events.jsonl"
    assert pipeline_obj(log=str(log), x=1) == (2 if pipeline_obj is hp.hooked_static else 3)
    run = pipeline_obj.last_run
    steps = ["add_one"] * len(run.steps)
    order = [line.get("hook") or line["step"] for line in hp.lines(log)]
    assert order == ["on_start", *steps, "on_success", "on_end"]
    hooks = hook_lines(log)
    assert [h["status"] for h in hooks] == ["running", "completed", "completed"]
    for hook in hooks:
        assert hook["run_id"] == run.id and hook["run_name"] == run.name
        assert hook["pipeline"] == pipeline_obj.name
        assert hook["parameters"] == run.parameters == {"log": str(log), "x": 1, "fail_marker": ""}
        assert hook["error"] is None and hook["resumed"] is False
    # in the process that hosts the loop: the caller on local, the orchestration process else
    pids = {hook["pid"] for hook in hooks}
    assert len(pids) == 1
    assert (pids == {os.getpid()}) is (local_flavor == "local")
    assert run.hook_errors == ()


def test_a_failed_run_calls_on_failure_with_its_error_then_on_end(tmp_path, local_flavor):
    log, marker = tmp_path / "events.jsonl", tmp_path / "fail"
    marker.touch()
    with pytest.raises(PipelineRunFailedError):
        hp.hooked_dynamic(log=str(log), fail_marker=str(marker))
    failure, end = hook_lines(log)[1:]
    assert failure == {
        "hook": "on_failure",
        "status": "failed",
        "error": f"Refused: marker {marker} exists",
        "same_error": True,
        "pid": failure["pid"],
    }
    assert end["hook"] == "on_end" and end["status"] == "failed"
    assert end["error"] == repr(hp.Refused(f"marker {marker} exists"))
    assert hp.hooked_dynamic.last_run.hook_errors == ()


def test_on_start_that_raises_fails_the_run_before_any_step(tmp_path, local_flavor):
    log = tmp_path / "events.jsonl"
    with pytest.raises(PipelineRunFailedError) as info:
        hp.refused_start(log=str(log))
    cause = info.value.__cause__
    assert type(cause) is PipelineHookError
    run = hp.refused_start.last_run
    assert str(cause) == (
        f"Pipeline 'refused_start' run '{run.name}': its on_start hook hook_pipelines:refuse "
        "raised Refused: no licence for this run. No step ran; fix the hook, then resume the "
        f"run (branchwork runs resume {run.name})."
    )
    assert str(run.status) == "failed" and run.exception_type == "PipelineHookError"
    assert str(info.value) == (
        f"Pipeline 'refused_start' run '{run.name}' failed: PipelineHookError: {cause}"
    )
    assert run.steps == {}
    assert [line.get("hook") for line in hp.lines(log)] == ["on_failure", "on_end"]
    assert hp.lines(log)[0]["error"].startswith("PipelineHookError: ")
    (recorded,) = run.hook_errors
    assert recorded["hook"] == "on_start" and recorded["function"] == "hook_pipelines:refuse"
    assert recorded["exception_type"] == "Refused"
    assert recorded["message"] == "no licence for this run"
    assert "raise Refused" in recorded["traceback"]


def test_end_hooks_that_raise_are_recorded_and_leave_the_run_completed(
    tmp_path, local_flavor, caplog
):
    log = tmp_path / "events.jsonl"
    with caplog.at_level(logging.WARNING, logger="branchwork"):
        assert hp.broken_reports(log=str(log), x=4) == 5
    run = hp.broken_reports.last_run
    assert str(run.status) == "completed"
    assert [(e["hook"], e["exception_type"], e["message"]) for e in run.hook_errors] == [
        ("on_success", "ValueError", "cannot report on_success"),
        ("on_end", "ValueError", "cannot report on_end"),
    ]
    if local_flavor == "local":  # logged where the hook ran: here
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert (
            f"Pipeline 'broken_reports' run '{run.name}': its on_success hook "
            "hook_pipelines:broken_report raised ValueError: cannot report on_success; the "
            "run stays completed."
        ) in warnings
    shown = CliRunner().invoke(app, ["runs", "show", run.name], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "hook_pipelines:broken_report: ValueError: cannot report on_end" in shown.output


def test_a_resume_calls_on_start_again_as_resumed(tmp_path):
    log, marker = tmp_path / "events.jsonl", tmp_path / "fail"
    marker.touch()
    with pytest.raises(PipelineRunFailedError) as info:
        hp.hooked_static(log=str(log), fail_marker=str(marker))
    marker.unlink()
    assert Client().resume_run(info.value.run_id) == 2
    hooks = [(h["hook"], h["status"], h.get("resumed")) for h in hook_lines(log)]
    assert hooks == [
        ("on_start", "running", False),
        ("on_failure", "failed", None),
        ("on_end", "failed", False),
        ("on_start", "running", True),
        ("on_success", "completed", True),
        ("on_end", "completed", True),
    ]


def test_hooks_take_as_many_arguments_as_they_declare():
    calls = []

    @step
    def fails() -> int:
        raise hp.Refused("step failed")

    @pipeline(
        on_start=lambda: calls.append("bare start"),
        on_failure=lambda error: calls.append(f"failure {error}"),
        on_end=lambda context, *rest: calls.append(f"end {context.status} {rest}"),
        enable_cache=False,
    )
    def two_hooks() -> int:
        return fails()

    with pytest.raises(PipelineRunFailedError):
        two_hooks()
    assert calls == ["bare start", "failure step failed", "end failed ()"]


def test_on_start_calling_sys_exit_fails_the_run_and_calls_the_end_hooks(tmp_path, local_flavor):
    """SystemExit escaped the hook: on_failure and on_end never ran, and the run stayed
    `running` until it read lost."""
    log = tmp_path / "events.jsonl"
    with pytest.raises(PipelineRunFailedError) as info:
        hp.exiting_start(log=str(log))
    assert type(info.value.__cause__) is PipelineHookError
    assert "its on_start hook hook_pipelines:exits raised SystemExit: 3." in str(
        info.value.__cause__
    )
    run = hp.exiting_start.last_run
    assert (str(run.status), run.exception_type) == ("failed", "PipelineHookError")
    assert [line.get("hook") for line in hp.lines(log)] == ["on_failure", "on_end"]


def test_async_hooks_and_async_bodies_are_refused_where_declared():
    """An async hook was called and never awaited (its alert lost, a RuntimeWarning the
    only sign); an async body was a coroutine the run failed on, saying to use a step."""

    async def alert(error: BaseException | None) -> None: ...

    with pytest.raises(ConfigurationError) as refused:
        step(on_failure=alert)(lambda: 1)
    assert "on_failure must be a plain function, got the async function" in str(refused.value)
    with pytest.raises(ConfigurationError, match="Pipeline 'p': on_end must be a plain"):
        pipeline(name="p", on_end=alert)(lambda: None)
    with pytest.raises(ConfigurationError) as refused:

        @pipeline
        async def flow() -> None: ...

    assert str(refused.value) == (
        "@pipeline of 'flow': a pipeline's body is a plain function (its steps may be async "
        "def); it is called, not awaited. Make it a def."
    )


def test_the_context_is_public_and_hooks_must_be_callable():
    assert PipelineHookContext.__module__ == "branchwork.runtime.hooks"
    with pytest.raises(ConfigurationError, match="Pipeline 'nope': on_end must be a function"):

        @pipeline(on_end="notify")  # type: ignore[arg-type]
        def nope() -> None: ...


SLOW_START = """
import sys, time
from branchwork import pipeline, step

def warm_up(context):
    print("warming up", flush=True)
    time.sleep(60)

def report(error, context):
    print(f"on_failure {type(error).__name__} {context.status}", flush=True)

def clean_up(context):
    print(f"on_end {context.status}", flush=True)

@step
def one() -> int:
    return 1

@pipeline(on_start=warm_up, on_failure=report, on_end=clean_up, enable_cache=False)
def slow_start():
    return one()

slow_start()
"""


def test_ctrl_c_in_on_start_stops_the_run_and_calls_the_end_hooks(tmp_path):
    """on_end runs always: a Ctrl-C while on_start ran skipped on_failure and on_end (a
    cleanup there never ran)."""
    script = tmp_path / "slow_start.py"
    script.write_text(SLOW_START)
    home = tmp_path / "home"
    with Spawned(python(str(script)), env=python_env(home)) as process:
        assert process.process.stdout.readline() == "warming up\n"
        process.signal(signal.SIGINT)
        code, out, err = process.wait(60)
    assert code != 0 and err.rstrip().endswith("KeyboardInterrupt"), err
    assert out.splitlines() == ["on_failure KeyboardInterrupt stopped", "on_end stopped"]
    with sqlite3.connect(home / "branchwork.db") as conn:
        assert conn.execute("SELECT status FROM pipeline_run").fetchall() == [("stopped",)]
