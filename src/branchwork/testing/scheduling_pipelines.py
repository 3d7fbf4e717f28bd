"""The conformance suite's pipelines for async steps, concurrency limits and `start_after=`.

At module level, like `branchwork.testing.pipelines`, so that an orchestration process or a
step process imports them again; side effects go through the folder a parameter names. All
are static (their graphs follow from their parameters), so every orchestrator runs them.
Steps return when they started and ended, so the suite can tell how many ran at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from branchwork import pipeline, step


def _window(started: float, **more: Any) -> dict[str, Any]:
    return {"start": started, "end": time.time(), **more}


@step(enable_cache=False, max_concurrency=3)
async def await_item(i: int) -> dict[str, Any]:
    started = time.time()
    await asyncio.sleep(0.2)
    return _window(started, item=i)


@step(enable_cache=False, concurrency_limit="service")
def call_service(i: int) -> dict[str, Any]:
    started = time.time()
    time.sleep(0.2)
    return _window(started, item=i)


def _wait_for(path: Path, what: str) -> None:
    deadline = time.time() + 60
    while not path.exists():
        if time.time() > deadline:
            raise TimeoutError(f"{what} never came")
        time.sleep(0.02)


@step(enable_cache=False)
def watched(folder: str) -> str:
    """Runs until its watcher has seen it running: both run at once, or it fails (60 s)."""
    Path(folder, "watched.started").touch()
    _wait_for(Path(folder, "watcher.saw_it"), "a watcher while the watched step ran")
    return "done"


@step(enable_cache=False)
def watcher(folder: str) -> str:
    """Waits for the watched step to be running (a launched step may still be on its way:
    a cluster's task queues), then tells it so."""
    _wait_for(Path(folder, "watched.started"), "the watched step")
    Path(folder, "watcher.saw_it").touch()
    return "saw it"


@pipeline(enable_cache=False)
def async_limited(n: int) -> Any:
    """Static: await_item ... await_item_<n>, at most 3 at once."""
    return [await_item(i) for i in range(n)]


@pipeline(enable_cache=False, concurrency_limits={"service": 2})
def named_limit(n: int) -> Any:
    """Static: call_service ... call_service_<n>, at most 2 at once (the named limit)."""
    return [call_service(i) for i in range(n)]


@pipeline(enable_cache=False)
def sidecar(folder: str) -> Any:
    """Static: watched, and watcher started once watched has started (no data between)."""
    result = watched(folder)
    return result, watcher(folder, start_after=result)
