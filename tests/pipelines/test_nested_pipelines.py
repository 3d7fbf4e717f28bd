"""Pipelines called inside a running pipeline: child runs (a call waits for its value,
`.submit()` runs children side by side), linked to the parent run and the calling
invocation, on the local orchestrators; `.embed()` runs a child's steps in the parent run;
resuming a parent resumes its failed child run, not a new one."""

from __future__ import annotations

import json
from typing import Any

import nested_pipelines as np_
import pytest

from branchwork import Client
from branchwork.exceptions import ConfigurationError, PipelineRunFailedError


def children_of(run_id: str) -> list:
    return Client().list_child_runs(run_id)


def test_children_run_as_child_runs_and_an_embedded_one_in_the_parent(local_flavor):
    assert np_.parent(n=4) == 6 + 10 + 15 + 6
    run = np_.parent.last_run
    assert sorted(run.steps) == [
        "add",
        "child_sum",
        "child_sum.add",
        "child_sum.numbers",
        "child_sum_2",
        "third",
    ]
    statuses = {name: str(s.status) for name, s in run.steps.items()}
    # the embedded steps are the parent's: add(numbers(4)) was computed by the first child
    assert statuses.pop("child_sum.numbers") == statuses.pop("child_sum.add") == "cached"
    assert set(statuses.values()) == {"completed"}
    children = children_of(run.id)  # the two submitted ones start in either order
    assert {c.parent_invocation_id: c.snapshot.parameters for c in children} == {
        "child_sum": {"n": 4},
        "child_sum_2": {"n": 5},
        "third": {"n": 6},
    }
    assert {c.parent_run_id for c in children} == {run.id}
    assert {(c.snapshot.pipeline_name, str(c.status)) for c in children} == {
        ("child_sum", "completed")
    }
    assert all(sorted(c.steps) == ["add", "numbers"] for c in children)
    assert run.steps["third"].output.load() == 15  # the child's value is the invocation's


def test_a_static_parent_submits_its_children(local_flavor):
    assert np_.static_parent(n=3) == 6
    run = np_.static_parent.last_run
    assert run.snapshot.is_dynamic is False
    assert len(children_of(run.id)) == 2


def test_a_rerun_makes_new_child_runs_whose_steps_come_from_the_cache():
    np_.parent(n=2)
    np_.parent(n=2)
    run = np_.parent.last_run
    for child in children_of(run.id):
        assert {str(s.status) for s in child.steps.values()} == {"cached"}
        call = run.steps[child.parent_invocation_id]
        assert (call.cache_verdict, call.cache_reason) == (
            "off",
            "a call of a pipeline: its child run's steps are cached, not the call",
        )


@pytest.mark.parametrize(
    ("options", "verdict"),
    [
        ({"enable_cache": False}, "off"),
        ({"refresh": True}, "refresh"),
        ({"refresh": ["add"]}, "refresh"),  # a step only the children call
    ],
)
def test_a_parents_cache_options_reach_its_child_runs_steps(options: dict, verdict: str):
    """`--no-cache`, `--refresh` and `--refresh-step` of the parent: the child runs' steps
    were served from the cache."""
    np_.parent(n=2)
    assert np_.parent.with_options(**options)(n=2) == 1 + 3 + 6 + 1
    run = np_.parent.last_run
    for child in children_of(run.id):
        assert {s.cache_verdict for s in child.steps.values()} >= {verdict}
        assert str(child.steps["add"].status) == "completed"
        assert child.steps["add"].cache_verdict == verdict


def test_resuming_a_parent_resumes_its_failed_child_run(local_flavor, tmp_path, monkeypatch):
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv(np_.FAIL_FLAG, str(flag))
    with pytest.raises(PipelineRunFailedError) as info:
        np_.parent_of_fragile(n=3)
    assert "fragile failed on 3" in str(info.value)
    failed = np_.parent_of_fragile.last_run
    (child,) = [c for c in children_of(failed.id) if c.snapshot.pipeline_name == "child_fragile"]
    assert str(child.status) == "failed" and child.parent_invocation_id == "child_fragile"
    assert str(failed.steps["child_fragile"].status) == "failed"

    flag.unlink()
    assert Client().resume_run(failed.id) == 30 + 3
    resumed = children_of(failed.id)
    fragile_runs = [c for c in resumed if c.snapshot.pipeline_name == "child_fragile"]
    assert [(c.id, str(c.status)) for c in fragile_runs] == [(child.id, "completed")]
    statuses = {name: str(s.status) for name, s in fragile_runs[0].steps.items()}
    assert statuses == {"numbers": "completed", "add": "completed", "fragile": "completed"}


def test_submit_and_embed_outside_a_running_pipeline_are_refused():
    for method in ("submit", "embed"):
        with pytest.raises(ConfigurationError) as info:
            getattr(np_.child_sum, method)(3)
        assert str(info.value) == (
            f"Pipeline 'child_sum': .{method}() works inside a running pipeline only; "
            "call child_sum(...) to run it."
        )


def test_a_child_called_with_a_bad_argument_fails_at_the_call():
    from branchwork import pipeline

    @pipeline
    def bad_parent() -> int:
        return np_.child_sum(m=3)

    with pytest.raises(PipelineRunFailedError) as info:
        bad_parent()
    assert "step 'child_sum' (invocation 'child_sum') cannot be called this way" in str(
        info.value.__cause__
    )
    assert children_of(bad_parent.last_run.id) == []


