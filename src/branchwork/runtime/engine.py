"""The scheduling core: a pure state machine, events in, commands out (`runtime.events`).

It takes every decision of a run: which invocations wait for which, when one is ready; its
cache key's verdict — take over a resumed run's record, diverge from it or from the last run
with the same parameters (`GraphCheck`), serve it from the cache, or run it; what resources
it holds; when a failed attempt is retried (a heap of due times, drained by the loop's
wait); and the one failure state of the run under its failure mode. It performs no I/O,
reads no clock (time comes in as `now`) and starts no threads, so whole scenarios are
tested without any concurrency. The loop carries out its commands and feeds it the results.

Which ready step starts next — workers, resources, concurrency limits — is `Admission`'s
part (`runtime.admission`). A step called with `start_after=` waits for those steps to have
*started* (launched, or served from the cache or a resumed run's record), not finished;
if one of them never starts, neither does it.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from enum import Enum

from branchwork.config.retry import StepRetryConfig
from branchwork.graph.cache_reasons import EXPIRED, FAILED, MISS, OFF, REFRESH
from branchwork.runtime.admission import Admission, Ticket
from branchwork.runtime.events import (
    Abandoned,
    Added,
    Cancel,
    Command,
    ComputeKey,
    Diverged,
    Event,
    FailureMode,
    Finished,
    GaveUp,
    KeyComputed,
    Launch,
    Missed,
    NotRun,
    Request,
    RetryScheduled,
    Reuse,
    Stop,
    UseCached,
)
from branchwork.runtime.graph_check import Call, GraphCheck


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
_NEVER_RAN = (State.FAILED, State.NOT_RUN, State.ABANDONED)  # final, without having succeeded
_PENDING = (State.WAITING, State.CACHE_CHECK, State.READY, State.RETRY_WAIT)


@dataclass(slots=True)
class _Node:
    added: Added
    seq: int
    request: Request
    state: State = State.WAITING
    missing: int = 0
    attempt: int = 0  # attempts of this session
    attempts_before: int = 0  # attempts an earlier session of a resumed run recorded
    oversized: bool = False
    started: bool = False  # launched once, or served without running
    dependents: list[str] = field(default_factory=list)
    start_dependents: list[str] = field(default_factory=list)  # waiting for it to start

    @property
    def retry(self) -> StepRetryConfig:
        return self.added.retry


class Engine:
    """Decides what runs when; see the module docstring."""

    def __init__(
        self,
        capacity: Request,
        max_workers: int,
        failure_mode: FailureMode = FailureMode.STOP_ON_FAILURE,
        graph_check: GraphCheck | None = None,
    ) -> None:
        self.capacity = capacity
        self.max_workers = max_workers
        self.failure_mode = FailureMode(failure_mode)
        self.graph_check = graph_check or GraphCheck("")
        # Invocations not DONE. A done one is in no structure at all (a million-step run holds
        # nothing of its finished steps): a dependency not here has succeeded, since every
        # invocation is added after those it depends on.
        self.nodes: dict[str, _Node] = {}
        self.admission = Admission(capacity, max_workers, self._is_ready)
        self.unfinished = 0
        self.waiting = 0  # nodes WAITING for other invocations
        self.first_failure: str | None = None
        self.cancelled = False
        self.stopped = False  # a stop was asked for: the run ends STOPPED
        self.abandoned = False
        self._retries: list[tuple[float, int, str]] = []  # (due, seq, invocation id)
        self._seq = 0
        self._now = 0.0

    @property
    def running(self) -> int:
        """Steps running now."""
        return self.admission.running

    @property
    def active(self) -> int:
        """Invocations being looked up, ready, running or waiting to retry."""
        return self.unfinished - self.waiting

    @property
    def idle(self) -> bool:
        """True when every invocation added so far has reached a final state."""
        return self.unfinished == 0

    @property
    def next_due(self) -> float | None:
        """When the earliest scheduled retry is due (the loop wakes up then)."""
        return self._retries[0][0] if self._retries else None

    def state(self, invocation_id: str) -> State:
        node = self.nodes.get(invocation_id)
        return State.DONE if node is None else node.state

    def _is_ready(self, invocation_id: str) -> bool:
        node = self.nodes.get(invocation_id)
        return node is not None and node.state is State.READY

    def handle(self, *events: Event, now: float = 0.0) -> list[Command]:
        commands: list[Command] = []
        self._now = now
        self._release_due(now)
        for event in events:
            if isinstance(event, Added):
                self._added(event, commands)
            elif isinstance(event, KeyComputed):
                self._key_computed(event, commands)
            elif isinstance(event, Finished):
                self._finished(event, now, commands)
            elif isinstance(event, Cancel):
                self._cancel(event.reason_invocation_id, commands)
            elif isinstance(event, Stop):
                self._stop(event.abandon, commands)
        self._release_due(now)
        self._admit(commands)
        return commands

    # ---- discovery and inputs -------------------------------------------------------------

    def _added(self, event: Added, commands: list[Command]) -> None:
        node = _Node(event, self._seq, event.request)
        self._seq += 1
        node.oversized = bool(event.request) and not event.request.fits(self.capacity)
        self.nodes[event.invocation_id] = node
        self.graph_check.made(event.invocation_id, event.reads)
        self.unfinished += 1
        self.waiting += 1
        blocked_by = None
        for dependency in event.dependencies:
            parent = self.nodes.get(dependency)
            if parent is None:  # done
                continue
            if parent.state in _NEVER_RAN:
                blocked_by = dependency
                continue
            parent.dependents.append(event.invocation_id)
            node.missing += 1
        for starter in event.start_after:
            parent = self.nodes.get(starter)
            if parent is None or parent.started:
                continue
            if parent.state in _NEVER_RAN:
                blocked_by = starter
                continue
            parent.start_dependents.append(event.invocation_id)
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
        """Its key is needed: for the graph checks, the cache, and the record of its run."""
        node = self.nodes[invocation_id]
        if node.state is State.WAITING:
            self.waiting -= 1
        node.state = State.CACHE_CHECK
        added = node.added
        look_up = added.cacheable and not added.refresh
        commands.append(
            ComputeKey(invocation_id, look_up and not self.graph_check.is_replayed(invocation_id))
        )

    def _key_computed(self, event: KeyComputed, commands: list[Command]) -> None:
        node = self.nodes.get(event.invocation_id)
        if node is None or node.state is not State.CACHE_CHECK:
            return  # cancelled meanwhile
        added = node.added
        if event.key is not None and self.graph_check.is_replayed(added.invocation_id):
            upstream = added.dependencies + added.start_after
            call = Call(added.invocation_id, added.step_name, added.code_hash, event.key, upstream)
            verdict = self.graph_check.check(call)
            node.attempts_before = verdict.attempts_before
            if verdict.divergence is not None:
                record = self.graph_check.replay[added.invocation_id]
                commands.append(Diverged(added.invocation_id, verdict.divergence, record))
                self._failed(added.invocation_id, commands)
                return
            if verdict.reuse is not None:
                commands.append(Reuse(added.invocation_id, verdict.reuse))
                self._done(added.invocation_id, commands)
                return
            if verdict.cached is not None:  # a replay reuses its original's record
                commands.append(UseCached(added.invocation_id, verdict.cached))
                self._done(added.invocation_id, commands)
                return
            commands.append(Missed(added.invocation_id, verdict.missed, verdict.reason))
        elif self._served_from_cache(added, event):
            commands.append(UseCached(added.invocation_id, event.hit))
            self._done(added.invocation_id, commands)
            return
        else:
            # a resumed invocation whose key cannot be computed now runs as its next attempt
            node.attempts_before = self.graph_check.unchecked(added.invocation_id)
            commands.append(Missed(added.invocation_id, self._why_not_cached(added, event)))
        self._make_ready(added.invocation_id)

    def _served_from_cache(self, added: Added, event: KeyComputed) -> bool:
        return (
            added.cacheable
            and not added.refresh
            and event.key is not None
            and event.hit is not None
            and not self._expired(added, event)
        )

    def _why_not_cached(self, added: Added, event: KeyComputed) -> str:
        if not added.cacheable:
            return OFF
        if event.key is None:
            return FAILED
        if added.refresh:
            return REFRESH
        return EXPIRED if event.hit is not None else MISS

    def _expired(self, added: Added, event: KeyComputed) -> bool:
        return (
            added.expire_after is not None
            and event.hit_finished is not None
            and self._now - event.hit_finished > added.expire_after
        )

    def _make_ready(self, invocation_id: str) -> None:
        node = self.nodes[invocation_id]
        if node.state in _TERMINAL:
            return
        node.state = State.READY
        added = node.added
        ticket = Ticket(node.seq, node.request, node.oversized, added.holds_worker, added.limits)
        self.admission.enter(invocation_id, ticket)

    # ---- outcomes -------------------------------------------------------------------------

    def _finished(self, event: Finished, now: float, commands: list[Command]) -> None:
        node = self.nodes.get(event.invocation_id)
        if node is None or node.state is not State.RUNNING:
            return  # abandoned, or stopped meanwhile
        self.admission.release(event.invocation_id)
        if event.ok:
            self._done(event.invocation_id, commands)
            return
        if event.retryable and node.attempt <= node.retry.max_retries and not self._stopping:
            node.state = State.RETRY_WAIT
            attempt = node.attempt + 1
            delay = node.retry.delay_before(attempt)
            heapq.heappush(self._retries, (now + delay, node.seq, event.invocation_id))
            commands.append(
                RetryScheduled(event.invocation_id, node.attempts_before + attempt, delay)
            )
            return
        self._failed(event.invocation_id, commands, event.paused)

    def _done(self, invocation_id: str, commands: list[Command]) -> None:
        """It succeeded: its node goes (a run of a million steps would hold a million),
        what waited for it may go on."""
        node = self.nodes.pop(invocation_id)
        self.unfinished -= 1
        self._started(node, commands)  # served from the cache or a record: it never launched
        self._one_less_missing(node.dependents, commands)

    def _started(self, node: _Node, commands: list[Command]) -> None:
        """What waits for it to start may go on."""
        node.started = True
        waiting, node.start_dependents = node.start_dependents, []
        self._one_less_missing(waiting, commands)

    def _one_less_missing(self, children: list[str], commands: list[Command]) -> None:
        for child_id in children:
            child = self.nodes[child_id]
            if child.state is not State.WAITING:
                continue
            child.missing -= 1
            if child.missing == 0:
                self._inputs_ready(child_id, commands)

    def _failed(self, invocation_id: str, commands: list[Command], paused: bool = False) -> None:
        """It failed for good: the run's one failure state, and what its mode says. One that
        paused is no failure: only what needs it will not run (the run pauses once the rest
        has finished)."""
        self.nodes[invocation_id].state = State.FAILED
        self.unfinished -= 1
        commands.append(GaveUp(invocation_id))
        if paused:
            self._not_run_dependents(invocation_id, commands)
            return
        if self.first_failure is None:
            self.first_failure = invocation_id
        if self.failure_mode is FailureMode.CONTINUE_ON_FAILURE:
            self._not_run_dependents(invocation_id, commands)
        else:
            self._cancel(invocation_id, commands)

    def _release_due(self, now: float) -> None:
        while self._retries and self._retries[0][0] <= now:
            _, _, invocation_id = heapq.heappop(self._retries)
            if self.nodes[invocation_id].state is State.RETRY_WAIT:
                self._make_ready(invocation_id)

    # ---- stopping -------------------------------------------------------------------------

    def _cancel(self, because_of: str | None, commands: list[Command]) -> None:
        """Nothing that has not started will start; running steps finish."""
        self.cancelled = self.cancelled or because_of is None
        self._not_run_pending(because_of or self.first_failure, commands)

    def _not_run_pending(self, because_of: str | None, commands: list[Command]) -> None:
        for invocation_id, node in self.nodes.items():
            if node.state in _PENDING:
                self._not_run(invocation_id, because_of, commands)

    def _stop(self, abandon: bool, commands: list[Command]) -> None:
        self.stopped = self.cancelled = True
        self._not_run_pending(None, commands)  # "because the run was stopped"
        if not abandon or self.abandoned:
            return
        self.abandoned = True
        for invocation_id, node in self.nodes.items():
            if node.state is State.RUNNING:
                self.admission.release(invocation_id)
                node.state = State.ABANDONED
                self.unfinished -= 1
                commands.append(Abandoned(invocation_id))

    def _not_run_dependents(self, failed_id: str, commands: list[Command]) -> None:
        """In a run that goes on after a failure (or a pause): what needed it (to succeed,
        or to start) will never run, nor what needed those."""
        failed = self.nodes[failed_id]
        stack = failed.dependents + failed.start_dependents
        while stack:
            child_id = stack.pop()
            child = self.nodes[child_id]
            if child.state is State.WAITING:
                self._not_run(child_id, failed_id, commands)
                stack.extend(child.dependents + child.start_dependents)

    def _not_run(self, invocation_id: str, because_of: str | None, commands: list[Command]) -> None:
        node = self.nodes[invocation_id]
        if node.state is State.WAITING:
            self.waiting -= 1
        node.state = State.NOT_RUN
        self.unfinished -= 1
        commands.append(NotRun(invocation_id, because_of))

    # ---- admission ------------------------------------------------------------------------

    def _admit(self, commands: list[Command]) -> None:
        while (invocation_id := self.admission.next()) is not None:
            self._launch(invocation_id, commands)

    def _launch(self, invocation_id: str, commands: list[Command]) -> None:
        node = self.nodes[invocation_id]
        node.state = State.RUNNING
        node.attempt += 1
        commands.append(Launch(invocation_id, node.attempts_before + node.attempt, node.oversized))
        if not node.started:
            self._started(node, commands)
