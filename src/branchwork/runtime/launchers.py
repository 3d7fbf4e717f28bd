"""Launchers: how a step request becomes a running step. Results arrive by callback.

A launcher has one job: run `execute_step(request)` somewhere and call `on_done(result)`
exactly once. The inline launcher uses a thread pool in the loop's process, and awaits
`async def` steps on an event loop of its own (one thread for all of them); the process
launcher runs each step in a process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from branchwork.exceptions import StepFailedError
from branchwork.runtime.step_execution import (
    StepRequest,
    StepResult,
    escaped,
    execute_step,
    failed,
    run_step,
)

if TYPE_CHECKING:
    from branchwork.steps.step import Step

logger = logging.getLogger("branchwork")


class Launcher(Protocol):
    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None: ...

    def holds_worker(self, step: Step[Any, Any]) -> bool:
        """Whether `step` takes one of the loop's `max_workers` while it runs here (an async
        step awaited on an event loop takes none)."""

    def flush(self) -> None:
        """The loop has launched what it had ready: start what was held back to be sent
        together (Ray's batches of quick steps). Most launchers hold nothing back."""
        return None

    def refuses_unfit(self, step: Step[Any, Any]) -> bool:
        """Whether this launcher refuses `step` itself when no node can run what it asks
        (Ray's, which knows the nodes): the loop then does not warn that it will run it alone
        on this machine."""
        return False

    def cancel(self) -> None:
        """Stop running steps where that is possible (the run is being abandoned)."""

    def shutdown(self, wait: bool = True) -> None:
        """Release workers; with `wait`, once every launched step has reported."""


class InlineLauncher(Launcher):
    """Runs steps in a pool of daemon threads of this process: threads cannot be stopped
    from outside, and a run abandoned by a second Ctrl-C must not keep its process alive
    until they end (a ThreadPoolExecutor's threads would: they are joined at exit).

    `async def` steps run as tasks of one event loop, in a daemon thread of its own started
    at the first of them: they hold no worker thread, and a stop cancels them."""

    def __init__(self, max_workers: int) -> None:
        self._max_workers = max_workers
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._event_loop_thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[StepResult]] = set()  # the event loop thread's alone
        self._warned: set[str] = set()  # steps told they are not isolated here

    def holds_worker(self, step: Step[Any, Any]) -> bool:
        return not step.is_async

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        if request.step.runtime == "isolated" and request.step.name not in self._warned:
            self._warned.add(request.step.name)  # a crash in it must not come as a surprise
            logger.warning(
                "Step '%s' asks for runtime='isolated', but this orchestrator runs steps in "
                "threads: it runs in one, and a crash in it ends the whole run. Use the "
                "local_process orchestrator (or Ray) to give it a process of its own.",
                request.step.name,
            )
        if request.step.is_async:
            with self._lock:
                event_loop = self._event_loop or self._start_event_loop()
            event_loop.call_soon_threadsafe(self._start_task, request, on_done)
            return
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._max_workers:
                thread = threading.Thread(
                    target=self._work_loop,
                    name=f"branchwork-step_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1
        self._work.put((request, on_done))

    def _work_loop(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            request, on_done = item
            on_done(_run_inline(request))
            with self._lock:
                self._idle += 1

    def _start_event_loop(self) -> asyncio.AbstractEventLoop:
        self._event_loop = asyncio.new_event_loop()
        self._event_loop_thread = threading.Thread(
            target=_serve, args=(self._event_loop,), name="branchwork-async-steps", daemon=True
        )
        self._event_loop_thread.start()
        return self._event_loop

    def _start_task(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        """On the event loop: the step's attempt as a task, reported when it ends however
        it ends (also when cancelled before it began)."""
        task = asyncio.ensure_future(run_step(request))
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._task_done, request, time.time(), on_done))

    def _task_done(
        self,
        request: StepRequest,
        start: float,
        on_done: Callable[[StepResult], None],
        task: asyncio.Task[StepResult],
    ) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            cancelled = StepFailedError(
                f"Step '{request.invocation_id}' was cancelled: its run is stopping.",
                request.invocation_id,
            )
            on_done(escaped(request, start, cancelled))
            return
        error = task.exception()  # none expected: run_step returns the step's failures
        on_done(task.result() if error is None else escaped(request, start, error))

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    def cancel(self) -> None:
        """Async steps are cancelled; threads cannot be stopped from outside: abandoned sync
        steps run on, unrecorded."""
        with self._lock:
            event_loop = self._event_loop
        if event_loop is not None:
            event_loop.call_soon_threadsafe(self._cancel_tasks)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            threads, self._threads = self._threads, []
            self._idle = 0
            event_loop, self._event_loop = self._event_loop, None
        for _ in threads:
            self._work.put(None)
        if event_loop is not None and self._event_loop_thread is not None:
            event_loop.call_soon_threadsafe(event_loop.stop)
            threads.append(self._event_loop_thread)
        if wait:
            for thread in threads:
                thread.join()


def _serve(event_loop: asyncio.AbstractEventLoop) -> None:
    """The async steps' thread: run their event loop until `shutdown` stops it; what is
    left then (a stopped run's cancelled steps) is wound down before the loop closes."""
    asyncio.set_event_loop(event_loop)
    try:
        event_loop.run_forever()
        left = asyncio.all_tasks(event_loop)
        for task in left:
            task.cancel()
        event_loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
    finally:
        event_loop.close()


def _run_inline(request: StepRequest) -> StepResult:
    start = time.time()
    try:
        return execute_step(request)
    except BaseException as error:  # noqa: BLE001 - reported as the step's failure
        # None expected (execute_step returns the step's failures): one of branchwork's own
        # is the step's rather than a worker thread's end, whose step would never report.
        return escaped(request, start, error)


class ProcessLauncher(Launcher):
    """Runs each step in a process of its own, forked from a warm zygote.

    The zygote (`python -m branchwork.runtime.zygote`) is started on the first launch and
    ended by `shutdown()`. A step process that dies (killed, out of memory, crashed
    interpreter) fails its step with the signal or exit code named; `cancel()` kills every
    running step process.
    """

    def __init__(self, environment: dict[str, str] | None = None) -> None:
        self._environment = {**os.environ, **(environment or {})}
        self._zygote: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._pending: dict[int, tuple[StepRequest, Callable[[StepResult], None], float]] = {}
        self._pids: dict[int, int] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        from branchwork.runtime.envelopes import request_to_json

        envelope = request_to_json(request).encode()
        with self._lock:
            zygote = self._zygote or self._start_zygote()
            request_id = next(self._ids)
            self._pending[request_id] = (request, on_done, time.time())
            assert zygote.stdin is not None
            zygote.stdin.write(b"%d %s\n" % (request_id, envelope))
            zygote.stdin.flush()

    def _start_zygote(self) -> subprocess.Popen[bytes]:
        from branchwork.runtime.zygote import die_with_parent
        from branchwork.user_code import user_import_path

        # This process's import path as it is now, with what loading the pipeline added.
        import_path = os.pathsep.join(user_import_path())
        self._zygote = subprocess.Popen(
            [sys.executable, "-m", "branchwork.runtime.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**self._environment, "PYTHONPATH": import_path},
            preexec_fn=die_with_parent,  # noqa: PLW1509 - the zygote must not outlive the loop
        )
        self._reader = threading.Thread(
            target=self._read, args=(self._zygote,), name="branchwork-zygote", daemon=True
        )
        self._reader.start()
        return self._zygote

    def _read(self, zygote: subprocess.Popen[bytes]) -> None:
        """The messages of the zygote and its children (see `branchwork.runtime.zygote`),
        until the zygote is gone."""
        from branchwork.runtime.envelopes import result_from_json

        assert zygote.stdout is not None
        parts: dict[int, list[bytes]] = {}  # of results still arriving
        logs: dict[int, list[str]] = {}  # what steps printed so far, for those that die
        for line in zygote.stdout:
            key, kind, body = line.rstrip(b"\n").split(b" ", 2)
            request_id = int(key)
            if kind == b"more":
                parts.setdefault(request_id, []).append(body)
                continue
            if kind == b"log":
                logs.setdefault(request_id, []).append(json.loads(body))
                continue
            if kind == b"pid":
                with self._lock:
                    self._pids[request_id] = int(body)
                continue
            envelope = b"".join([*parts.pop(request_id, []), body])  # an exit drops a part
            printed = "".join(logs.pop(request_id, []))  # a result holds them all again
            with self._lock:
                if request_id not in self._pending:  # the exit of a step that has reported
                    continue
                request, on_done, start = self._pending.pop(request_id)
                self._pids.pop(request_id, None)
            if kind == b"result":
                on_done(result_from_json(envelope.decode()))
            else:
                on_done(_died(request, start, _describe_exit(int(body)), printed))
        with self._lock:  # the zygote is gone: nothing pending will ever finish
            lost, self._pending = self._pending, {}
        for request_id, (request, on_done, start) in lost.items():
            printed = "".join(logs.pop(request_id, []))
            on_done(_died(request, start, _describe_exit(zygote.wait()), printed))

    def holds_worker(self, step: Step[Any, Any]) -> bool:
        return True  # a process each, async or not (`asyncio.run` in it)

    def cancel(self) -> None:
        """Kill every running step process (the run is being stopped)."""
        with self._lock:
            for pid in self._pids.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            zygote, self._zygote = self._zygote, None
        if zygote is None:
            return
        assert zygote.stdin is not None
        zygote.stdin.close()  # the zygote exits once its children are done
        if wait:
            zygote.wait()
            if self._reader is not None:
                self._reader.join()


def _died(request: StepRequest, start: float, what_happened: str, printed: str) -> StepResult:
    """The result of a step whose process died without one, with what it printed."""
    message = f"The process of step '{request.invocation_id}' {what_happened}."
    result = failed(request, start, StepFailedError(message, request.invocation_id))
    result.logs = printed
    return result


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code} without a result"


class RoutingLauncher(Launcher):
    """Sends each step to the inline or the isolated launcher, as `isolate(step)` says."""

    def __init__(
        self, inline: Launcher, isolated: Launcher, isolate: Callable[[Any], bool]
    ) -> None:
        self._inline, self._isolated, self._isolate = inline, isolated, isolate

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        self._target(request.step).launch(request, on_done)

    def holds_worker(self, step: Step[Any, Any]) -> bool:
        return self._target(step).holds_worker(step)

    def refuses_unfit(self, step: Step[Any, Any]) -> bool:
        return self._target(step).refuses_unfit(step)

    def _target(self, step: Step[Any, Any]) -> Launcher:
        return self._isolated if self._isolate(step) else self._inline

    def flush(self) -> None:
        self._inline.flush()
        self._isolated.flush()

    def cancel(self) -> None:
        self._inline.cancel()
        self._isolated.cancel()

    def shutdown(self, wait: bool = True) -> None:
        self._inline.shutdown(wait)
        self._isolated.shutdown(wait)
