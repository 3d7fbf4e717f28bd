"""Launchers: how a step request becomes a running step. Results arrive by callback.

A launcher has one job: run `execute_step(request)` somewhere and call `on_done(result)`
exactly once. The inline launcher uses a thread pool in the loop's process.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from branchwork.runtime.step_execution import StepRequest, StepResult, execute_step


class Launcher(Protocol):
    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None: ...

    def shutdown(self) -> None: ...


class InlineLauncher:
    """Runs steps in a pool of threads of this process."""

    def __init__(self, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="branchwork-step")

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        future = self._pool.submit(execute_step, request)
        future.add_done_callback(lambda f: on_done(_result_of(f, request)))

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _result_of(future: Future[StepResult], request: StepRequest) -> StepResult:
    error = future.exception()
    if error is None:
        return future.result()
    # Only BaseExceptions (KeyboardInterrupt, SystemExit) escape execute_step.
    now = time.time()
    return StepResult(
        request.invocation_id,
        request.step_run_id,
        request.attempt,
        now,
        now,
        error=error,
        traceback="".join(traceback.format_exception(error)),
    )
