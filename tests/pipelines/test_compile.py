"""Compiling a pipeline: static when its body only wires steps, dynamic when it uses a value;
what each kind records, and the errors found before (or instead of) a run."""

from __future__ import annotations

import inspect
import os
import textwrap
import time

import pytest

import branchwork
from branchwork import Client, pipeline, step
from branchwork.exceptions import (
    BranchworkError,
    ConfigurationError,
    DynamicValueUsedError,
    PipelineDefinitionError,
    PipelineRunFailedError,
)


@step
def load(n: int) -> int:
    return n


@step
def double(x: int) -> int:
    return 2 * x


@step
def describe(x: int) -> str:
    return f"value {x}"


@pipeline
def wiring_only(n: int = 3):
    first = load(n)
    second = double(first)
    return describe(second)


@pipeline
def branching(n: int = 3):
    size = load(n)
    if size > 2:
        return double(size)
    return describe(size)


def _assert_static_configurations(run, invocation_ids):
    snapshot = run.snapshot
    assert set(snapshot.step_configurations) == set(invocation_ids)
    assert set(run.steps) == set(invocation_ids)
    for invocation_id, step_run in run.steps.items():
        configuration = step_run.configuration
        assert configuration is not None
        assert configuration.name == invocation_id
        assert configuration.snapshot_id == snapshot.id
        assert configuration.step_run_id is None


def _assert_dynamic_configurations(run, invocation_ids):
    assert set(run.steps) == set(invocation_ids)
    assert run.snapshot.step_configurations == {}
    for invocation_id, step_run in run.steps.items():
        configuration = step_run.configuration
        assert configuration is not None
        assert configuration.name == invocation_id
        assert configuration.step_run_id == step_run.id
        assert configuration.snapshot_id is None


# ---- static or dynamic ---------------------------------------------------------------------


def test_wiring_only_pipeline_is_static_with_configurations_on_the_snapshot():
    assert wiring_only(n=4) == "value 8"
    run = wiring_only.last_run
    assert run.status == "completed"
    assert run.snapshot.is_dynamic is False
    _assert_static_configurations(run, ["load", "double", "describe"])
    config = run.snapshot.step_configurations["double"]
    assert config.step_name == "double"
    assert config.config["inputs"] == {"x": {"$ref": "load", "output": "output"}}
    assert run.snapshot.step_configurations["load"].config["inputs"] == {"n": 4}


def test_branching_pipeline_is_dynamic_with_configurations_per_step_run():
    assert branching(n=5) == 10
    run = branching.last_run
    assert run.status == "completed"
    assert run.snapshot.is_dynamic is True
    _assert_dynamic_configurations(run, ["load", "double"])
    assert run.steps["double"].configuration.config["inputs"] == {
        "x": {"$ref": "load", "output": "output"}
    }


def test_branching_pipeline_takes_the_branch_the_value_selects():
    assert branching(n=1) == "value 1"
    assert set(branching.last_run.steps) == {"load", "describe"}


def test_value_use_swallowed_by_except_exception_is_still_dynamic():
    @pipeline
    def guarded():
        size = load(5)
        try:
            if size > 2:
                return double(size)
        except Exception:
            pass
        return describe(size)

    assert guarded() == 10
    run = guarded.last_run
    assert run.snapshot.is_dynamic is True
    _assert_dynamic_configurations(run, ["load", "double"])


def test_value_use_swallowed_by_bare_except_is_still_dynamic():
    @pipeline
    def swallowing():
        size = load(1)
        try:
            if size > 2:
                return double(size)
        except:  # noqa: E722 - exactly what is being tested
            pass
        return describe(size)

    assert swallowing() == "value 1"
    run = swallowing.last_run
    assert run.snapshot.is_dynamic is True
    _assert_dynamic_configurations(run, ["load", "describe"])


def test_declared_dynamic_pipeline_records_dynamic_even_if_wiring_only():
    forced = pipeline(dynamic=True)(wiring_only.func)
    assert forced(n=1) == "value 2"
    run = forced.last_run
    assert run.snapshot.is_dynamic is True
    _assert_dynamic_configurations(run, ["load", "double", "describe"])


def test_declared_static_pipeline_that_uses_a_value_is_refused_before_running():
    @pipeline(dynamic=False)
    def must_be_static():
        size = load(5, id="sizer")
        if size > 2:  # value-use-line
            double(size)

    source, first_line = inspect.getsourcelines(must_be_static.func)
    offset = next(i for i, line in enumerate(source) if "value-use-line" in line)
    location = f"{__file__}:{first_line + offset}"

    with pytest.raises(DynamicValueUsedError) as info:
        must_be_static()
    message = str(info.value)
    assert "'must_be_static'" in message
    assert "'sizer'" in message
    assert location in message
    assert isinstance(info.value, PipelineDefinitionError)
    assert Client().list_pipeline_runs() == []


