"""The scheduling core: a pure state machine, events in, commands out.

It knows which invocations wait for which, which are ready, what resources they hold and
what the failure policy says; it performs no I/O and starts no threads, so it is tested
without any concurrency. The orchestration loop feeds it events and carries out commands.

Admission: steps that ask for no resources only need a free worker; steps with a
`ResourceSettings` are admitted first-come first-served against the capacity. A step asking
for more than the whole capacity is not refused: it waits until nothing else holds resources
and then runs alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple


class FailureMode(str, Enum):
    """What a run does when a step fails for good."""

    STOP_ON_FAILURE = "stop_on_failure"
    FAIL_FAST = "fail_fast"
    CONTINUE_ON_FAILURE = "continue_on_failure"


class Request(NamedTuple):
    """Resources one step holds while it runs."""

    cpu: float = 0.0
    memory: int = 0
    gpu: float = 0.0

    def fits(self, free: Request) -> bool:
        return self.cpu <= free.cpu and self.memory <= free.memory and self.gpu <= free.gpu

    def __bool__(self) -> bool:
        return bool(self.cpu or self.memory or self.gpu)


def _add(a: Request, b: Request, sign: int = 1) -> Request:
    return Request(a.cpu + sign * b.cpu, a.memory + sign * b.memory, a.gpu + sign * b.gpu)


# events
class Added(NamedTuple):
    invocation_id: str
    dependencies: tuple[str, ...]
    request: Request
    cacheable: bool
    max_attempts: int


class CacheMissed(NamedTuple):
    invocation_id: str


class Finished(NamedTuple):
    invocation_id: str
    ok: bool
    retryable: bool = True


class RetryDue(NamedTuple):
    invocation_id: str


class Cancel(NamedTuple):
    """Nothing new may start (the pipeline body failed or the run is stopped)."""

    reason_invocation_id: str | None


class Stop(NamedTuple):
    """The run is being stopped: nothing new starts; with `abandon`, the running steps are
    given up too (their results, should they come, are ignored)."""

    abandon: bool


# commands
class CheckCache(NamedTuple):
    invocation_id: str


class Launch(NamedTuple):
    invocation_id: str
    attempt: int
    oversized: bool


class RetryLater(NamedTuple):
    invocation_id: str
    attempt: int


class GaveUp(NamedTuple):
    invocation_id: str


class NotRun(NamedTuple):
    invocation_id: str
    because_of: str | None


class Abandoned(NamedTuple):
    """A running step given up by a stop: record it stopped."""

    invocation_id: str


Event = Added | CacheMissed | Finished | RetryDue | Cancel | Stop
Command = CheckCache | Launch | RetryLater | GaveUp | NotRun | Abandoned


class State(str, Enum):
    WAITING = "waiting"
    CACHE_CHECK = "cache_check"
    READY = "ready"
    RUNNING = "running"
    RETRY_WAIT = "retry_wait"
    DONE = "done"
    FAILED = "failed"
    NOT_RUN = "not_run"
    ABANDONED = "abandoned"


_TERMINAL = (State.DONE, State.FAILED, State.NOT_RUN, State.ABANDONED)


@dataclass(slots=True)
class _Node:
    request: Request
    cacheable: bool
    max_attempts: int
    seq: int
    state: State = State.WAITING
    missing: int = 0
    attempt: int = 0
    oversized: bool = False
    dependents: list[str] = field(default_factory=list)


class Engine:
    """Decides what runs when; see the module docstring."""

    def __init__(
        self,
        capacity: Request,
        max_workers: int,
        failure_mode: FailureMode = FailureMode.STOP_ON_FAILURE,
    ) -> None:
        self.capacity = capacity
        self.max_workers = max_workers
        self.failure_mode = FailureMode(failure_mode)
        self.free = capacity
        self.nodes: dict[str, _Node] = {}
        self.running = 0
        self.unfinished = 0
        self.first_failure: str | None = None
        self.cancelled = False
        self.stopped = False  # a stop was asked for: the run ends STOPPED
        self.abandoned = False
        self._ready_plain: deque[str] = deque()
        self._ready_resourced: deque[str] = deque()
        self._exclusive = False
        self._resourced_running = 0
        self._seq = 0

    @property
    def idle(self) -> bool:
        """True when every invocation added so far has reached a final state."""
        return self.unfinished == 0

    def state(self, invocation_id: str) -> State:
        return self.nodes[invocation_id].state

    def handle(self, *events: Event) -> list[Command]:
        commands: list[Command] = []
        for event in events:
            if isinstance(event, Added):
                self._added(event, commands)
            elif isinstance(event, CacheMissed):
                self._make_ready(event.invocation_id)
            elif isinstance(event, Finished):
                self._finished(event, commands)
            elif isinstance(event, RetryDue):
                self._make_ready(event.invocation_id)
            elif isinstance(event, Cancel):
                self._cancel(event.reason_invocation_id, commands)
            elif isinstance(event, Stop):
                self._stop(event.abandon, commands)
        self._admit(commands)
        return commands

    def _added(self, event: Added, commands: list[Command]) -> None:
        node = _Node(event.request, event.cacheable, max(1, event.max_attempts), self._seq)
        self._seq += 1
        oversized = bool(event.request) and not event.request.fits(self.capacity)
        node.oversized = oversized
        self.nodes[event.invocation_id] = node
        self.unfinished += 1
        blocked_by = None
        for dependency in event.dependencies:
            parent = self.nodes[dependency]
            if parent.state is State.DONE:
                continue
            if parent.state in (State.FAILED, State.NOT_RUN):
                blocked_by = dependency
                continue
            parent.dependents.append(event.invocation_id)
            node.missing += 1
        if blocked_by is not None or self._stopping:
            cause = blocked_by if blocked_by is not None or self.stopped else self.first_failure
            self._not_run(event.invocation_id, cause, commands)
        elif node.missing == 0:
            self._inputs_ready(event.invocation_id, commands)

    @property
    def _stopping(self) -> bool:
        return self.cancelled or (
            self.first_failure is not None
            and self.failure_mode is not FailureMode.CONTINUE_ON_FAILURE
        )

    def _inputs_ready(self, invocation_id: str, commands: list[Command]) -> None:
        node = self.nodes[invocation_id]
        if node.cacheable:
            node.state = State.CACHE_CHECK
            commands.append(CheckCache(invocation_id))
        else:
            self._make_ready(invocation_id)

    def _make_ready(self, invocation_id: str) -> None:
        node = self.nodes[invocation_id]
        if node.state in _TERMINAL:
            return
        node.state = State.READY
        queue = self._ready_resourced if node.request else self._ready_plain
        queue.append(invocation_id)

    def _finished(self, event: Finished, commands: list[Command]) -> None:
        node = self.nodes[event.invocation_id]
        if node.state in _TERMINAL:
            return
        if node.state is State.RUNNING:
            self._release(node)
        if event.ok:
            node.state = State.DONE
            self.unfinished -= 1
            for child_id in node.dependents:
                child = self.nodes[child_id]
                if child.state is not State.WAITING:
                    continue
                child.missing -= 1
                if child.missing == 0:
                    self._inputs_ready(child_id, commands)
            return
        if event.retryable and node.attempt < node.max_attempts and not self._stopping:
            node.state = State.RETRY_WAIT
            commands.append(RetryLater(event.invocation_id, node.attempt + 1))
            return
        node.state = State.FAILED
        self.unfinished -= 1
        commands.append(GaveUp(event.invocation_id))
        if self.first_failure is None:
            self.first_failure = event.invocation_id
        if self.failure_mode is FailureMode.CONTINUE_ON_FAILURE:
            self._not_run_dependents(event.invocation_id, commands)
        else:
            self._cancel(event.invocation_id, commands)

    def _cancel(self, because_of: str | None, commands: list[Command]) -> None:
        """Nothing that has not started will start; running steps finish."""
        self.cancelled = self.cancelled or because_of is None
        self._not_run_pending(because_of or self.first_failure, commands)

    def _not_run_pending(self, because_of: str | None, commands: list[Command]) -> None:
        for invocation_id, node in self.nodes.items():
            if node.state in (State.WAITING, State.CACHE_CHECK, State.READY, State.RETRY_WAIT):
                self._not_run(invocation_id, because_of, commands)

    def _stop(self, abandon: bool, commands: list[Command]) -> None:
        self.stopped = self.cancelled = True
        self._not_run_pending(None, commands)  # "because the run was stopped"
        if not abandon or self.abandoned:
            return
        self.abandoned = True
        for invocation_id, node in self.nodes.items():
            if node.state is State.RUNNING:
                self._release(node)
                node.state = State.ABANDONED
                self.unfinished -= 1
                commands.append(Abandoned(invocation_id))

    def _not_run_dependents(self, failed_id: str, commands: list[Command]) -> None:
        stack = list(self.nodes[failed_id].dependents)
        while stack:
            child_id = stack.pop()
            child = self.nodes[child_id]
            if child.state is State.WAITING:
                self._not_run(child_id, failed_id, commands)
                stack.extend(child.dependents)

    def _not_run(self, invocation_id: str, because_of: str | None, commands: list[Command]) -> None:
        node = self.nodes[invocation_id]
        node.state = State.NOT_RUN
        self.unfinished -= 1
        commands.append(NotRun(invocation_id, because_of))

    def _admit(self, commands: list[Command]) -> None:
        plain, resourced = self._ready_plain, self._ready_resourced
        while self.running < self.max_workers and (plain or resourced):
            self._drop_stale(plain)
            self._drop_stale(resourced)
            head = self._admissible_resourced()
            if head is not None and (not plain or self.nodes[head].seq < self.nodes[plain[0]].seq):
                resourced.popleft()
                self._launch(head, commands)
            elif plain:
                self._launch(plain.popleft(), commands)
            elif head is not None:
                resourced.popleft()
                self._launch(head, commands)
            else:
                break

    def _drop_stale(self, queue: deque[str]) -> None:
        while queue and self.nodes[queue[0]].state is not State.READY:
            queue.popleft()

    def _admissible_resourced(self) -> str | None:
        if not self._ready_resourced or self._exclusive:
            return None
        head = self._ready_resourced[0]
        node = self.nodes[head]
        if node.oversized:
            return head if self._resourced_running == 0 else None
        return head if node.request.fits(self.free) else None

    def _launch(self, invocation_id: str, commands: list[Command]) -> None:
        node = self.nodes[invocation_id]
        node.state = State.RUNNING
        node.attempt += 1
        self.running += 1
        if node.oversized:
            self._exclusive = True
            self.free = Request(0.0, 0, 0.0)
        elif node.request:
            self.free = _add(self.free, node.request, -1)
        if node.request:
            self._resourced_running += 1
        commands.append(Launch(invocation_id, node.attempt, node.oversized))

    def _release(self, node: _Node) -> None:
        self.running -= 1
        if not node.request:
            return
        self._resourced_running -= 1
        if node.oversized:
            self._exclusive = False
        # Reset rather than add back when nothing holds resources: no float drift.
        self.free = self.capacity if self._resourced_running == 0 else _add(self.free, node.request)
