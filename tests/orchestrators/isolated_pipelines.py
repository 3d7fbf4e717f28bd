"""Pipelines for the isolation tests. They live in a module of their own because an
orchestration process imports them again by their recorded source."""

from __future__ import annotations

import functools
import os
import threading
import time
from pathlib import Path

import scale_setting

from branchwork import get_step_context, pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.orchestrators.base import SubmissionResult


@step(runtime="isolated")
def scaled(x: float) -> float:
    return x * scale_setting.SCALE  # another module's value: imported afresh in a step process


OFFSET = 0  # read by a step (pickled with it) and by a helper (imported afresh with it)


def shifted(x: float) -> float:
    return x + OFFSET


@step(runtime="isolated")
def offset(x: float) -> list[float]:
    return [x + OFFSET, shifted(x)]


def passed_through(func):
    """A decorator of the user's: a part of the step's key, named only in its source."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


@step(runtime="isolated")
@passed_through
def decorated(x: float) -> float:
    return shifted(x)


@step(runtime="isolated")
def where_isolated() -> int:
    return os.getpid()


@step(runtime="inline")
def where_inline() -> int:
    return os.getpid()


@step(runtime="isolated")
def wait_to_be_killed(marker_dir: str, name: str) -> int:
    print("é\tß" * 700)  # longer than a line to the loop holds
    print(f"{name}: loaded 3 shards; opening shard 4")  # sent before the pid is written
    Path(marker_dir, f"{name}.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return 0


@step
def quick(x: int) -> int:
    return x + 1


@step(runtime="isolated")
def context_of_step() -> dict:
    context = get_step_context()
    return {"invocation": context.invocation_id, "attempt": context.attempt}


@pipeline(enable_cache=False)
def pids():
    return [where_isolated(), where_isolated(), where_inline()]


@pipeline(dynamic=True, enable_cache=False)
def one_killed(marker_dir: str):
    done = quick(1)
    victim = wait_to_be_killed(marker_dir, "victim")
    return [done, victim]


@pipeline(dynamic=True, enable_cache=False)
def sleepers(marker_dir: str):
    return [wait_to_be_killed(marker_dir, f"s{i}") for i in range(2)]


@pipeline(enable_cache=False)
def static_context():
    return context_of_step()


LAUNCHED: list[SubmissionResult] = []


class CtrlCJustAfterLaunch(LocalProcessOrchestrator):
    """Ctrl-C reaching the caller the moment its orchestration process was launched, before
    it waits for it (in `subprocess.Popen`, waiting for the exec, say)."""

    def _launch(self, snapshot, environment):
        LAUNCHED.append(super()._launch(snapshot, environment))
        raise KeyboardInterrupt


LOCK = threading.Lock()  # read by `guarded`: a step that cannot be pickled


@step(runtime="isolated")
def guarded(x: int) -> int:
    with LOCK:
        return x + 1


@step
def one() -> int:
    return 1


@pipeline(enable_cache=False)
def unsendable():
    return guarded(one())
