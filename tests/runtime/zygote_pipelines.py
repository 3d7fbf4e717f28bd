"""Pipelines for tests/runtime/test_zygote.py, in a module of their own: an orchestration
process imports them again by their recorded source."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from branchwork import pipeline, step


@step(runtime="isolated")
def heavy_modules() -> list[str]:
    return sorted(name for name in ("sqlalchemy", "alembic") if name in sys.modules)


@step(runtime="isolated")
def first(x: int) -> int:
    return x + 1


@step(runtime="isolated")
def materializer_imported(_: int) -> bool:
    return "branchwork.materializers.path_materializer" in sys.modules


@step(runtime="isolated")
def talk(name: str, size: int) -> int:
    print(name * size)
    return size


@step(runtime="isolated")
def wait_for_go(marker_dir: str) -> int:
    Path(marker_dir, "first.pid").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not Path(marker_dir, "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@step(runtime="isolated")
def where(_: int) -> int:
    return os.getpid()


@pipeline(enable_cache=False)
def light():
    return heavy_modules()


@pipeline(dynamic=True, enable_cache=False)
def two_in_a_row():
    return materializer_imported(first(1))


@pipeline(enable_cache=False)
def two_talkers(size: int):
    return [talk("a", size), talk("b", size)]


@pipeline(dynamic=True, enable_cache=False)
def after_a_wait(marker_dir: str):
    pid = wait_for_go(marker_dir)
    return [pid, where(pid)]


@step(runtime="isolated")
def fork_helper(seconds: float) -> int:
    """Forks a helper that outlives the step (a daemon, a pool never shut down)."""
    pid = os.fork()
    if pid == 0:
        time.sleep(seconds)
        os._exit(0)
    return pid


@pipeline(enable_cache=False)
def leaves_a_helper(seconds: float = 60):
    return fork_helper(seconds)
