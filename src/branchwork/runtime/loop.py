"""The orchestration loop: one thread that carries out the engine's commands.

It takes what happens off a queue, in batches — invocations the pipeline body made, step
results, stop requests — feeds the engine, and carries out its commands: compute cache keys
and look them up (one query per batch), launch steps, record rows. It flushes the recorder
(one transaction) and only then resolves the outcomes of what it recorded, so whatever the
body sees is already recorded. While the body waits for an outcome it flushes as soon as
it has outcomes to resolve; otherwise at most FLUSH_EVERY_SECONDS after the first unwritten
row, so a fan-out's steps share a commit and a step that finishes within that time is
written once, finished (a crash loses at most that much: those steps run again on resume).
Calls the body makes faster than steps run wait in a backlog, taken in while fewer than
TRACK_AHEAD invocations are ready or running: a million-step fan-out holds the loop's state
of a few thousand unfinished steps, not of a million. Retries are due times the engine
keeps; the queue wait ends when the next one is due. Every few moments it heartbeats and
looks for a stop asked through the store. It decides nothing itself: see `runtime.engine`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from branchwork.config.concurrency import step_limits
from branchwork.config.heartbeat import heartbeat_interval
from branchwork.exceptions import (
    BranchworkError,
    ChildRunPaused,
    MissingArtifactError,
    StepFailedError,
    StoreUnavailableError,
)
from branchwork.graph.invocation import Invocation
from branchwork.ids import new_id
from branchwork.metadata.queries import EarlierRun, latest_step_run
from branchwork.metadata.recorder import Recorder
from branchwork.metadata.runs import request_stop, stop_request
from branchwork.runtime import events as E
from branchwork.runtime.body import Outcome
from branchwork.runtime.cache_keys import CacheKeys
from branchwork.runtime.engine import Engine, State
from branchwork.runtime.interrupts import in_slices
from branchwork.runtime.launchers import Launcher
from branchwork.runtime.step_execution import StepRequest, StepResult, not_sent
from branchwork.runtime.step_records import Finished, Invocations, StepRecords, Tracked

logger = logging.getLogger("branchwork")

_CLOSE = object()
_WAKE = object()  # the body began to wait for an outcome: flush what is pending
STOP_POLL_SECONDS = 0.2  # how often the loop looks for a stop asked through the store
FLUSH_EVERY_SECONDS = 0.05  # how long rows may wait for a flush while nobody waits for them
TRACK_AHEAD = 2000  # invocations looked up, ready or running at most (see the docstring)


class RunLoop:
    """Runs the invocations of one pipeline run; see the module docstring."""

    def __init__(
        self,
        *,
        run_id: str,
        run_name: str,
        pipeline_name: str,
        is_dynamic: bool,
        recorder: Recorder,
        artifact_store: Any,
        launcher: Launcher,
        engine: Engine,
        default_retry: Any = None,
        previous_run: Callable[[], EarlierRun | None] = lambda: None,
        parameters: dict[str, Any] | None = None,
        refresh: bool | frozenset[str] = False,
        concurrency_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.pipeline_name = pipeline_name
        self.recorder = recorder
        self.artifact_store = artifact_store
        self.launcher = launcher
        self.engine = engine
        self.default_retry = default_retry  # the pipeline's, for steps without their own
        self.failure_mode = engine.failure_mode
        self.failure: StepFailedError | None = None  # the run's first, as the body sees it
        # The first invocation whose child run paused at a question (as the body sees it):
        # no failure, but the run pauses with it once the rest has finished.
        self.paused_child: StepFailedError | None = None
        self._tracked = Invocations(self._recorded_earlier)  # the loop thread's alone
        self._records = StepRecords(recorder, pipeline_name, is_dynamic, self._tracked)
        self._cache = CacheKeys(recorder, self._tracked, previous_run, parameters or {})
        self._refresh = refresh  # True, or the names of the steps to recompute
        self._concurrency_limits = concurrency_limits or {}  # the run's named limits
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="branchwork-loop", daemon=True)
        # Waited on instead of Thread.join(): a join that Ctrl-C interrupted can return at
        # once the next time, with the thread still running (CPython gh-90882).
        self._ended = threading.Event()
        self._crash: BaseException | None = None
        self._closing = False
        self._closed = False
        self._children_asked: str | None = None  # the stop asked of child runs, if any
        self._warned_oversized: set[str] = set()
        self._heartbeat_every = heartbeat_interval()
        self._last_heartbeat = self._last_poll = time.time()
        self._unresolved: list[tuple[Outcome, Any, Any]] = []  # resolved once flushed
        self._flush_due: float | None = None  # when what was recorded must be written
        self._waiters = 0  # body threads waiting for an outcome (see `awaited`)
        self._waiters_lock = threading.Lock()
        self._backlog: deque[tuple[Invocation, Outcome]] = deque()  # calls not yet tracked
        self._reads_told: tuple[str, ...] = ()  # the last `value_inputs` the engine was given
        self._read_back: dict[str, Finished] = {}  # see `_recorded_earlier`

    # ---- any thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def add(self, calls: list[tuple[Invocation, Outcome]]) -> None:
        """Hand step calls to the loop; their outcomes are resolved once recorded. A call
        of a step whose concurrency limit the run does not size fails here, in the caller."""
        for invocation, _ in calls:
            step_limits(invocation.step, self._concurrency_limits, self.pipeline_name)
        self._events.put(calls)
        if self._crash is not None:  # the loop may have drained its queue already
            for _, outcome in calls:
                outcome.resolve(error=self._crashed())

    @contextlib.contextmanager
    def awaited(self) -> Iterator[None]:
        """While a body thread waits for an outcome, the loop flushes as soon as it has
        outcomes to resolve rather than gathering rows for FLUSH_EVERY_SECONDS."""
        with self._waiters_lock:
            self._waiters += 1
        self._events.put(_WAKE)
        try:
            yield
        finally:
            with self._waiters_lock:
                self._waiters -= 1

    def request_stop(self, abandon: bool) -> None:
        """Stop the run: nothing new starts and, with `abandon`, running steps are given up
        (step processes killed, attempts recorded STOPPED)."""
        self._events.put(E.Stop(abandon))

    @property
    def stopped(self) -> bool:
        return self.engine.stopped

    def running_steps(self) -> int:
        return self.engine.running

    def wait_ended(self, timeout: float) -> bool:
        """Wait until the loop has ended; False on timeout."""
        return self._ended.wait(timeout)

    def close(self, cancel: bool = False) -> None:
        """Stop accepting work and wait until every started step has finished (or was
        abandoned). Safe to call again, e.g. after an interrupted wait."""
        if cancel:
            self._events.put(E.Cancel(None))
        if not self._closed:
            self._closed = True
            self._events.put(_CLOSE)
        in_slices(self._ended.wait)  # a second Ctrl-C abandons the steps at once
        self.launcher.shutdown(wait=not self.engine.abandoned)
        self.raise_if_crashed()

    def raise_if_crashed(self) -> None:
        if self._crash is not None:
            raise self._crashed()

    def _crashed(self) -> BaseException:
        if isinstance(self._crash, StoreUnavailableError):
            return self._crash  # says what happened and what to do
        error = BranchworkError(
            f"The orchestration loop of run '{self.run_name}' crashed: {self._crash}"
        )
        error.__cause__ = self._crash
        return error

    # ---- after the loop ended -------------------------------------------------------------

    def traceback_of(self, invocation_id: str) -> str | None:
        """The traceback of the last failed attempt of an invocation."""
        item = self._tracked.get(invocation_id)
        attempt = item.last_attempt if item else None
        return attempt.traceback if attempt else None

    def record_outputs(self, version_ids: list[str]) -> None:
        """The artifact versions the pipeline returned, in order."""
        for position, version_id in enumerate(version_ids):
            self.recorder.run_output(position, version_id)

    # ---- the loop thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not (self._closing and self.engine.idle and not self._backlog):
                batch = self._next_batch()
                now = time.time()
                if now - self._last_poll >= STOP_POLL_SECONDS:
                    self._last_poll = now
                    batch.extend(self._stop_requested_in_store())
                self._process(batch, now, self._unresolved)
                # (calls taken from the backlog make rows and outcomes on an empty batch too)
                if self._flush_due is None and (batch or self._unresolved):
                    self._flush_due = now + FLUSH_EVERY_SECONDS
                if now - self._last_heartbeat >= self._heartbeat_every:
                    self._flush_due = now  # the flush heartbeats
                due = self._flush_due
                if (self._waiters and self._unresolved) or (
                    due is not None and (self.engine.stopped or now >= due)
                ):
                    self._flush()  # outcomes to hand out, the run stops, or rows waited enough
            self._flush()
        except BaseException as error:  # noqa: BLE001 - surfaced to the body by its outcomes
            self._crash = error
            if isinstance(error, StoreUnavailableError):  # it says what happened and what to do
                logger.error("The orchestration loop of run '%s' stopped: %s", self.run_name, error)
            else:
                logger.exception("The orchestration loop of run '%s' crashed", self.run_name)
            self._wake_everyone()
        finally:
            self._ended.set()

    def _flush(self) -> None:
        """Write what was recorded, then resolve the outcomes it concerns. The run heartbeats
        with every write: a run whose process died before its next heartbeat read ended
        when it was last seen, before steps it had recorded ended (a duration of "<1ms")."""
        self._last_heartbeat = time.time()
        self.recorder.run_update(heartbeat=self._last_heartbeat)
        self.recorder.flush()
        self._flush_due = None
        unresolved, self._unresolved = self._unresolved, []
        for outcome, outputs, error in unresolved:
            outcome.resolve(outputs, error)

    def _next_batch(self) -> list[Any]:
        """What is on the queue, waiting until something is, a retry or a flush is due, or
        it is time to heartbeat or look for a stop request."""
        wait = 0.0 if self._room_ahead() else min(self._heartbeat_every, STOP_POLL_SECONDS)
        for due in (self.engine.next_due, self._flush_due):
            if due is not None:
                wait = max(0.0, min(wait, due - time.time()))
        try:
            batch = [self._events.get(timeout=wait)]
        except queue.Empty:
            batch = []
        while True:
            try:
                batch.append(self._events.get_nowait())
            except queue.Empty:
                return batch

    def _wake_everyone(self) -> None:
        crash = self._crashed()
        for outcome, _, _ in self._unresolved:  # succeeded, waiting for a flush that failed
            outcome.resolve(error=crash)
        for item in self._tracked.open.values():
            item.outcome.resolve(error=crash)
        for _, outcome in self._backlog:
            outcome.resolve(error=crash)
        while True:  # calls the loop never took in
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, list):
                for _, outcome in item:
                    outcome.resolve(error=crash)

    def _stop_child_runs(self, abandon: bool) -> None:
        """A run that stops stops its unfinished child runs the same way (`pipelines.nesting`):
        through the store, which their loops watch wherever they run."""
        level = "abandon" if abandon else "graceful"
        if self._children_asked != level and self._children_asked != "abandon":
            self._children_asked = level
            request_stop(self.recorder.engine, self.run_id, level, children=True)

    def _stop_requested_in_store(self) -> list[E.Stop]:
        """A stop asked through the store (Ctrl-C in a process that submitted the run
        elsewhere); a run someone else finished is abandoned."""
        if self.engine.abandoned:
            return []
        requested = stop_request(self.recorder.engine, self.run_id)
        if requested == "abandon":
            return [E.Stop(True)]
        if requested == "graceful" and not self.engine.stopped:
            return [E.Stop(False)]
        return []

    def _process(self, batch: list[Any], now: float, resolved: list[Any]) -> None:
        """Feed a batch to the engine. A stop is handled before what came after it: a result
        behind an abandoning stop is then dropped as the engine abandoned its step, rather
        than recorded as a success the engine abandons next."""
        stop = next((i for i, item in enumerate(batch) if isinstance(item, E.Stop)), None)
        if stop is not None and len(batch) > 1:
            for part in (batch[:stop], batch[stop : stop + 1], batch[stop + 1 :]):
                if part:
                    self._process(part, now, resolved)
            return
        events: list[E.Event] = []
        for item in batch:
            if item is _WAKE:
                continue
            if item is _CLOSE:
                self._closing = True
            elif isinstance(item, StepResult):
                if self.engine.state(item.invocation_id) is not State.ABANDONED:
                    events.append(self._on_result(item, resolved))
            elif isinstance(item, list):
                self._backlog.extend(item)
            else:
                if isinstance(item, E.Stop):
                    self._stop_child_runs(item.abandon)
                events.append(item)
        events.extend(self._from_backlog())
        abandoned = self.engine.abandoned
        commands = self.engine.handle(*events, now=now)
        if self.engine.abandoned and not abandoned:
            self.launcher.cancel()  # kill what can be killed; inline threads are left behind
        while commands:
            commands = self.engine.handle(*self._execute(commands, resolved), now=now)

    def _room_ahead(self) -> bool:
        """Whether the backlog is to be taken in: refilled by halves, so the cache lookup
        of the calls taken in still covers many keys."""
        return bool(self._backlog) and self.engine.active <= TRACK_AHEAD // 2

    def _from_backlog(self) -> list[E.Added]:
        if not self._room_ahead():
            return []
        taken = min(len(self._backlog), TRACK_AHEAD - self.engine.active)
        return [self._track(*self._backlog.popleft()) for _ in range(taken)]

    def _track(self, invocation: Invocation, outcome: Outcome) -> E.Added:
        self._tracked.add(Tracked(invocation, outcome))
        step = invocation.step
        resources = step.resources
        return E.Added(
            invocation.id,
            step.name,
            step.code_hash,
            invocation.dependencies,
            E.Request(
                float(resources.cpu_count or 0),
                resources.memory_bytes,
                float(resources.gpu_count or 0),
            ),
            invocation.enable_cache,
            step.retry or self.default_retry or E.NO_RETRY,
            step.expire_after.total_seconds() if step.expire_after is not None else None,
            self._refresh is True or (self._refresh is not False and step.name in self._refresh),
            invocation.start_after,
            self.launcher.holds_worker(step),
            step_limits(step, self._concurrency_limits, self.pipeline_name),
            reads=self._new_reads(invocation.value_inputs),
        )

    def _new_reads(self, reads: tuple[str, ...]) -> tuple[str, ...]:
        """The values read since the previous call, once: with the first call after them
        (the calls until the next read share the tuple)."""
        if reads is self._reads_told:
            return ()
        self._reads_told = reads
        return reads

    def _execute(self, commands: list[E.Command], resolved: list[Any]) -> list[E.Event]:
        """Carry out commands; returns the events they produced (cache keys)."""
        keys: list[E.ComputeKey] = []
        try:
            for command in commands:
                self._carry_out(command, keys, resolved)
        finally:
            self.launcher.flush()  # what it held back to send together (Ray's batches)
        return self._cache.compute(keys) if keys else []

    def _carry_out(self, command: E.Command, keys: list[E.ComputeKey], resolved: list[Any]) -> None:
        item = self._tracked[command.invocation_id]
        if isinstance(command, E.ComputeKey):
            keys.append(command)
        elif isinstance(command, E.Launch):
            self._launch(item, command)
        elif isinstance(command, E.UseCached):
            self._cache.decided(item, command)
            self._records.cached(item, new_id(), command.hit)
            resolved.append((item.outcome, item.outputs, None))
            self._tracked.succeeded(item)
        elif isinstance(command, E.Missed):
            self._cache.decided(item, command)
        elif isinstance(command, E.Reuse):
            self._records.taken_over(item, command.record)
            resolved.append((item.outcome, item.outputs, None))
            self._tracked.succeeded(item)
        elif isinstance(command, E.Diverged):
            self._records.diverged(item, command.message, command.record)
        elif isinstance(command, E.RetryScheduled):
            self._retry_scheduled(item, command)
        elif isinstance(command, E.GaveUp):
            self._gave_up(item, resolved)
        elif isinstance(command, E.NotRun):
            error = self._records.not_run(item, command.because_of)
            resolved.append((item.outcome, None, error))
        elif isinstance(command, E.Abandoned):
            resolved.append((item.outcome, None, self._records.abandoned(item)))

    def _launch(self, item: Tracked, command: E.Launch) -> None:
        invocation = item.invocation
        if command.oversized and not self.launcher.refuses_unfit(invocation.step):
            self._warn_oversized(invocation)
        step_run_id = item.running_attempt = new_id()
        self._records.step_run(item, step_run_id, command.attempt, "running", time.time())
        request = StepRequest(
            run_id=self.run_id,
            run_name=self.run_name,
            pipeline_name=self.pipeline_name,
            invocation_id=invocation.id,
            step_run_id=step_run_id,
            attempt=command.attempt,
            step=invocation.step,
            inputs=self._records.inputs_of(invocation),
            artifact_store=self.artifact_store,
        )
        try:
            self.launcher.launch(request, self._events.put)
        except Exception as error:  # noqa: BLE001 - the step's failure, not the loop's crash
            self._events.put(not_sent(request, time.time(), error))

    def _on_result(self, result: StepResult, resolved: list[Any]) -> E.Finished:
        item = self._tracked[result.invocation_id]
        if isinstance(result.error, MissingArtifactError):
            lost = self._records.files_lost(item, result.error)
            if lost is not None:  # an input's files: another attempt cannot help
                result.error, result.retryable = lost, False
        self._records.result(item, result)
        if result.ok:
            resolved.append((item.outcome, item.outputs, None))
            self._tracked.succeeded(item)
        paused = isinstance(result.error, ChildRunPaused)
        return E.Finished(result.invocation_id, result.ok, result.retryable, paused)

    def _retry_scheduled(self, item: Tracked, command: E.RetryScheduled) -> None:
        logger.warning(
            "Step '%s' failed (%s); retrying in %.1fs (attempt %d)",
            command.invocation_id,
            item.last_error,
            command.delay,
            command.attempt,
        )
        self._records.retried(item)

    def _gave_up(self, item: Tracked, resolved: list[Any]) -> None:
        error = self._records.gave_up(item)
        resolved.append((item.outcome, None, error))
        if isinstance(error.__cause__, ChildRunPaused):
            self.paused_child = self.paused_child or error
        elif self.failure is None:
            self.failure = error
            self.recorder.run_update(failed_step=item.invocation.id)
            if self.failure_mode is E.FailureMode.FAIL_FAST:
                self.launcher.cancel()
            if self.failure_mode is not E.FailureMode.CONTINUE_ON_FAILURE:
                # Child runs run on their own loops, which the launcher does not reach: they
                # went on launching steps while the parent waited for them.
                self._stop_child_runs(abandon=self.failure_mode is E.FailureMode.FAIL_FAST)

    def _recorded_earlier(self, invocation_id: str) -> Finished:
        """An invocation that succeeded, once nothing holds its outcome, for a later call
        that names it by id only (`after="name"`): its step run, from the store."""
        earlier = self._read_back.get(invocation_id)
        if earlier is not None:
            return earlier
        self.recorder.flush()
        found = latest_step_run(self.recorder.engine, self.run_id, invocation_id)
        if found is None:
            raise BranchworkError(f"Run '{self.run_name}' has no step run of '{invocation_id}'.")
        if len(self._read_back) >= 1024:  # a few: each named by many calls, read once
            self._read_back.clear()
        step_run_id, step_name = found
        earlier = self._read_back[invocation_id] = Finished(step_name, step_run_id, {})
        return earlier

    def _warn_oversized(self, invocation: Invocation) -> None:
        if invocation.step.name in self._warned_oversized:
            return
        self._warned_oversized.add(invocation.step.name)
        capacity = self.engine.capacity
        resources = invocation.step.resources
        logger.warning(
            "Step '%s' asks for %s, more than this machine offers (cpu=%g, memory=%.1fGB, "
            "gpu=%g); it runs once no other step holds resources, and no step that asks "
            "for some starts beside it (steps asking for none still may).",
            invocation.step.name,
            resources.to_dict(),
            capacity.cpu,
            capacity.memory / 1e9,
            capacity.gpu,
        )
