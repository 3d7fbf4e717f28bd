"""What `runs diff` reads of a run, a chunk at a time in the order of invocation ids
(`metadata.run_comparison`), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from branchwork import pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.metadata.run_comparison import compared_invocations
from branchwork.metadata.run_pages import find_run
from branchwork.metadata.store import get_engine

failed_once: set[int] = set()


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def part(i: int) -> int:
    if i in (3, 10) and i not in failed_once:  # a second attempt for these two
        failed_once.add(i)
        raise ValueError(f"flaky part {i}")
    return i


@step
def add(values: list) -> int:
    return sum(values)


@pipeline
def parts(n: int) -> int:
    return add([part(i) for i in range(n)] + [part(100, id="Zeta"), part(101, id="été")])


@pytest.mark.parametrize("size", [1, 2, 1000])
def test_each_invocation_once_as_its_latest_attempt_in_code_point_order(store_url, size):
    failed_once.clear()
    assert parts(n=12) == sum(range(12)) + 201
    engine = get_engine()
    run = find_run(engine, parts.last_run.id)
    compared = list(compared_invocations(engine, run, size=size))

    ids = ["part", *(f"part_{i}" for i in range(2, 13)), "Zeta", "été", "add"]
    assert [c.name for c in compared] == sorted(ids)  # "Zeta" < "add" < "part" < "été"
    steps = parts.last_run.steps  # the latest attempt of each invocation
    for c in compared:
        assert (c.step_name, c.code_hash, c.cache_key) == (
            steps[c.name].step_name,
            steps[c.name].code_hash,
            steps[c.name].cache_key,
        )
    by_name = {c.name: c for c in compared}
    assert by_name["part_4"].inputs == {"i": 3}  # retried: its latest attempt's record
    assert by_name["part_4"].first_start == min(
        a.start_time for a in parts.last_run.attempts if a.name == "part_4"
    )
    assert by_name["add"].parents == sorted(set(ids) - {"add"})
    assert by_name["add"].inputs["values"][0] == {"$ref": "part", "output": "output"}


@step
def scale(x: int, by: int) -> int:
    return x * by


@pipeline
def static_chain(by: int) -> int:  # no value read: static, configurations in its snapshot
    return scale(scale(1, by=by), by=by)


def test_a_static_runs_inputs_come_from_its_snapshot(store_url):
    assert static_chain(by=3) == 9
    engine = get_engine()
    run = find_run(engine, static_chain.last_run.id)
    assert not run.snapshot.is_dynamic
    compared = list(compared_invocations(engine, run, size=1))
    assert [(c.name, c.inputs, c.parents) for c in compared] == [
        ("scale", {"x": 1, "by": 3}, []),
        ("scale_2", {"x": {"$ref": "scale", "output": "output"}, "by": 3}, ["scale"]),
    ]
