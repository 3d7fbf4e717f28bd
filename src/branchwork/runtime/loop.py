"""The orchestration loop: the run context a pipeline body executes in.

The pipeline body runs in the caller's thread; each step call becomes an invocation and
returns futures at once. One loop thread owns the engine and the recorder: it takes events
(new invocations, step results, retry timers) off a queue, in batches, lets the engine decide,
carries out its commands (cache lookups, launches), flushes the recorder — one transaction
per batch — and only then resolves futures. So whatever the body sees is already recorded.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any

from branchwork.config.heartbeat import heartbeat_interval
from branchwork.config.retry import StepRetryConfig
from branchwork.exceptions import (
    BranchworkError,
    PipelineDefinitionError,
    ReplayDivergenceError,
    RunStopped,
    StepFailedError,
    StepNotRunError,
    StoreUnavailableError,
)
from branchwork.graph.cache_key import cache_key
from branchwork.graph.invocation import (
    Invocation,
    InvocationIds,
    OutputRef,
    invocation_config,
    make_invocation,
)
from branchwork.ids import new_id
from branchwork.metadata.queries import find_cached
from branchwork.metadata.recorder import Recorder
from branchwork.metadata.runs import stop_request
from branchwork.runtime import engine as E
from branchwork.runtime.futures import StepOutput, outputs_of
from branchwork.runtime.graph_check import GraphCheck
from branchwork.runtime.launchers import Launcher
from branchwork.runtime.step_execution import (
    ArtifactInput,
    StepRequest,
    StepResult,
    StoredArtifact,
    load_input,
)
from branchwork.values import Leaf, encode, leaves_of, tree_map

if TYPE_CHECKING:
    from branchwork.config.run_config import StepOptions
    from branchwork.models import StepRunResponse

logger = logging.getLogger("branchwork")

_CLOSE = object()
STOP_POLL_SECONDS = 0.2  # how often the loop looks for a stop asked through the store
_NO_RETRY = StepRetryConfig()


class _Slot:
    """What the loop knows about one invocation."""

    __slots__ = (
        "invocation",
        "done",
        "error",
        "outputs",
        "versions",
        "step_run_id",
        "cache_key",
        "values",
        "last_attempt",
        "attempts_before",
        "running_attempt",
    )

    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation
        self.done = threading.Event()
        self.error: StepFailedError | None = None
        self.outputs: dict[str, StoredArtifact] = {}
        self.versions: dict[str, str] = {}
        self.step_run_id: str | None = None
        self.cache_key: str | None = None
        self.values: dict[str, Any] = {}
        self.last_attempt: StepResult | None = None
        self.attempts_before = 0  # attempts recorded by an earlier session of a resumed run
        self.running_attempt: str | None = None  # step run id of the attempt in flight

    @property
    def last_error(self) -> BaseException | None:
        return self.last_attempt.error if self.last_attempt else None


class RunLoop:
    """Runs the invocations of one pipeline run; see the module docstring."""

    def __init__(
        self,
        *,
        run_id: str,
        run_name: str,
        pipeline_name: str,
        is_dynamic: bool,
        enable_cache: bool,
        recorder: Recorder,
        artifact_store: Any,
        launcher: Launcher,
        engine: E.Engine,
        graph_check: GraphCheck | None = None,
        default_retry: StepRetryConfig | None = None,
        step_options: dict[str, StepOptions] | None = None,
    ) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.pipeline_name = pipeline_name
        self.is_dynamic = is_dynamic
        self.enable_cache = enable_cache
        self.recorder = recorder
        self.artifact_store = artifact_store
        self.launcher = launcher
        self.engine = engine
        self.graph_check = graph_check or GraphCheck(run_name)
        self.default_retry = default_retry  # the pipeline's, for steps without their own
        self.step_options = step_options  # a run configuration's, by step name
        self.ids = InvocationIds()
        self.failure: StepFailedError | None = None
        self._slots: dict[str, _Slot] = {}
        self._events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="branchwork-loop", daemon=True)
        # Waited on instead of Thread.join(): a join that Ctrl-C interrupted can return at
        # once the next time, with the thread still running (CPython gh-90882).
        self._ended = threading.Event()
        self._crash: BaseException | None = None
        self._closing = False
        self._closed = False
        self._warned_oversized: set[str] = set()
        self._values_read: dict[str, None] = {}  # the body's side only: see _read_value_of
        self._heartbeat_every = heartbeat_interval()
        self._tick = min(self._heartbeat_every, STOP_POLL_SECONDS)
        self._last_heartbeat = self._last_poll = time.time()

    # ---- the pipeline body's side -------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def invoke(
        self,
        step: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str | None,
        after: Any,
    ) -> Any:
        self._raise_if_failed()
        invocation = make_invocation(
            self.ids,
            step,
            args,
            kwargs,
            invocation_id,
            after,
            self.pipeline_name,
            self.enable_cache,
            self.step_options,
        )
        if self._values_read:
            invocation.value_inputs = self._value_inputs(invocation)
        self.add([invocation])
        return outputs_of(self, invocation)

    def add(self, invocations: list[Invocation]) -> None:
        """Hand invocations to the loop (all of a static pipeline at once)."""
        events = []
        for invocation in invocations:
            self._slots[invocation.id] = _Slot(invocation)
            step = invocation.step
            resources = step.resources
            request = E.Request(
                float(resources.cpu_count or 0),
                resources.memory_bytes,
                float(resources.gpu_count or 0),
            )
            events.append(
                E.Added(
                    invocation.id,
                    invocation.dependencies,
                    request,
                    invocation.enable_cache or self.graph_check.is_replayed(invocation.id),
                    1 + self._retry_of(step).max_retries,
                )
            )
        self._events.put(events)

    def _value_inputs(self, invocation: Invocation) -> tuple[str, ...]:
        """Values read so far, less those a dependency already waited for."""
        covered = set(invocation.dependencies)
        for dependency in invocation.dependencies:
            covered.update(self._slots[dependency].invocation.value_inputs)
        return tuple(read for read in self._values_read if read not in covered)

    def _read_value_of(self, invocation_id: str) -> None:
        """The body looked at this invocation's outcome: later calls depend on it through a
        value. Its own dependencies leave the set, which keeps the recorded edges few."""
        for dependency in self._slots[invocation_id].invocation.dependencies:
            self._values_read.pop(dependency, None)
        self._values_read[invocation_id] = None

    def value_of(self, output: StepOutput) -> Any:
        slot = self._wait(output)
        self._read_value_of(output.invocation_id)
        if slot.error is not None:
            raise slot.error
        self._raise_if_failed()
        name = output.output_name
        if name is None:
            return None
        cache_name = name if output.index is None else f"{name}[{output.index}]"
        if cache_name not in slot.values:
            slot.values[cache_name] = load_input(ArtifactInput(slot.outputs[name], output.index))
        return slot.values[cache_name]

    def wait_for(self, output: StepOutput, timeout: float | None) -> bool:
        slot = self._slot_of(output)
        done = slot.done.wait(timeout)
        if done:
            self._read_value_of(output.invocation_id)
        return done

    def finish(self, returned: Any) -> tuple[Any, list[OutputRef]]:
        """The body returned: wait for every step, then check the run's outcome."""
        refs: list[OutputRef] = []
        structure = _return_structure(returned, refs, self.pipeline_name)
        for ref in refs:
            if ref.invocation_id not in self._slots:
                raise PipelineDefinitionError(
                    f"Pipeline '{self.pipeline_name}' returned an output of "
                    f"'{ref.invocation_id}', which is not a step of this run."
                )
        self.close()
        if self.failure is not None:  # in every mode, a step that failed fails the run
            raise self.failure
        if self.engine.stopped:
            raise RunStopped(f"Run '{self.run_name}' was stopped on request.")
        return structure, refs

    def request_stop(self, abandon: bool) -> None:
        """Stop the run: nothing new starts and, with `abandon`, running steps are given up
        (step processes killed, attempts recorded STOPPED). Any thread may ask."""
        self._events.put([E.Stop(abandon)])

    @property
    def stopped(self) -> bool:
        return self.engine.stopped

    def running_steps(self) -> int:
        return self.engine.running

    def close(self, cancel: bool = False) -> None:
        """Stop accepting work and wait until every started step has finished (or was
        abandoned). Safe to call again, e.g. after an interrupted wait."""
        if cancel:
            self._events.put([E.Cancel(None)])
        if not self._closed:
            self._closed = True
            self._events.put(_CLOSE)
        self._ended.wait()
        self.launcher.shutdown(wait=not self.engine.abandoned)
        if isinstance(self._crash, StoreUnavailableError):
            raise self._crash  # says what happened and what to do
        if self._crash is not None:
            raise BranchworkError(
                f"The orchestration loop of run '{self.run_name}' crashed: {self._crash}"
            ) from self._crash

    def traceback_of(self, invocation_id: str) -> str | None:
        """The traceback of the last failed attempt of an invocation."""
        slot = self._slots.get(invocation_id)
        attempt = slot.last_attempt if slot else None
        return attempt.traceback if attempt else None

    def record_outputs(self, refs: list[OutputRef]) -> None:
        for position, ref in enumerate(refs):
            self.recorder.run_output(position, self._slots[ref.invocation_id].versions[ref.output])

    def _slot_of(self, output: StepOutput) -> _Slot:
        slot = self._slots.get(output.invocation_id)
        if slot is None or output._context is not self:
            raise PipelineDefinitionError(
                f"{output!r} does not belong to the running pipeline '{self.pipeline_name}'."
            )
        return slot

    def _wait(self, output: StepOutput) -> _Slot:
        slot = self._slot_of(output)
        slot.done.wait()
        if self._crash is not None:
            raise BranchworkError(f"The orchestration loop crashed: {self._crash}") from self._crash
        return slot

    def _raise_if_failed(self) -> None:
        continuing = self.engine.failure_mode is E.FailureMode.CONTINUE_ON_FAILURE
        if self.failure is not None and not continuing:
            raise self.failure

    # ---- the loop thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    batch = [self._events.get(timeout=self._tick)]
                except queue.Empty:
                    batch = []
                while True:
                    try:
                        batch.append(self._events.get_nowait())
                    except queue.Empty:
                        break
                now = time.time()
                if now - self._last_poll >= STOP_POLL_SECONDS:
                    self._last_poll = now
                    batch.extend(self._stop_requested_in_store())
                resolved: list[_Slot] = []
                self._process(batch, resolved)
                if now - self._last_heartbeat >= self._heartbeat_every:
                    self._last_heartbeat = now
                    self.recorder.run_update(heartbeat=now)
                self.recorder.flush()
                for slot in resolved:
                    slot.done.set()
                if self._closing and self.engine.idle:
                    return
        except BaseException as error:  # noqa: BLE001 - surfaced to the body by close()/_wait()
            self._crash = error
            logger.exception("The orchestration loop of run '%s' crashed", self.run_name)
            for slot in self._slots.values():
                slot.done.set()
        finally:
            self._ended.set()

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

    def _process(self, batch: list[Any], resolved: list[_Slot]) -> None:
        events: list[E.Event] = []
        for item in batch:
            if item is _CLOSE:
                self._closing = True
            elif isinstance(item, StepResult):
                if self.engine.state(item.invocation_id) is not E.State.ABANDONED:
                    events.append(self._on_result(item, resolved))
            elif isinstance(item, list):
                events.extend(item)
            else:
                events.append(item)
        abandoned = self.engine.abandoned
        commands = self.engine.handle(*events)
        if self.engine.abandoned and not abandoned:
            self.launcher.cancel()  # kill what can be killed; inline threads are left behind
        while commands:
            commands = self._execute(commands, resolved)

    def _execute(self, commands: list[E.Command], resolved: list[_Slot]) -> list[E.Command]:
        events: list[E.Event] = []
        to_check: list[_Slot] = []
        for command in commands:
            if isinstance(command, E.CheckCache):
                to_check.append(self._slots[command.invocation_id])
            elif isinstance(command, E.Launch):
                self._launch(command)
            elif isinstance(command, E.RetryLater):
                self._schedule_retry(command)
            elif isinstance(command, E.GaveUp):
                self._gave_up(self._slots[command.invocation_id], resolved)
            elif isinstance(command, E.NotRun):
                self._not_run(self._slots[command.invocation_id], command.because_of, resolved)
            elif isinstance(command, E.Abandoned):
                self._abandoned(self._slots[command.invocation_id], resolved)
        if to_check:
            events.extend(self._check_cache(to_check, resolved))
        return self.engine.handle(*events) if events else []

    def _retry_of(self, step: Any) -> StepRetryConfig:
        return step.retry or self.default_retry or _NO_RETRY

    def _content_hash(self, ref: OutputRef) -> str:
        return self._slots[ref.invocation_id].outputs[ref.output].content_hash

    def _check_cache(self, slots: list[_Slot], resolved: list[_Slot]) -> list[E.Event]:
        events: list[E.Event] = []
        unsettled = []
        for slot in slots:
            key = slot.cache_key = cache_key(slot.invocation, self._content_hash)
            verdict = self.graph_check.check(slot.invocation, key)
            slot.attempts_before = verdict.attempts_before
            if verdict.divergence is not None:
                self._diverged(slot, verdict.divergence, events)
            elif verdict.reuse is not None:
                self._reuse(slot, verdict.reuse, resolved, events)
            else:
                unsettled.append(slot)
        slots = unsettled
        cacheable = [s for s in slots if s.invocation.enable_cache]
        events.extend(
            E.CacheMissed(s.invocation.id) for s in slots if not s.invocation.enable_cache
        )
        hits = find_cached(
            self.recorder.engine, [slot.cache_key for slot in cacheable if slot.cache_key]
        )
        now = time.time()
        for slot in cacheable:
            hit = hits.get(slot.cache_key or "")
            if hit is None or self.engine.state(slot.invocation.id) is not E.State.CACHE_CHECK:
                events.append(E.CacheMissed(slot.invocation.id))
                continue
            original_id, rows = hit
            step_run_id = new_id()
            self._record_step_run(slot, step_run_id, 1, "cached", now, original_id)
            for name, row in rows.items():
                self.recorder.output(step_run_id, name, row.id)
                slot.outputs[name] = StoredArtifact(
                    row.uri, row.materializer, row.data_type, row.content_hash
                )
                slot.versions[name] = row.id
            slot.step_run_id = step_run_id
            resolved.append(slot)
            events.append(E.Finished(slot.invocation.id, True))
        return events

    def _reuse(
        self, slot: _Slot, record: StepRunResponse, resolved: list[_Slot], events: list[E.Event]
    ) -> None:
        """Take over what an earlier session of this resumed run recorded."""
        for name, version in record.outputs.items():
            slot.outputs[name] = StoredArtifact(
                version.uri, version.materializer, version.data_type, version.content_hash
            )
            slot.versions[name] = version.id
        slot.step_run_id = record.id
        resolved.append(slot)
        events.append(E.Finished(slot.invocation.id, True))

    def _diverged(self, slot: _Slot, message: str, events: list[E.Event]) -> None:
        invocation_id = slot.invocation.id
        now = time.time()
        error = ReplayDivergenceError(message, invocation_id)
        slot.last_attempt = StepResult(invocation_id, "", 0, now, now, error=error)
        events.append(E.Finished(invocation_id, False, retryable=False))

    def _record_step_run(
        self,
        slot: _Slot,
        step_run_id: str,
        attempt: int,
        status: str,
        start: float,
        original_id: str | None = None,
    ) -> None:
        invocation = slot.invocation
        inputs: list[tuple[str, str]] = []
        _input_links(invocation.inputs, "", self._slots, inputs)
        self.recorder.step_run(
            step_run_id,
            invocation.id,
            invocation.step.name,
            attempt,
            status,
            start,
            invocation.step.code_hash,
            slot.cache_key,
            json.dumps(invocation_config(invocation)) if self.is_dynamic else None,
            inputs,
            [p for p in (self._slots[d].step_run_id for d in invocation.dependencies) if p],
            original_id,
        )

    def _launch(self, command: E.Launch) -> None:
        slot = self._slots[command.invocation_id]
        attempt = command.attempt + slot.attempts_before
        invocation = slot.invocation
        if command.oversized:
            self._warn_oversized(invocation)
        if slot.cache_key is None:  # recorded even when caching is off, for later runs
            slot.cache_key = cache_key(invocation, self._content_hash)
        step_run_id = slot.running_attempt = new_id()
        self._record_step_run(slot, step_run_id, attempt, "running", time.time())
        request = StepRequest(
            run_id=self.run_id,
            run_name=self.run_name,
            pipeline_name=self.pipeline_name,
            invocation_id=invocation.id,
            step_run_id=step_run_id,
            attempt=attempt,
            step=invocation.step,
            inputs=_resolve_inputs(invocation.inputs, self._slots),
            artifact_store=self.artifact_store,
        )
        self.launcher.launch(request, self._events.put)

    def _on_result(self, result: StepResult, resolved: list[_Slot]) -> E.Event:
        slot = self._slots[result.invocation_id]
        metadata = json.dumps(result.metadata, default=repr) if result.metadata else None
        if result.logs:
            self.recorder.step_log(result.step_run_id, result.logs)
        if not result.ok:
            slot.last_attempt = result
            self.recorder.step_finished(
                result.step_run_id,
                "failed",
                result.end_time,
                result.error,
                result.traceback,
                metadata,
            )
            return E.Finished(result.invocation_id, False, result.retryable)
        step = slot.invocation.step
        for name, stored in result.outputs.items():
            slot.versions[name] = self.recorder.new_version(
                result.step_run_id,
                name,
                f"{self.pipeline_name}::{step.name}::{name}",
                stored.uri,
                stored.data_type,
                stored.materializer,
                stored.content_hash,
                result.end_time,
            )
        slot.outputs = result.outputs
        slot.step_run_id = result.step_run_id
        self.recorder.step_finished(
            result.step_run_id, "completed", result.end_time, metadata=metadata
        )
        resolved.append(slot)
        return E.Finished(result.invocation_id, True)

    def _schedule_retry(self, command: E.RetryLater) -> None:
        slot = self._slots[command.invocation_id]
        delay = self._retry_of(slot.invocation.step).delay_before(command.attempt)
        logger.warning(
            "Step '%s' failed (%s); retrying in %.1fs (attempt %d)",
            command.invocation_id,
            slot.last_error,
            delay,
            command.attempt,
        )
        failed = slot.last_attempt
        if failed is not None:
            self.recorder.step_finished(
                failed.step_run_id, "retried", failed.end_time, failed.error, failed.traceback
            )
        timer = threading.Timer(delay, self._events.put, ([E.RetryDue(command.invocation_id)],))
        timer.daemon = True
        timer.start()

    def _gave_up(self, slot: _Slot, resolved: list[_Slot]) -> None:
        invocation = slot.invocation
        error = StepFailedError(
            f"Step '{invocation.step.name}' (invocation '{invocation.id}') of pipeline "
            f"'{self.pipeline_name}' failed: {type(slot.last_error).__name__}: {slot.last_error}",
            invocation.id,
        )
        error.__cause__ = slot.last_error
        slot.error = error
        if self.failure is None:
            self.failure = error
            self.recorder.run_update(failed_step=invocation.id)
            if self.engine.failure_mode is E.FailureMode.FAIL_FAST:
                self.launcher.cancel()
        resolved.append(slot)

    def _abandoned(self, slot: _Slot, resolved: list[_Slot]) -> None:
        invocation = slot.invocation
        slot.error = StepNotRunError(
            f"Step '{invocation.step.name}' (invocation '{invocation.id}') of pipeline "
            f"'{self.pipeline_name}' was abandoned while running: the run was stopped.",
            invocation.id,
        )
        if slot.running_attempt is not None:
            self.recorder.step_finished(slot.running_attempt, "stopped", time.time(), slot.error)
        resolved.append(slot)

    def _not_run(self, slot: _Slot, because_of: str | None, resolved: list[_Slot]) -> None:
        invocation = slot.invocation
        reason = f"'{because_of}' failed" if because_of else "the run was stopped"
        error = StepNotRunError(
            f"Step '{invocation.step.name}' (invocation '{invocation.id}') of pipeline "
            f"'{self.pipeline_name}' did not run because {reason}.",
            invocation.id,
        )
        cause = self._slots[because_of].last_error if because_of in self._slots else None
        error.__cause__ = cause
        slot.error = error
        resolved.append(slot)

    def _warn_oversized(self, invocation: Invocation) -> None:
        if invocation.step.name in self._warned_oversized:
            return
        self._warned_oversized.add(invocation.step.name)
        capacity = self.engine.capacity
        resources = invocation.step.resources
        logger.warning(
            "Step '%s' asks for %s, more than this machine offers (cpu=%g, memory=%.1fGB, "
            "gpu=%g); running it alone.",
            invocation.step.name,
            resources.to_dict(),
            capacity.cpu,
            capacity.memory / 1e9,
            capacity.gpu,
        )