def test_a_pipeline_may_call_itself_a_bounded_number_of_times(monkeypatch):
    monkeypatch.setenv("BRANCHWORK_MAX_DEPTH", "4")
    assert np_.countdown(n=3) == 0
    runs = Client().list_pipeline_runs(pipeline="countdown")
    assert len(runs) == 4
    assert sorted(r.snapshot.parameters["n"] for r in runs) == [0, 1, 2, 3]
    assert {str(r.status) for r in runs} == {"completed"}


def test_a_pipeline_that_calls_itself_without_end_stops_at_the_depth_limit(monkeypatch):
    monkeypatch.setenv("BRANCHWORK_MAX_DEPTH", "4")
    with pytest.raises(PipelineRunFailedError) as info:
        np_.endless(n=0)
    runs = Client().list_pipeline_runs(pipeline="endless")
    assert len(runs) == 5  # the top-level run and 4 levels of children
    assert {str(r.status) for r in runs} == {"failed"}
    deepest = max(runs, key=lambda r: r.snapshot.parameters["n"])
    assert deepest.snapshot.parameters == {"n": 4}
    assert (
        "Pipeline 'endless' (invocation 'endless' of run "
        f"'{deepest.name}') would be a child run 5 levels deep (the limit, "
        "$BRANCHWORK_MAX_DEPTH, is 4): does a pipeline call itself without end?"
    ) in str(info.value)


def test_deleting_a_parent_run_keeps_its_children_readable():
    """`runs show CHILD` failed with 'No pipeline run with id ...' (the deleted parent's id,
    which the user never typed) once the parent was deleted."""
    from typer.testing import CliRunner

    from branchwork.cli.app import app

    np_.static_parent(2)
    parent = np_.static_parent.last_run
    children = Client().list_child_runs(parent)
    cli = CliRunner()
    deleted = cli.invoke(app, ["runs", "delete", parent.name, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert (
        "Its 2 child runs stay (`branchwork runs delete` each to remove them too)."
        in deleted.stdout.splitlines()
    )
    shown = cli.invoke(app, ["runs", "show", children[0].name])
    assert shown.exit_code == 0, shown.output
    assert (
        f"Child of a deleted run (id {parent.id}, invocation {children[0].parent_invocation_id})"
        in shown.stdout
    )
    data = json.loads(cli.invoke(app, ["runs", "show", children[0].name, "-o", "json"]).stdout)
    assert data["parent"] == {
        "id": parent.id,
        "name": None,
        "pipeline": None,
        "invocation": children[0].parent_invocation_id,
    }


def test_embedding_with_a_bad_argument_names_the_pipeline_and_its_signature():
    """It was Python's bare "child_sum() missing 1 required positional argument"."""
    from branchwork import pipeline

    @pipeline
    def embeds_badly() -> int:
        return np_.child_sum.embed()

    with pytest.raises(PipelineRunFailedError) as info:
        embeds_badly()
    assert str(info.value.__cause__) == (
        "Pipeline 'child_sum' cannot be embedded this way: missing a required argument: 'n'. "
        "Its signature is child_sum(n: 'int') -> 'Any'."
    )


def test_embedded_arguments_are_checked_and_converted_as_a_call_s_are():
    """`.embed()` only bound them: `dry_run="false"` reached the body as a truthy str (a call
    converts it to False), and `lr="x"` failed later inside a step."""
    from branchwork import pipeline, step

    @step
    def shown(x: Any) -> str:
        return repr(x)

    @pipeline
    def child(lr: float, dry_run: bool = False) -> Any:
        return shown("dry run" if dry_run else lr)

    @pipeline(enable_cache=False)
    def outer() -> Any:
        return child(lr=1, dry_run="false"), child.embed(lr=1, dry_run="false")

    assert outer() == ("1.0", "1.0")

    @pipeline
    def embeds_a_bad_value() -> Any:
        return child.embed(lr="x")

    with pytest.raises(PipelineRunFailedError) as info:
        embeds_a_bad_value()
    assert "parameter 'lr' expects float, got 'x'" in str(info.value.__cause__)

    @pipeline(enable_cache=False)
    def embeds_a_future() -> Any:
        return child.embed(lr=np_.add([1, 2]))  # a step's output goes in as it is

    assert embeds_a_future() == "3"


def test_a_failure_stops_the_child_runs_still_running_as_the_failure_mode_says():
    """A sibling child run went on launching its steps, one after another, while the parent
    (fail_fast or stop_on_failure: nothing new starts) waited for it."""
    import time

    from branchwork import pipeline, step

    @step(enable_cache=False)
    def work(x: int) -> int:
        time.sleep(0.2)
        if x < 0:
            raise ValueError("bad input")
        return x

    @pipeline(enable_cache=False)
    def failing() -> Any:
        return work(-1)

    @pipeline(enable_cache=False)
    def chain(n: int) -> Any:
        x = 0
        for _ in range(n):
            x = int(work(x + 1))  # one step after another
        return work(x)

    modes = ("fail_fast", "stopped"), ("stop_on_failure", "stopped")
    for mode, status in (*modes, ("continue_on_failure", "completed")):

        @pipeline(enable_cache=False, failure_mode=mode)
        def parent_of_both() -> Any:
            return failing.submit(), chain.submit(8)

        with pytest.raises(PipelineRunFailedError):
            parent_of_both()
        children = Client().list_child_runs(parent_of_both.last_run.id)
        sibling = next(c for c in children if c.parent_invocation_id == "chain")
        assert sibling.status == status, mode
        assert (len(sibling.steps) < 9) == (status == "stopped"), mode
