"""When the orchestration loop writes: at once while the pipeline body waits for a value,
otherwise rows gathered for at most `FLUSH_EVERY_SECONDS` — never withheld while a step runs.
And how it takes the body's calls in: `TRACK_AHEAD` at most looked up, ready or running.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

import pytest

from branchwork import Client, pipeline, step
from branchwork.exceptions import (
    PipelineRunFailedError,
    PipelineRunStoppedError,
    StoreUnavailableError,
)
from branchwork.metadata import queries
from branchwork.metadata.recorder import Recorder
from branchwork.runtime import events, loop
from branchwork.runtime.body import Outcome
from branchwork.runtime.step_execution import StepResult
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


live_outcomes: list[int] = []


def _count_live_outcomes() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is Outcome)


@step
def sum_of(values: list) -> int:
    return sum(values)


@pipeline
def chunked_sums(chunks: int, size: int) -> int:
    total = int(sum_of([]))  # live from here: nothing traced is handed over in bulk
    for chunk in range(chunks):
        live_outcomes.append(_count_live_outcomes())
        total += int(sum_of([square(chunk * size + i) for i in range(size)]))
    return square(total)


@pytest.mark.parametrize("run", ["first", "cached"])
def test_the_results_of_finished_steps_whose_futures_are_gone_are_released(run):
    # A body that drops each chunk's futures once it has read their sum: the run holds the
    # outcomes (outputs, loaded values, what later calls need) of at most the chunk before
    # and the last reads, not of every step so far (it held all of them: 1 000 here).
    if run == "cached":
        chunked_sums(chunks=10, size=100)
    live_outcomes.clear()
    n = 10 * 100
    assert chunked_sums(chunks=10, size=100) == sum(i * i for i in range(n)) ** 2
    statuses = {s.status for s in chunked_sums.last_run.steps.values()}
    assert statuses == ({"completed"} if run == "first" else {"cached"})
    assert len(live_outcomes) == 10 and max(live_outcomes) <= 101 + 3, live_outcomes


@pipeline(enable_cache=False)
def after_a_step_named_by_id() -> int:
    assert int(increment(0)) == 1  # live from here: nothing traced is handed over in bulk
    increment(1, id="first").wait()  # read: the calls after the next read no longer hold it
    assert int(increment(5)) == 6
    increment(7)
    gc.collect()  # nothing holds the outcome of 'first' now
    increment(3, after="first")
    return increment(2, after="first")


def test_a_call_after_a_step_whose_outcome_is_gone_names_its_step_run(monkeypatch):
    looked_up: list[str] = []

    def latest_step_run(engine, run_id, invocation_id):
        looked_up.append(invocation_id)
        return queries.latest_step_run(engine, run_id, invocation_id)

    monkeypatch.setattr(loop, "latest_step_run", latest_step_run)
    assert after_a_step_named_by_id() == 3
    steps = after_a_step_named_by_id.last_run.steps
    assert looked_up == ["first"]  # read back from the store once, not held for the run
    assert steps["increment_4"].parent_step_run_ids == (steps["first"].id,)
    assert steps["increment_5"].parent_step_run_ids == (steps["first"].id,)


@pipeline(enable_cache=False)
def reads_three_values() -> int:
    first = int(increment(0))  # live from here
    return increment(int(increment(first)))  # the body waits for 'increment_2'


def test_a_flush_that_fails_after_a_step_succeeded_fails_the_waiting_body(monkeypatch):
    # Fault injection: the store goes away at the flush that would hand 'increment_2' to
    # the body waiting for it. The succeeded step's outcome was no longer among the loop's
    # unfinished invocations, so the crash left the body waiting for ever.
    failing = threading.Event()
    flush, on_result = Recorder.flush, loop.RunLoop._on_result

    def failing_flush(self: Recorder) -> None:
        if failing.is_set() and threading.current_thread().name == "branchwork-loop":
            raise StoreUnavailableError("the store went away (injected)")
        flush(self)

    def noting_result(self: loop.RunLoop, result: Any, resolved: list[Any]) -> Any:
        event = on_result(self, result, resolved)
        if result.invocation_id == "increment_2":
            failing.set()
        return event

    monkeypatch.setattr(Recorder, "flush", failing_flush)
    monkeypatch.setattr(loop.RunLoop, "_on_result", noting_result)
    error = _raised_within(30, reads_three_values)
    assert isinstance(error, StoreUnavailableError)
    assert "the store went away (injected)" in str(error)


def _raised_within(seconds: float, call: Any) -> BaseException | None:
    """What `call()` raises, run in a thread that must end within `seconds`."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - the test reads it
            raised.append(error)

    caller = threading.Thread(target=run, daemon=True)
    caller.start()
    caller.join(seconds)
    assert not caller.is_alive(), f"the pipeline call still runs after {seconds} s"
    return raised[0] if raised else None


def test_a_result_behind_an_abandoning_stop_in_one_batch_ends_the_run_stopped(monkeypatch):
    # Ctrl-C twice queues an abandoning stop; a step's result can follow it in the same
    # batch. The result was recorded as a success, then the engine abandoned that step:
    # the loop crashed on a KeyError and the run never ended.
    next_batch = loop.RunLoop._next_batch
    injected = threading.Event()

    def batch_with_a_stop_first(self: loop.RunLoop) -> list[Any]:
        batch = next_batch(self)
        if not injected.is_set() and any(
            isinstance(item, StepResult) and item.invocation_id == "increment_2" for item in batch
        ):
            injected.set()
            batch.insert(0, events.Stop(abandon=True))
        return batch

    monkeypatch.setattr(loop.RunLoop, "_next_batch", batch_with_a_stop_first)
    assert isinstance(_raised_within(30, reads_three_values), PipelineRunStoppedError)
    assert injected.is_set()
    (run,) = Client().list_pipeline_runs(pipeline="reads_three_values")
    assert run.status == "stopped"
    assert {name: s.status for name, s in run.steps.items()} == {
        "increment": "completed",
        "increment_2": "stopped",
    }