def _resolve_inputs(value: Any, slots: dict[str, _Slot]) -> Any:
    """The inputs with each reference replaced by the stored artifact it names."""
    return tree_map(
        lambda ref: ArtifactInput(slots[ref.invocation_id].outputs[ref.output], ref.item),
        value,
        OutputRef,
    )


def _input_links(
    value: Any, path: str, slots: dict[str, _Slot], into: list[tuple[str, str]]
) -> None:
    """Append (path of the input, artifact version it reads) for each reference."""
    for where, ref in leaves_of(value, OutputRef, path):
        into.append((where, slots[ref.invocation_id].versions[ref.output]))


def _return_structure(value: Any, refs: list[OutputRef], pipeline_name: str) -> Any:
    """The JSON form of a pipeline's return value, its step outputs numbered in `refs`
    (`models.responses` reads it back); only step outputs may be returned."""

    def numbered(output: StepOutput) -> Any:
        if output.output_name is None:
            return None
        refs.append(OutputRef(output.invocation_id, output.output_name, output.index))
        node: dict[str, Any] = {"$out": len(refs) - 1}
        if output.index is not None:
            node["index"] = output.index
        return node

    for _, leaf in leaves_of(value):
        if leaf is not None and not isinstance(leaf, StepOutput):
            raise PipelineDefinitionError(
                f"Pipeline '{pipeline_name}' returned a {type(leaf).__name__} ({leaf!r:.60}); "
                "a pipeline may only return step outputs (or None, or lists/tuples/dicts of "
                "step outputs). Compute the value in a step and return that step's output."
            )
    try:
        return encode(value, Leaf("$out", StepOutput, numbered))
    except TypeError as error:  # a dict key
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline_name}' returned a dict with a key that cannot be recorded: "
            f"{error}. Use str, int, float, bool or tuple keys."
        ) from None
