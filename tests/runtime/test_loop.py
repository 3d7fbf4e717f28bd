"""When the orchestration loop writes: at once while the pipeline body waits for a value,
otherwise rows gathered for at most `FLUSH_EVERY_SECONDS` — never withheld while a step runs.
"""

from __future__ import annotations

import threading
import time

from branchwork import Client, pipeline, step
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
    # Each of the three values would wait the whole interval (30 s) if the loop gathered
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
