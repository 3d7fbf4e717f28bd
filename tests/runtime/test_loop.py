"""When the orchestration loop writes: at once while the pipeline body waits for a value,
otherwise rows gathered for at most `FLUSH_EVERY_SECONDS` — never withheld while a step runs.
And how it takes the body's calls in: `TRACK_AHEAD` at most looked up, ready or running.
"""

from __future__ import annotations

import threading
import time

import pytest

from branchwork import Client, pipeline, step
from branchwork.exceptions import PipelineRunFailedError
from branchwork.runtime import loop
from processes import wait_until

released = threading.Event()


@step(enable_cache=False)
def increment(i: int) -> int:
    return i + 1


@step(enable_cache=False)
def blocked() -> int:
    assert released.wait(30), "the test never released the step"
    return 7


@pipeline(enable_cache=False)
def reads_every_value(n: int) -> int:
    value = 0
    for _ in range(n):
        value = int(increment(value))  # the body waits for each step's value
    return increment(value)


@pipeline(enable_cache=False)
def one_blocked_step() -> int:
    return blocked()


def test_a_body_waiting_for_a_value_gets_it_without_waiting_for_the_flush_interval(monkeypatch):
    monkeypatch.setattr(loop, "FLUSH_EVERY_SECONDS", 10.0)
    started = time.monotonic()
    assert reads_every_value(n=3) == 4
    # Each of the three values would wait up to the interval (10 s) if the loop gathered
    # rows while the body waits for them; it writes them as they come instead.
    assert time.monotonic() - started < 8
    run = reads_every_value.last_run
    assert run.status == "completed"
    assert [s.status for s in run.steps.values()] == ["completed"] * 4


def test_a_running_step_is_in_the_store_while_it_runs(monkeypatch):
    monkeypatch.setattr(loop, "FLUSH_EVERY_SECONDS", 0.3)
    released.clear()
    caller = threading.Thread(target=one_blocked_step, name="caller")
    caller.start()
    try:

        def running() -> bool:
            runs = Client().list_pipeline_runs(pipeline="one_blocked_step")
            step_run = runs[0].steps.get("blocked") if runs else None
            return step_run is not None and step_run.status == "running"

        # Written at the interval although nothing waits for it and it has not finished.
        wait_until(running, 10, "the running step in the store")
    finally:
        released.set()
        caller.join(30)
    (run,) = Client().list_pipeline_runs(pipeline="one_blocked_step")
    assert run.status == "completed" and run.steps["blocked"].status == "completed"


@step(enable_cache=False)
def double(i: int) -> int:
    if i == 13:
        raise ValueError("thirteen")
    return 2 * i


@step(enable_cache=False)
def add_up(values: list) -> int:
    return sum(values)


@pipeline(enable_cache=False)
def doubled(n: int, fail: bool) -> int:
    return add_up([double(i if fail or i != 13 else -1) for i in range(n)])


@pipeline(enable_cache=False)
def many_waiting_then_one_read() -> int:
    gate = blocked()
    waiting = [increment(gate) for _ in range(30)]  # none can start before the gate opens
    assert int(increment(100)) == 101  # read while the gate is still closed
    released.set()
    return add_up(waiting)


def test_a_fan_out_larger_than_the_loop_tracks_at_once_runs_every_step(monkeypatch):
    monkeypatch.setattr(loop, "TRACK_AHEAD", 4)
    assert doubled(n=60, fail=False) == sum(2 * i for i in range(60)) - 28
    run = doubled.last_run
    assert [s.status for s in run.steps.values()] == ["completed"] * 61


def test_a_failure_with_calls_still_in_the_backlog_ends_the_run(monkeypatch):
    monkeypatch.setattr(loop, "TRACK_AHEAD", 4)
    with pytest.raises(PipelineRunFailedError, match="thirteen"):
        doubled(n=60, fail=True)
    run = doubled.last_run
    assert run.status == "failed" and run.failed_step == "double_14"
    recorded = {name: s.status for name, s in run.steps.items()}
    assert recorded["double_14"] == "failed" and "add_up" not in recorded
    assert len(recorded) < 60  # the calls after the failure never started


def test_calls_waiting_for_a_step_do_not_hold_back_a_later_independent_call(monkeypatch):
    monkeypatch.setattr(loop, "TRACK_AHEAD", 4)
    released.clear()
    assert many_waiting_then_one_read() == 30 * 8


@step
def square(i: int) -> int:
    return i * i


@pipeline
def read_squares(n: int) -> int:
    outputs = [square(i) for i in range(n)]
    last = int(outputs[-1])  # the body waits for the last call's value first
    return square(last + sum(int(output) for output in outputs[:-1]))


def test_cache_hits_taken_from_the_backlog_reach_a_waiting_body_at_once(monkeypatch):
    monkeypatch.setattr(loop, "TRACK_AHEAD", 4)
    monkeypatch.setattr(loop, "FLUSH_EVERY_SECONDS", 10.0)
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "30")
    assert read_squares(n=20) == sum(i * i for i in range(20)) ** 2
    started = time.monotonic()
    assert read_squares(n=20) == sum(i * i for i in range(20)) ** 2  # every step cached
    # Hits the loop takes from its backlog between batches are written and handed over at
    # once; they used to wait for the next heartbeat or result (here 30 s).
    assert time.monotonic() - started < 8
    assert {s.status for s in read_squares.last_run.steps.values()} == {"cached"}
