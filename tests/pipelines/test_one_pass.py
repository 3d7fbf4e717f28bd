"""A pipeline body runs once per run where its loop runs in the caller's process: telling
static from dynamic and running are one pass. A real `python script.py` counts its prints."""

from __future__ import annotations

import pytest

from branchwork import Client, pipeline, step
from branchwork.exceptions import PipelineRunFailedError
from processes import Spawned, python, python_env

SCRIPT = """
import os, sys
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

@step
def count() -> int:
    return 3

@step
def square(i: int) -> int:
    return i * i

@step
def total(values: list) -> int:
    return sum(values)

@pipeline(dynamic=None if os.environ["DYNAMIC"] == "auto" else os.environ["DYNAMIC"] == "dynamic")
def fan_out():
    print("body starts", flush=True)
    n = count()
    print("body got", int(n), flush=True)
    return total([square(i) for i in range(n)])

@pipeline
def wiring():
    print("static body", flush=True)
    return total([square(1), square(2)])

if __name__ == "__main__":
    if sys.argv[1] == "local_process":
        stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    else:
        stack = get_active_stack()
    with active_stack(stack):
        print("result", fan_out(), wiring())
"""


def run_script(tmp_path, orchestrator: str, dynamic: str) -> str:
    script = tmp_path / "one_pass.py"
    script.write_text(SCRIPT)
    env = python_env(tmp_path / "home", DYNAMIC=dynamic)  # the runner imports it again too
    with Spawned(python(str(script), orchestrator), env=env) as run:
        code, out, err = run.wait(120)
    assert code == 0, err
    assert "result 5 5" in out
    return out


@pytest.mark.parametrize("dynamic", ["auto", "dynamic"])
def test_on_the_local_orchestrator_the_body_runs_once(tmp_path, dynamic):
    out = run_script(tmp_path, "local", dynamic)
    assert out.count("body starts") == 1
    assert out.count("body got 3") == 1
    assert out.count("static body") == 1


def test_where_the_loop_runs_elsewhere_dynamic_true_runs_the_body_once(tmp_path):
    out = run_script(tmp_path, "local_process", "dynamic")
    assert out.count("body starts") == 1 and out.count("body got 3") == 1


def test_where_the_loop_runs_elsewhere_detection_reruns_the_start_of_the_body(tmp_path):
    """As the README says: without dynamic=..., the code before the first value use runs
    once more, in the caller, to tell static from dynamic."""
    out = run_script(tmp_path, "local_process", "auto")
    assert out.count("body starts") == 2 and out.count("body got 3") == 1


def test_the_run_is_recorded_dynamic_with_every_step():
    calls = []

    @step
    def two() -> int:
        return 2

    @step
    def plus(x: int, y: int) -> int:
        return x + y

    @pipeline
    def counted():
        calls.append("body")
        first = two()
        early = plus(first, 1)  # called before any value is needed
        if first > 1:
            return plus(early, 10)
        return early

    assert counted() == 13
    assert calls == ["body"]
    run = counted.last_run
    assert run.snapshot.is_dynamic
    assert "uses the output of step 'two' as a value" in run.snapshot.spec["dynamic_reason"]
    assert [s.name for s in run.attempts] == ["two", "plus", "plus_2"]
    assert run.steps["plus_2"].configuration.config["value_inputs"] == ["two"]


def test_values_read_are_recorded_once_however_many_calls_follow_them():
    @step
    def first(i: int) -> int:
        return i

    @step
    def second(i: int) -> int:
        return i * 2

    @pipeline
    def two_stages(n: int):
        values = [x.load() for x in [first(i) for i in range(n)]]  # reads all n
        kept = [second(v) for v in values]  # n calls after the same n reads
        for output in kept:  # a read before each call
            if output.load() % 4 == 0:
                first(output)
        return kept

    assert two_stages(n=40) == [2 * i for i in range(40)]
    steps = two_stages.last_run.steps
    firsts = ["first"] + [f"first_{i}" for i in range(2, 41)]
    seconds = ["second"] + [f"second_{i}" for i in range(2, 41)]
    configs = {name: step.configuration.config for name, step in steps.items()}
    assert configs["second"]["value_inputs"] == firsts
    assert all(configs[name]["value_inputs_of"] == "second" for name in seconds[1:])
    assert all("value_inputs" not in configs[name] for name in seconds[1:])
    # each call after a read names the values read since the call before it: not all so far
    assert configs["first_41"]["value_inputs"] == ["second"]
    assert configs["first_42"]["value_inputs"] == ["second_2", "second_3"]
    recorded = sum(len(config.get("value_inputs", ())) for config in configs.values())
    assert recorded == 40 + 39  # each value read once (no call follows the last read)


def test_a_call_fed_by_calls_after_the_same_reads_records_no_value_inputs():
    @step
    def count() -> int:
        return 2

    @step
    def part(i: int) -> int:
        return i

    @step
    def total(values: list) -> int:
        return sum(values)

    @pipeline
    def summed():
        return part(total([part(i) for i in range(count())]))

    assert summed() == 1
    configs = {name: s.configuration.config for name, s in summed.last_run.steps.items()}
    assert configs["part"]["value_inputs"] == ["count"]
    assert configs["part_2"]["value_inputs_of"] == "part"
    # after `count` through their inputs: a value edge from count would say nothing more
    for name in ("total", "part_3"):
        assert "value_inputs" not in configs[name] and "value_inputs_of" not in configs[name]


def test_the_values_read_are_recorded_with_the_first_call_after_them_that_runs():
    @step
    def count() -> int:
        return 2

    @step
    def boom() -> int:
        raise ValueError("no value")

    @step
    def use(x: int) -> int:
        return x

    @step
    def part(i: int) -> int:
        return i

    @pipeline(failure_mode="continue_on_failure")
    def partly():
        failed = boom()
        n = int(count())
        use(failed)  # the first call after the read: never runs, its input failed
        return [part(i) for i in range(n)]

    with pytest.raises(PipelineRunFailedError):
        partly()
    steps = Client().get_pipeline_run(partly.last_run.id).steps
    assert "use" not in steps
    assert steps["part"].configuration.config["value_inputs"] == ["count"]
    assert steps["part_2"].configuration.config["value_inputs_of"] == "part"


def test_a_body_that_raises_before_using_a_value_fails_its_run():
    calls = []

    @step
    def one() -> int:
        return 1

    @pipeline
    def broken():
        calls.append("body")
        one()
        raise RuntimeError("the body gives up")

    with pytest.raises(PipelineRunFailedError) as info:
        broken()
    assert calls == ["body"]
    assert type(info.value.__cause__) is RuntimeError
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.status == "failed" and run.snapshot.is_dynamic
    assert run.exception_message == "the body gives up"
