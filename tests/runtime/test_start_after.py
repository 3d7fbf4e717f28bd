"""`start_after=`: a step (a sidecar, a monitor) starts once the named steps have started,
not finished. The engine decides it on the event of a launch; if a named step never starts,
neither does the sidecar."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from scheduling import ORCHESTRATORS, added, drive, engine, launched, on
from typer.testing import CliRunner

from branchwork import pipeline, step
from branchwork.cli.app import app
from branchwork.exceptions import PipelineRunFailedError, StepInvocationError
from branchwork.runtime.engine import State
from branchwork.runtime.events import FailureMode, Finished, GaveUp, KeyComputed, NotRun

# ---- the engine, command by command ----------------------------------------------------------


def test_a_sidecar_starts_when_its_step_launches_not_when_it_finishes():
    core = engine()
    assert launched(drive(core, added("load"), added("train", ["load"]))) == ["load"]
    assert drive(core, added("monitor", start_after=("train",))) == []
    assert core.state("monitor") is State.WAITING
    # train launching is what lets monitor go: both launch on the same event
    assert launched(drive(core, Finished("load", True))) == ["train", "monitor"]
    assert core.state("train") is State.RUNNING
    drive(core, Finished("monitor", True), Finished("train", True))
    assert core.idle


def test_a_sidecar_of_a_running_step_has_its_key_computed_at_once():
    core = engine()
    drive(core, added("train"))
    commands = core.handle(added("monitor", start_after=("train",)))
    assert [type(c).__name__ for c in commands] == ["ComputeKey"]
    assert launched(core.handle(KeyComputed("monitor", "k"))) == ["monitor"]


def test_a_step_served_from_the_cache_counts_as_started():
    core = engine()
    commands = core.handle(added("train", cacheable=True), added("monitor", start_after=("train",)))
    assert [type(c).__name__ for c in commands] == ["ComputeKey"]  # monitor waits
    hit = core.handle(KeyComputed("train", "k", hit="cached train", hit_finished=0.0))
    assert [type(c).__name__ for c in hit] == ["UseCached", "ComputeKey"]
    assert launched(core.handle(KeyComputed("monitor", "k2"))) == ["monitor"]


def test_a_sidecar_waits_for_every_step_it_names_and_for_its_data():
    core = engine()
    drive(core, added("a"), added("b"))
    drive(core, Finished("b", True))
    drive(core, added("c", ["b"]))
    sidecar = added("monitor", ["c"], start_after=("a", "c"))
    assert launched(drive(core, sidecar)) == []  # a started, c launched but not done
    assert launched(drive(core, Finished("c", True))) == ["monitor"]


def test_a_sidecar_of_a_step_that_never_starts_is_not_run():
    core = engine(mode=FailureMode.CONTINUE_ON_FAILURE)
    drive(core, added("load"), added("train", ["load"]), added("monitor", start_after=("train",)))
    commands = drive(core, Finished("load", False, retryable=False))
    assert commands == [GaveUp("load"), NotRun("train", "load"), NotRun("monitor", "load")]
    # called later, it is not run either, for the step that never started
    assert drive(core, added("monitor_2", start_after=("train",))) == [NotRun("monitor_2", "train")]
    assert core.idle


def test_a_sidecar_of_a_step_that_started_then_failed_still_runs_on_continue_on_failure():
    core = engine(mode=FailureMode.CONTINUE_ON_FAILURE)
    drive(core, added("train"))
    assert drive(core, Finished("train", False, retryable=False)) == [GaveUp("train")]
    assert launched(drive(core, added("monitor", start_after=("train",)))) == ["monitor"]


def test_a_sidecar_waiting_when_the_run_stops_on_a_failure_is_not_run():
    core = engine(workers=1)
    drive(core, added("busy"), added("train"), added("monitor", start_after=("train",)))
    commands = drive(core, Finished("busy", False, retryable=False))
    assert commands == [GaveUp("busy"), NotRun("train", "busy"), NotRun("monitor", "busy")]


# ---- real runs -------------------------------------------------------------------------------


def wait_for(path: Path) -> None:
    deadline = time.time() + 60
    while not path.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{path.name} never came")
        time.sleep(0.02)


@step(enable_cache=False)
def train(folder: str) -> str:
    """Runs until its monitor has seen it running: were the monitor to wait for it to
    finish, it would time out."""
    Path(folder, "train.started").touch()
    wait_for(Path(folder, "monitor.saw_train"))
    return "trained"


@step(enable_cache=False)
def monitor(folder: str) -> str:
    wait_for(Path(folder, "train.started"))
    Path(folder, "monitor.saw_train").touch()
    return "watched"


@step(enable_cache=False)
def broken() -> int:
    raise ValueError("no data today")


@step(enable_cache=False)
def train_on(data: int, folder: str) -> str:
    return "never"


@pipeline(enable_cache=False)
def with_monitor(folder: str):
    model = train(folder)
    seen = monitor(folder, start_after=model)
    return model, seen


@pipeline(enable_cache=False, failure_mode="continue_on_failure")
def monitor_of_a_step_that_never_starts(folder: str):
    model = train_on(broken(), folder)
    return monitor(folder, start_after=model)


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_a_monitor_runs_while_the_step_it_watches_runs(tmp_path, flavor):
    with on(flavor):
        assert with_monitor(str(tmp_path)) == ("trained", "watched")
    run = with_monitor.last_run
    assert {name: str(s.status) for name, s in run.steps.items()} == {
        "train": "completed",
        "monitor": "completed",
    }
    trained, watched = run.steps["train"], run.steps["monitor"]
    assert watched.start_time >= trained.start_time
    # it ran while train ran: train ends only once monitor has seen it (the two may then
    # finish in either order, CI saw monitor's end recorded 2 ms after train's)
    assert watched.start_time < trained.end_time
    assert watched.configuration.config["start_after"] == ["train"]
    assert watched.parent_step_run_ids == ()  # an order, not data
    graph = CliRunner().invoke(app, ["runs", "graph", run.name, "-f", "text"])
    assert graph.exit_code == 0, graph.output
    assert re.search(r"train .*\n.*└── monitor", graph.output), graph.output


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_the_monitor_of_a_step_that_never_starts_is_not_run(tmp_path, flavor):
    with on(flavor), pytest.raises(PipelineRunFailedError) as info:
        monitor_of_a_step_that_never_starts(str(tmp_path))
    assert "no data today" in str(info.value.__cause__)
    run = monitor_of_a_step_that_never_starts.last_run
    assert {name: str(s.status) for name, s in run.steps.items()} == {"broken": "failed"}
    assert not Path(tmp_path, "monitor.saw_train").exists()


@pytest.mark.parametrize(
    ("start_after", "message"),
    [
        (
            "nope",
            "Pipeline 'dangling': step 'monitor' (invocation 'monitor') starts after 'nope', "
            "which is not an earlier step of this run.",
        ),
        (
            "monitor_2",  # a later invocation
            "Pipeline 'dangling': step 'monitor' (invocation 'monitor') starts after "
            "'monitor_2', which is not an earlier step of this run.",
        ),
        (
            3,
            "Pipeline 'dangling': step 'monitor' (invocation 'monitor'): start_after= takes "
            "step outputs or invocation ids, got int",
        ),
    ],
)
def test_start_after_names_an_earlier_step(tmp_path, start_after, message):
    @pipeline(name="dangling")
    def dangling():
        monitor(str(tmp_path), start_after=start_after)
        monitor(str(tmp_path))

    with pytest.raises(PipelineRunFailedError) as info:
        dangling()
    cause = info.value.__cause__
    assert isinstance(cause, StepInvocationError)
    assert str(cause) == message
