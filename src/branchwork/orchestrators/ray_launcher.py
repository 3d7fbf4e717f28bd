"""The Ray launcher: each step is a Ray task; its result comes back by callback.

A task receives the step's request envelope (`runtime.envelopes`: versioned JSON with the
step cloudpickled inside) and returns the result envelope. Text both ways, rather than
Ray's own pickling of `StepRequest`/`StepResult`, because the worker must first put the
loop's import path on `sys.path` before the step can be unpickled, and because a step's
exception that cannot be pickled still comes back as its type and message.

Completion is an event: `ObjectRef.future()` registers a callback in Ray's core worker, so
no thread polls. Ray's own task retries are off (`max_retries=0`): retries are the loop's,
exactly as on the local orchestrator, and a step never runs twice behind its back.

Before a task is submitted its resources are compared with the cluster's nodes; a step that
no node can ever run fails at once (see `ray_cluster`) instead of waiting for ever.

A node that dies takes its running steps with it: each fails with a `NodeLostError` that
names the node (Ray's `NodeDiedError` says which only in its text) and is retried by the
step's retry policy like any failure, on the nodes that are left.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from branchwork.exceptions import StepFailedError
from branchwork.orchestrators.ray_cluster import (
    ClusterResources,
    Demand,
    UnsatisfiableResourcesError,
    demand_for,
    task_options,
)
from branchwork.runtime.step_execution import StepRequest, StepResult
from branchwork.user_code import extend_import_path

# How Ray's NodeDiedError names the node: "... Node IP: 10.0.0.5, node ID: 3f2a..."
_DEAD_NODE = re.compile(r"Node IP: (?P<ip>[^,\s]+), node ID: (?P<id>[0-9a-fA-F]+)")


class NodeLostError(StepFailedError):
    """A step's Ray task was lost with the node it ran on."""


@contextlib.contextmanager
def applied_environment(environment: dict[str, str]) -> Iterator[None]:
    """`environment` in os.environ for the duration of a task; a Ray worker runs one task
    at a time and is reused afterwards, so the previous values are put back."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_step(envelope: str, environment: dict[str, str], import_path: list[str]) -> str:
    """The body of a step's Ray task: a request envelope in, a result envelope out."""
    extend_import_path(import_path)
    from branchwork.orchestrators.step_runner import run_envelope

    with applied_environment(environment):
        return run_envelope(envelope)


@functools.lru_cache(maxsize=1)
def _step_task() -> Any:
    import ray

    return ray.remote(max_retries=0, retry_exceptions=False)(run_step)