def test_value_use_location_in_a_package_named_like_branchwork():
    package_dir = os.path.dirname(os.path.abspath(branchwork.__file__))
    filename = os.path.join(package_dir + "_userflows", "flows.py")
    source = textwrap.dedent(
        """\
        from branchwork import pipeline, step

        @step
        def measure() -> int:
            return 5

        @pipeline(dynamic=False)
        def user_flow():
            size = measure()
            if size > 2:
                measure()
        """
    )
    line = source.splitlines().index("    if size > 2:") + 1
    namespace: dict = {}
    exec(compile(source, filename, "exec"), namespace)

    with pytest.raises(DynamicValueUsedError) as info:
        namespace["user_flow"]()
    assert f"{filename}:{line}" in str(info.value)


def test_declared_static_wiring_only_pipeline_runs_static():
    static = pipeline(dynamic=False)(wiring_only.func)
    assert static(n=2) == "value 4"
    assert static.last_run.snapshot.is_dynamic is False


# ---- parameters ----------------------------------------------------------------------------


def test_parameters_are_recorded_on_snapshot_and_run():
    @pipeline
    def parametrized(n: int, label: str = "default", tags: list | None = None):
        return load(n)

    assert parametrized(7, tags=["a", "b"]) == 7
    run = parametrized.last_run
    expected = {"n": 7, "label": "default", "tags": ["a", "b"]}
    assert run.parameters == expected
    assert run.snapshot.parameters == expected


def test_parameter_that_is_not_json_is_refused_before_running():
    @pipeline
    def takes_object(config):
        return load(1)

    with pytest.raises(ConfigurationError) as info:
        takes_object(config=object())
    message = str(info.value)
    assert "'takes_object'" in message
    assert "parameter 'config'" in message
    assert Client().list_pipeline_runs() == []


def test_wrong_pipeline_arguments_are_a_configuration_error():
    with pytest.raises(ConfigurationError, match="wiring_only"):
        wiring_only(m=1)
    assert Client().list_pipeline_runs() == []


# ---- what a pipeline may return ------------------------------------------------------------


@pytest.mark.parametrize("returned", [5, {"a": 1}, "text"], ids=["int", "dict", "str"])
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_returning_a_plain_value_fails_the_run(returned, dynamic):
    @pipeline
    def returns_plain():
        out = load(1)
        if dynamic and out > 5:
            double(out)
        return returned

    with pytest.raises(PipelineRunFailedError) as info:
        returns_plain()
    assert "may only return step outputs" in str(info.value)
    assert isinstance(info.value.__cause__, PipelineDefinitionError)
    where = " at 'a' of what it returned" if returned == {"a": 1} else ""
    assert f"returned a {type(1 if where else returned).__name__} " in str(info.value)
    assert f"{where}; a pipeline may only return" in str(info.value)
    run = returns_plain.last_run
    assert run.snapshot.is_dynamic is dynamic
    assert run.status == "failed"
    assert run.exception_type == "PipelineDefinitionError"
    assert info.value.run_id == run.id


# ---- pipelines inside pipelines ------------------------------------------------------------


def test_calling_a_pipeline_inside_a_pipeline_runs_it_as_a_child_run():
    """(tests/pipelines/test_nested_pipelines.py has the rest.)"""

    @pipeline
    def outer():
        load(1)
        wiring_only()

    outer()
    (child,) = Client().list_pipeline_runs(pipeline="wiring_only")
    assert (child.parent_run_id, child.parent_invocation_id) == (outer.last_run.id, "wiring_only")
    assert outer.last_run.status == child.status == "completed"


# ---- reading runs back ---------------------------------------------------------------------


def test_last_run_before_any_run_is_a_configuration_error():
    @pipeline
    def never_run():
        load(1)

    with pytest.raises(ConfigurationError, match="'never_run' has not been run"):
        _ = never_run.last_run


def test_runs_are_listed_newest_first():
    for n in (1, 2, 3):
        wiring_only(n=n)
        time.sleep(0.002)
    branching(n=1)

    runs = Client().list_pipeline_runs(pipeline="wiring_only")
    assert [run.parameters["n"] for run in runs] == [3, 2, 1]
    assert all(run.pipeline_name == "wiring_only" for run in runs)
    assert [run.id for run in Client().list_pipeline_runs(pipeline="wiring_only", limit=2)] == [
        runs[0].id,
        runs[1].id,
    ]
    assert wiring_only.last_run.id == runs[0].id
    everything = Client().list_pipeline_runs()
    assert len(everything) == 4
    assert everything[0].pipeline_name == "branching"


def test_get_pipeline_run_by_id_or_name():
    wiring_only(n=2)
    run = wiring_only.last_run
    client = Client()
    by_id = client.get_pipeline_run(run.id)
    by_name = client.get_pipeline_run(run.name)
    assert by_id.id == by_name.id == run.id
    assert by_name.name == run.name
    assert by_id.load_output() == "value 4"
    with pytest.raises(BranchworkError, match="no-such-run"):
        client.get_pipeline_run("no-such-run")
