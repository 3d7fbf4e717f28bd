"""Launchers: how a step request becomes a running step. Results arrive by callback.

A launcher has one job: run `execute_step(request)` somewhere and call `on_done(result)`
exactly once. The inline launcher uses a thread pool in the loop's process; the process
launcher runs each step in a process of its own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from branchwork.exceptions import StepFailedError
from branchwork.runtime.step_execution import StepRequest, StepResult, execute_step


class Launcher(Protocol):
    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None: ...

    def cancel(self) -> None:
        """Stop running steps where that is possible (the run is being stopped)."""

    def shutdown(self) -> None: ...


class InlineLauncher:
    """Runs steps in a pool of threads of this process."""

    def __init__(self, max_workers: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="branchwork-step")

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        future = self._pool.submit(execute_step, request)
        future.add_done_callback(lambda f: on_done(_result_of(f, request)))

    def cancel(self) -> None:
        """Threads cannot be stopped from outside; running inline steps finish."""

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


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask Linux to SIGKILL this step process when the loop that launched it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ProcessLauncher:
    """Runs each step in its own Python process (`branchwork.orchestrators.step_runner`).

    The request envelope goes in on stdin, the result comes back on stdout; the step's own
    output is passed through to this process's stderr. A step process that dies (killed,
    out of memory, crashed interpreter) fails its step with the signal or exit code named.
    """

    def __init__(self, max_workers: int, environment: dict[str, str] | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="branchwork-proc")
        self._environment = {**os.environ, **(environment or {})}
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        future = self._pool.submit(self._run, request)
        future.add_done_callback(lambda f: on_done(_result_of(f, request)))

    def _run(self, request: StepRequest) -> StepResult:
        from branchwork.runtime.envelopes import request_to_json, result_from_json

        payload = request_to_json(request).encode()
        start = time.time()
        process = subprocess.Popen(
            [sys.executable, "-m", "branchwork.orchestrators.step_runner"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._environment,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        with self._lock:
            self._running.add(process)
        try:
            out, err = process.communicate(payload)
        finally:
            with self._lock:
                self._running.discard(process)
        if err:
            sys.stderr.write(err.decode(errors="replace"))
        if process.returncode == 0 and out:
            return result_from_json(out.decode())
        return StepResult(
            request.invocation_id,
            request.step_run_id,
            request.attempt,
            start,
            time.time(),
            error=StepFailedError(
                f"The process of step '{request.invocation_id}' "
                f"{_describe_exit(process.returncode)}{_tail(err)}",
                request.invocation_id,
            ),
            traceback=err.decode(errors="replace") or None,
        )

    def cancel(self) -> None:
        """Kill every running step process (the run is being stopped)."""
        with self._lock:
            for process in self._running:
                process.kill()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code} without a result"


def _tail(err: bytes, lines: int = 5) -> str:
    text = err.decode(errors="replace").strip().splitlines()[-lines:]
    return (": " + " | ".join(text)) if text else "."


class RoutingLauncher:
    """Sends each step to the inline or the isolated launcher, as `isolate(step)` says."""

    def __init__(
        self, inline: Launcher, isolated: Launcher, isolate: Callable[[Any], bool]
    ) -> None:
        self._inline, self._isolated, self._isolate = inline, isolated, isolate

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        target = self._isolated if self._isolate(request.step) else self._inline
        target.launch(request, on_done)

    def cancel(self) -> None:
        self._inline.cancel()
        self._isolated.cancel()

    def shutdown(self) -> None:
        self._inline.shutdown()
        self._isolated.shutdown()
