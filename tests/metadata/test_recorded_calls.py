"""What a replay reads of its original (`metadata.recorded_calls`): each invocation's step and
argument names, a step name or an invocation at a time, on SQLite and PostgreSQL."""

from __future__ import annotations

from branchwork import pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.metadata.recorded_calls import (
    RecordedCall,
    call_of,
    calls_of_step,
    some_invocations,
    step_names,
)
from branchwork.metadata.run_pages import find_run
from branchwork.metadata.store import get_engine

failed_once: set[int] = set()


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def part(i: int, scale: int = 1) -> int:
    if i == 2 and i not in failed_once:  # two attempts, one call
        failed_once.add(i)
        raise ValueError("flaky")
    return i * scale


@step
def add(values: list) -> int:
    return sum(values)


@pipeline
def dynamic_parts(n: int) -> int:
    return add([part(i) for i in range(part(n))])


@pipeline
def static_parts() -> int:
    return add([part(1), part(2, scale=3)])


def test_a_dynamic_runs_calls_are_its_latest_attempts(store_url):
    failed_once.clear()
    assert dynamic_parts(n=4) == 6
    engine = get_engine()
    run = find_run(engine, dynamic_parts.last_run.id)
    assert step_names(engine, run) == {"part", "add"}
    calls = sorted(calls_of_step(engine, run, "part"))
    assert [c.invocation_id for c in calls] == ["part", *(f"part_{i}" for i in range(2, 6))]
    assert {c.arguments for c in calls} == {frozenset({"i", "scale"})}
    assert call_of(engine, run, "add") == RecordedCall("add", "add", frozenset({"values"}))
    assert call_of(engine, run, "nope") is None
    assert some_invocations(engine, run, 3) == (["add", "part", "part_2"], 6)


def test_a_static_runs_calls_are_its_plan(store_url):
    failed_once.clear()
    assert static_parts() == 7
    engine = get_engine()
    run = find_run(engine, static_parts.last_run.id)
    assert step_names(engine, run) == {"part", "add"}
    assert sorted(calls_of_step(engine, run, "part")) == [
        RecordedCall("part", "part", frozenset({"i", "scale"})),
        RecordedCall("part_2", "part", frozenset({"i", "scale"})),
    ]
    assert some_invocations(engine, run, 10) == (["add", "part", "part_2"], 3)