class RayLauncher:
    """Runs each step as a Ray task; see the module docstring.

    `environment` is applied around every step (the orchestrator run id travels this way);
    `import_path` is appended to each worker's `sys.path`.
    """

    def __init__(
        self,
        cluster: ClusterResources,
        *,
        step_cpus: float,
        environment: dict[str, str] | None = None,
        import_path: list[str] | None = None,
        check_resources: bool = True,
    ) -> None:
        self._cluster = cluster
        self._step_cpus = step_cpus
        self._environment = dict(environment or {})
        self._import_path = list(import_path or [])
        self._check_resources = check_resources
        self._running: set[Any] = set()  # ObjectRefs in flight, kept alive until done
        self._tasks: dict[tuple[str, str, Demand], Any] = {}
        self._lock = threading.Lock()
        self._cancelled = False

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        from branchwork.runtime.envelopes import request_to_json  # pickles a step once

        demand = demand_for(request.step.resources, self._step_cpus)
        start = time.time()
        if self._cancelled:  # launched by the loop before it saw the run being stopped
            stopped = StepFailedError(
                f"Step '{request.invocation_id}' was not started: the run is being stopped.",
                request.invocation_id,
            )
            on_done(_failed(request, start, stopped, None))
            return
        if self._check_resources and not self._feasible(demand):
            error = self._cluster.refusal(request.step.name, request.invocation_id, demand)
            on_done(_failed(request, start, error, None))
            return
        task = self._task(request, demand)
        ref = task.remote(request_to_json(request), self._environment, self._import_path)
        with self._lock:
            self._running.add(ref)
            stopping = self._cancelled
        ref.future().add_done_callback(
            functools.partial(self._finished, ref, request, start, on_done)
        )
        if stopping:  # cancel() ran while this task was being submitted
            _cancel(ref)

    def _task(self, request: StepRequest, demand: Demand) -> Any:
        """The step task with this step's options, made once per step and demand (making
        one costs as much as submitting it). Named by step, so Ray's dashboard groups a
        fan-out's tasks."""
        key = (request.pipeline_name, request.step.name, demand)
        task = self._tasks.get(key)
        if task is None:
            name = f"branchwork:{request.pipeline_name}/{request.step.name}"
            task = self._tasks[key] = _step_task().options(name=name, **task_options(demand))
        return task

    def _feasible(self, demand: Demand) -> bool:
        if self._cluster.can_run(demand):
            return True
        # Nodes may have joined since the run started: look again before refusing.
        self._cluster = ClusterResources.current()
        return self._cluster.can_run(demand)

    def _finished(
        self,
        ref: Any,
        request: StepRequest,
        start: float,
        on_done: Callable[[StepResult], None],
        future: Future[str],
    ) -> None:
        from branchwork.runtime.envelopes import result_from_json

        with self._lock:
            self._running.discard(ref)
        try:
            result = result_from_json(future.result())
        except BaseException as error:  # noqa: BLE001 - the task died or was cancelled
            result = _failed(request, start, _describe_ray_error(request, error), str(error))
        on_done(result)

    def holds_worker(self, step: Any) -> bool:
        return True  # a task each, async or not (`asyncio.run` in it)

    def cancel(self) -> None:
        """Kill every running or queued step task (the run is being stopped); steps the
        loop launches afterwards fail at once."""
        with self._lock:
            self._cancelled = True
            refs = list(self._running)
        for ref in refs:
            _cancel(ref)

    def shutdown(self, wait: bool = True) -> None:
        """Nothing to release: the loop has waited for every step, and the cluster is the
        user's (it outlives the run)."""


def _cancel(ref: Any) -> None:
    import ray

    with contextlib.suppress(Exception):  # already finished
        ray.cancel(ref, force=True)


def _describe_ray_error(request: StepRequest, error: BaseException) -> StepFailedError:
    import ray.exceptions as rex

    what = f"The Ray task of step '{request.invocation_id}'"
    if isinstance(error, rex.NodeDiedError):
        return _node_lost(request, what, str(error))
    if isinstance(error, rex.TaskCancelledError):
        text = f"{what} was cancelled."
    elif isinstance(error, rex.OutOfMemoryError):
        text = f"{what} was killed by Ray for lack of memory: give the step more (memory=)."
    elif isinstance(error, rex.WorkerCrashedError):
        text = f"{what} died with its worker process or node ({type(error).__name__})."
    else:
        first_line = (str(error).strip().splitlines() or [""])[0]
        text = f"{what} failed: {type(error).__name__}: {first_line}"
    return StepFailedError(text, request.invocation_id)


def _node_lost(request: StepRequest, what: str, ray_message: str) -> NodeLostError:
    found = _DEAD_NODE.search(ray_message)
    node = f"Ray node {found['id']} ({found['ip']})" if found else "the Ray node it ran on"
    return NodeLostError(
        f"{what} was lost with {node}, which died while the step ran. Give the step "
        "retries (retry=StepRetryConfig(max_retries=1)) to run it again on the nodes that "
        f"are left, or resume the run once the cluster is whole: branchwork runs resume "
        f"{request.run_name}",
        request.invocation_id,
    )


def _failed(
    request: StepRequest, start: float, error: BaseException, traceback: str | None
) -> StepResult:
    return StepResult(
        request.invocation_id,
        request.step_run_id,
        request.attempt,
        start,
        time.time(),
        error=error,
        traceback=traceback,
        retryable=not isinstance(error, UnsatisfiableResourcesError),
    )
