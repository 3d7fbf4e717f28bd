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

Quick steps share tasks. Submitting a Ray task and taking its result cost the driver about
half a millisecond, more than a trivial step itself: once a step's latest attempts in this
process were quick (`_Quickness`), its launches are held until the loop has launched what it
had ready (`flush`), then sent as batches, each one task that runs its steps one after
another with one step's resources and returns their results together. A batch is never
bigger than `MAX_BATCH`, nor than leaves two batches per slot the cluster has for the step
(its in-flight steps over twice the CPUs' worth); quick steps hold none of the loop's
`max_workers`, so that batches fill. Every step keeps its own request, attempt, record and
timing; a step that fails fails alone; a worker that dies fails every step of its batch
(their results come back together), each retried by its own policy, and those steps are not
batched again in this process.

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
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any, NamedTuple

from branchwork.exceptions import StepFailedError
from branchwork.orchestrators.ray_cluster import (
    ClusterResources,
    Demand,
    demand_for,
    task_options,
)
from branchwork.runtime.launchers import Launcher
from branchwork.runtime.step_execution import StepRequest, StepResult, failed, not_sent
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


QUICK_SECONDS = 0.005  # a step this quick costs less than its own Ray task
SLOW_SECONDS = 0.1  # a step ever this slow of late keeps its own tasks
LEARNED_FROM = 16  # a step's latest attempts that tell whether it is quick
MAX_BATCH = 16


def run_steps(
    envelopes: list[str], environment: dict[str, str], import_path: list[str]
) -> list[str]:
    """The body of a Ray task: request envelopes in, one step after another, and their
    result envelopes out (a step's failure is in its envelope)."""
    extend_import_path(import_path)
    from branchwork.orchestrators.step_runner import run_envelope

    with applied_environment(environment):
        return [run_envelope(envelope) for envelope in envelopes]


@functools.lru_cache(maxsize=1)
def _steps_task() -> Any:
    import ray

    return ray.remote(max_retries=0, retry_exceptions=False)(run_steps)


_Kind = tuple[str, str]  # a step's name and code digest: what is learned quick or not


class _Quickness:
    """Which steps are quick, from their latest `LEARNED_FROM` attempts in this process, by
    step name and code (an edited step is learned again): a run's first launches of a step
    that was quick in the runs before go in batches at once, rather than hundreds of tasks.

    Quick: three in four of them within `QUICK_SECONDS`, and none over `SLOW_SECONDS`. Not
    every one: on a busy machine a trivial step now and then waits for a CPU mid-way."""

    def __init__(self) -> None:
        self._latest: dict[_Kind, deque[float]] = {}  # durations, newest last
        self._quick: set[_Kind] = set()
        self._never: set[_Kind] = set()  # its worker died under it: perhaps it killed it

    def is_quick(self, kind: _Kind) -> bool:
        return kind in self._quick

    def learn(self, kind: _Kind, seconds: float) -> None:
        latest = self._latest.setdefault(kind, deque(maxlen=LEARNED_FROM))
        latest.append(seconds)
        ordered = sorted(latest)
        if (
            len(latest) == LEARNED_FROM
            and ordered[LEARNED_FROM * 3 // 4 - 1] <= QUICK_SECONDS
            and ordered[-1] <= SLOW_SECONDS
            and kind not in self._never
        ):
            self._quick.add(kind)
        else:
            self._quick.discard(kind)

    def never(self, kind: _Kind) -> None:
        self._never.add(kind)
        self._quick.discard(kind)


_QUICKNESS = _Quickness()


def _kind(step: Any) -> _Kind:
    """Read where the step is launched, on the loop's thread: its digest may be computed
    then, which runs the user's code's fingerprinting (not on Ray's callback thread)."""
    return step.name, step.code_hash


class _Launch(NamedTuple):
    request: StepRequest
    start: float  # when it was launched: a failure without a result of its own is from then
    on_done: Callable[[StepResult], None]
    kind: _Kind


_Key = tuple[str, str, Demand]  # pipeline, step, what its task asks of Ray
CLUSTER_VIEW_SECONDS = 2.0  # how long the launcher trusts what it read of the cluster


class RayLauncher(Launcher):
    """Runs each step as a Ray task; see the module docstring.

    `environment` is applied around every step (the orchestrator run id travels this way);
    `import_path` is appended to each worker's `sys.path`; `batch_steps` lets quick steps
    share tasks.
    """

    def __init__(
        self,
        cluster: ClusterResources,
        *,
        step_cpus: float,
        environment: dict[str, str] | None = None,
        import_path: list[str] | None = None,
        check_resources: bool = True,
        batch_steps: bool = True,
    ) -> None:
        self._cluster = cluster
        self._cluster_read = time.monotonic()
        self._dead_nodes: set[str] = set()  # ids of nodes a task died with (see `_feasible`)
        self._step_cpus = step_cpus
        self._environment = dict(environment or {})
        self._import_path = list(import_path or [])
        self._check_resources = check_resources
        self._batch_steps = batch_steps
        self._running: set[Any] = set()  # ObjectRefs in flight, kept alive until done
        self._tasks: dict[_Key, Any] = {}
        self._lock = threading.Lock()
        self._cancelled = False
        self._held: dict[_Key, list[_Launch]] = {}  # quick steps' launches, until `flush`
        self._in_flight: dict[_Key, int] = {}  # steps submitted and not reported, by key

    def launch(self, request: StepRequest, on_done: Callable[[StepResult], None]) -> None:
        demand = demand_for(request.step.resources, self._step_cpus)
        start = time.time()
        if self._cancelled:  # launched by the loop before it saw the run being stopped
            on_done(_not_started(request, start))
            return
        if self._check_resources and not self._feasible(demand):
            error = self._cluster.refusal(request.step.name, request.invocation_id, demand)
            on_done(failed(request, start, error, retryable=False))
            return
        key = (request.pipeline_name, request.step.name, demand)
        launch = _Launch(request, start, on_done, _kind(request.step))
        if self._batch_steps and _QUICKNESS.is_quick(launch.kind):
            self._held.setdefault(key, []).append(launch)
        else:
            self._submit(key, [launch])

    def flush(self) -> None:
        """The loop launched what it had ready: submit the held quick steps, in batches (or
        fail them unstarted if the run is being stopped)."""
        held, self._held = self._held, {}
        for key, launches in held.items():
            if self._cancelled:
                for launch in launches:
                    launch.on_done(_not_started(launch.request, launch.start))
                continue
            size = self._batch_size(key, len(launches))
            for first in range(0, len(launches), size):
                self._submit(key, launches[first : first + size])

    def _batch_size(self, key: _Key, held: int) -> int:
        """At most MAX_BATCH, and two batches per slot the cluster has for the step at least
        (its steps in flight over twice as many slots), so no CPU waits for a batch."""
        demand = key[2]
        cpus = self._cluster.total.cpu
        slots = max(1.0, cpus / demand.cpu if demand.cpu > 0 else cpus)
        in_flight = self._in_flight.get(key, 0) + held
        return max(1, min(MAX_BATCH, int(in_flight / (2 * slots))))

    def _submit(self, key: _Key, launches: list[_Launch]) -> None:
        from branchwork.runtime.envelopes import request_to_json  # pickles a step once

        try:
            envelopes = [request_to_json(launch.request) for launch in launches]
            ref = self._task(key).remote(envelopes, self._environment, self._import_path)
        except Exception as error:  # noqa: BLE001 - unpicklable, or options Ray refuses
            for launch in launches:
                launch.on_done(not_sent(launch.request, launch.start, error))
            return
        with self._lock:
            self._running.add(ref)
            self._in_flight[key] = self._in_flight.get(key, 0) + len(launches)
            stopping = self._cancelled
        ref.future().add_done_callback(functools.partial(self._finished, ref, key, launches))
        if stopping:  # cancel() ran while this task was being submitted
            _cancel(ref)

    def _task(self, key: _Key) -> Any:
        """The steps task with this step's options, made once per step and demand (making
        one costs as much as submitting it). Named by step, so Ray's dashboard groups a
        fan-out's tasks."""
        task = self._tasks.get(key)
        if task is None:
            pipeline_name, step_name, demand = key
            name = f"branchwork:{pipeline_name}/{step_name}"
            task = self._tasks[key] = _steps_task().options(name=name, **task_options(demand))
        return task

    def _feasible(self, demand: Demand) -> bool:
        """Whether a node of the cluster can run a step asking `demand`. Nodes join and die
        while a run goes on: the view is read again before a refusal, when it is older than
        CLUSTER_VIEW_SECONDS, and once a task died with its node, which it then leaves out
        (Ray may list it alive a few moments more: a retry that only it could run was
        submitted, to wait in Ray's queue for ever)."""
        with self._lock:  # Ray's callback thread adds dead nodes (`_finished`)
            fresh = time.monotonic() - self._cluster_read < CLUSTER_VIEW_SECONDS
            dead = frozenset(self._dead_nodes)
        if fresh and self._cluster.can_run(demand):
            return True
        self._cluster = ClusterResources.current(excluding=dead)
        with self._lock:
            self._cluster_read = time.monotonic()
        return self._cluster.can_run(demand)

    def _finished(
        self, ref: Any, key: _Key, launches: list[_Launch], future: Future[list[str]]
    ) -> None:
        """A task ended: each of its steps reports its result, or the task's failure."""
        from branchwork.runtime.envelopes import result_from_json

        with self._lock:
            self._running.discard(ref)
            self._in_flight[key] -= len(launches)
        try:
            results = [result_from_json(text) for text in future.result()]
        except BaseException as error:  # noqa: BLE001 - the task died or was cancelled
            dead = _dead_node(error)
            if dead is not None:  # before the failures reach the loop, which retries them
                with self._lock:
                    self._dead_nodes.add(dead)
                    self._cluster_read = float("-inf")
            for launch in launches:
                failure = _describe_ray_error(launch.request, error, len(launches) - 1)
                launch.on_done(failed(launch.request, launch.start, failure, str(error)))
            if _killed_its_worker(error):
                for launch in launches:
                    _QUICKNESS.never(launch.kind)
            return
        for launch, result in zip(launches, results):
            launch.on_done(result)
        for launch, result in zip(launches, results):
            _QUICKNESS.learn(launch.kind, result.end_time - result.start_time)

    def refuses_unfit(self, step: Any) -> bool:
        return self._check_resources

    def holds_worker(self, step: Any) -> bool:
        """A task each, async or not (`asyncio.run` in it); a quick step with batches holds
        none of the loop's `max_workers`: it travels in a batch and ends within milliseconds,
        so stopping a run waits for it no longer than for a few slow ones."""
        return not (self._batch_steps and _QUICKNESS.is_quick(_kind(step)))

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


def _not_started(request: StepRequest, start: float) -> StepResult:
    stopped = StepFailedError(
        f"Step '{request.invocation_id}' was not started: the run is being stopped.",
        request.invocation_id,
    )
    return failed(request, start, stopped)


def _killed_its_worker(error: BaseException) -> bool:
    """Whether the task's worker process died under it (not its node, nor a cancel)."""
    import ray.exceptions as rex

    return isinstance(error, (rex.WorkerCrashedError, rex.OutOfMemoryError))


def _describe_ray_error(
    request: StepRequest, error: BaseException, shared: int = 0
) -> StepFailedError:
    import ray.exceptions as rex

    what = f"The Ray task of step '{request.invocation_id}'"
    if shared:
        what += f" (a batch of quick steps, shared with {shared} more)"
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


def _dead_node(error: BaseException) -> str | None:
    """The id of the node a task died with, if it did."""
    import ray.exceptions as rex

    found = _DEAD_NODE.search(str(error)) if isinstance(error, rex.NodeDiedError) else None
    return found["id"] if found else None


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
