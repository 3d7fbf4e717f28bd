"""Running one run's orchestration loop in this process: the body of every orchestrator's
orchestration loop, whether it runs where the pipeline was called or in a process of its own.

A `RunSession` takes a typed `RunRequest` (see `runtime.requests`): it records the run
running, starts a `RunLoop`, lets the pipeline body (or a static DAG) feed it, and records the
outcome, which it returns as a `RunOutcome`.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import (
    ChildRunPaused,
    OrchestratorError,
    PipelineDefinitionError,
    PipelineHookError,
    ReplayDivergenceError,
    RunAlreadyStartedError,
    RunStopped,
    StepFailedError,
    StoreUnavailableError,
)
from branchwork.graph.context import run_context
from branchwork.graph.invocation import invocation_config
from branchwork.graph.tracing import Compiled, trace
from branchwork.metadata import error_records
from branchwork.metadata.queries import earlier_run, latest_attempts
from branchwork.metadata.recorder import Recorder, utc
from branchwork.metadata.run_figures import KEPT_FROM
from branchwork.metadata.run_groups import keep_figures
from branchwork.metadata.runs import start_run
from branchwork.metadata.store import get_engine
from branchwork.metadata.waits import record_child_pause
from branchwork.runtime.body import BodyContext
from branchwork.runtime.engine import Engine
from branchwork.runtime.events import FailureMode, Request
from branchwork.runtime.hooks import PipelineHookContext, PipelineHooks
from branchwork.runtime.interrupts import (
    interrupts_deferred,
    sigterm_stops_the_run,
    stop_on_interrupt,
)
from branchwork.runtime.launchers import Launcher
from branchwork.runtime.loop import RunLoop
from branchwork.runtime.replay import graph_check_for
from branchwork.runtime.requests import RunOutcome, RunRequest
from branchwork.runtime.waits import PauseRequested, record_paused

if TYPE_CHECKING:
    from branchwork.models import PipelineSnapshotResponse

logger = logging.getLogger("branchwork")

_orchestrator_run_id: ContextVar[str | None] = ContextVar(
    "branchwork_orchestrator_run_id", default=None
)


def current_orchestrator_run_id() -> str | None:
    """The orchestrator run id of the run whose loop this context hosts, if any."""
    return _orchestrator_run_id.get()


# The sessions of the runs whose loops run in this process, by run id: a pipeline a body calls
# runs as a child run on its run's stack (`pipelines.nesting`), from a launcher thread, and a
# run that ends lets its children here record their own end first.
_running_sessions: dict[str, RunSession] = {}
CHILD_STOP_SECONDS = 5.0  # how long an ending run waits for its child runs to record theirs


def request_of_running_run(run_id: str) -> RunRequest | None:
    """The request of run `run_id`, whose loop runs in this process (None if it does not)."""
    session = _running_sessions.get(run_id)
    return None if session is None else session.request


class RunSession:
    """One run's orchestration loop in this process: `begin()` it, feed it (the pipeline
    body, or a static DAG), then `complete(returned)` or `fail(error)`. `run()` does all of
    it; the caller of a local pipeline drives the steps itself, so that the body it is
    already running carries on into the run (see `pipelines.one_pass`)."""

    def __init__(
        self,
        request: RunRequest,
        *,
        launcher: Launcher,
        capacity: Request,
        max_workers: int,
        orchestrator_run_id: str,
        failure_mode: FailureMode = FailureMode.STOP_ON_FAILURE,
    ) -> None:
        self.request = request
        self.orchestrator_run_id = orchestrator_run_id
        self.pipeline = pipeline = request.pipeline
        options = request.options
        run = request.run
        store = get_engine()
        # A resumed run: what its earlier sessions recorded is replayed by invocation id.
        replay = latest_attempts(store, run.id)
        self.recorder = Recorder(store, run.id)
        graph_check = graph_check_for(request, replay, store)  # a replay's: its original too
        self.graph_check = graph_check
        self.loop = RunLoop(
            run_id=run.id,
            run_name=run.name,
            pipeline_name=pipeline.name,
            is_dynamic=request.snapshot.is_dynamic,
            recorder=self.recorder,
            artifact_store=request.stack.artifact_store,
            launcher=launcher,
            engine=Engine(capacity, max_workers, options.failure_mode or failure_mode, graph_check),
            default_retry=options.retry,
            previous_run=functools.partial(earlier_run, store, pipeline.name, run.id),
            parameters=request.snapshot.parameters,
            refresh=True if options.refresh is True else frozenset(options.refresh or ()),
            concurrency_limits=options.concurrency_limits,
        )
        self.body = BodyContext(
            self.loop,
            pipeline.name,
            options.enable_cache,
            dict(options.step_options),
            options.replay,
        )
        self.outcome = RunOutcome("running")
        self.began = False  # its loop started: it records how the run ends
        self._end_recorded = threading.Event()  # a parent run ending waits for it
        context = PipelineHookContext(
            hook="",
            run_id=run.id,
            run_name=run.name,
            pipeline_name=pipeline.name,
            parameters=dict(request.snapshot.parameters),
            resumed=run.start_time is not None,  # an earlier session started it
        )
        self.hooks = PipelineHooks(pipeline, context)

    def begin(self) -> BodyContext:
        """Record the run running and start its loop (both, or neither: a Ctrl-C waits),
        then call the pipeline's on_start hook: if it raises, the run is recorded failed
        and the PipelineHookError raised. A run that is no longer initializing is left as
        it is, its loop not started: RunStopped if it was stopped (Ctrl-C where it was
        submitted), else RunAlreadyStartedError (another loop has it)."""
        with interrupts_deferred():
            self.recorder.flush()
            found = start_run(
                self.recorder.engine, self.loop.run_id, self.orchestrator_run_id, time.time()
            )
            if found == "stopped":
                raise RunStopped(f"Run '{self.loop.run_name}' was stopped before its loop began.")
            if found == "deleted":
                raise OrchestratorError(f"Run '{self.loop.run_name}' was deleted before it began.")
            if found is not None:
                raise RunAlreadyStartedError(
                    f"Run '{self.loop.run_name}' has already started (status {found})."
                )
            self.loop.start()
            self.began = True
            self._token = _orchestrator_run_id.set(self.orchestrator_run_id)
            _running_sessions[self.loop.run_id] = self
        try:
            self.hooks.start()
        except BaseException as error:  # Ctrl-C in on_start too: the end hooks still run
            self.fail(error)  # which raises an interrupt again itself
            raise
        return self.body

    def _end(self, outcome: RunOutcome) -> RunOutcome:
        self.outcome = outcome
        _orchestrator_run_id.reset(self._token)
        self._wait_for_children()
        try:
            self.recorder.flush()  # its end, after its children's
        finally:
            self._end_recorded.set()
            _running_sessions.pop(self.loop.run_id, None)
        return outcome

    def _wait_for_children(self) -> None:
        """Child runs whose loops run in this process were asked to stop with this run (see
        `RunLoop`): let them record it (bounded) before this process may exit."""
        children = [
            session
            for session in list(_running_sessions.values())
            if session.request.run.parent_run_id == self.loop.run_id
        ]
        deadline = time.monotonic() + CHILD_STOP_SECONDS
        for child in children:
            child._end_recorded.wait(max(0.0, deadline - time.monotonic()))

    def run(self) -> RunOutcome:
        """Run the pipeline as the request's run and record everything; returns how it
        ended rather than raising for a failed run, and re-raises KeyboardInterrupt (and
        `Terminated`: SIGTERM stops the run, see `interrupts.sigterm_stops_the_run`)."""
        with sigterm_stops_the_run():
            return self._run()

    def _run(self) -> RunOutcome:
        try:
            body = self.begin()
        except PipelineHookError:
            return self.outcome  # recorded failed by begin()
        request, pipeline = self.request, self.pipeline
        try:
            params = pipeline.parameters_from_record(
                request.snapshot.parameters, request.options.typed_parameters
            )
            if request.snapshot.is_dynamic:
                with run_context(body):
                    returned = pipeline.func(**params)
            else:
                compiled = request.compiled or self._traced_again(params)
                _check_still_static(pipeline.name, compiled)
                body.add(compiled.invocations, compiled.calls)
                returned = compiled.returned
        except BaseException as error:
            return self.fail(error)
        return self.complete(returned)

    def _traced_again(self, params: dict[str, Any]) -> Compiled:
        """A static run's graph, traced again where its loop runs (an orchestration process,
        a job): it must be the graph its snapshot recorded where the run was started, or
        the store would describe steps other than those that ran."""
        request, pipeline = self.request, self.pipeline
        compiled = trace(
            pipeline.func,
            params,
            pipeline.name,
            request.options.enable_cache,
            dict(request.options.step_options),
        )
        if not (self.hooks.context.resumed or request.options.replay):  # (overrides apply later)
            _check_same_graph(pipeline.name, compiled, request.snapshot)
        return compiled

    def complete(self, returned: Any) -> RunOutcome:
        """The body returned `returned`: wait for every step and record the outcome."""
        if self.outcome.status != "running":  # on_start failed it already
            return self.outcome
        try:
            structure, version_ids = self.body.finish(returned)
            left_behind = self.graph_check.left_behind()
            if left_behind is not None:
                invocation_id, message = left_behind
                raise ReplayDivergenceError(message, invocation_id)
            self.loop.record_outputs(version_ids)
        except BaseException as error:
            return self.fail(error)
        self.recorder.run_update(
            status="completed", end_time=utc(time.time()), output_structure=json.dumps(structure)
        )
        outcome = self._end(RunOutcome("completed"))
        self._end_hooks(outcome)
        self._keep_figures()
        return outcome

    def fail(self, error: BaseException) -> RunOutcome:
        """The body (or the loop) raised `error`: stop, record, and re-raise it if it is an
        interrupt."""
        if self.outcome.status != "running":  # on_start failed it already
            if not isinstance(error, Exception):
                raise error
            return self.outcome
        if isinstance(error, PauseRequested):
            return self._pause(functools.partial(record_paused, self.recorder, error))
        paused = self._child_pause(error)
        if paused is not None:
            return self._pause(functools.partial(self._record_child_pause, paused))
        interrupted = isinstance(error, KeyboardInterrupt)
        if isinstance(error, KeyboardInterrupt):
            stop_on_interrupt(self.loop, error)
        stopped, cause = _record_failure(self.loop, self.recorder, error, interrupted)
        outcome = self._end(RunOutcome("stopped" if stopped else "failed", cause))
        self._end_hooks(outcome)
        self._keep_figures()
        if not isinstance(error, Exception):
            raise error
        return outcome

    def _child_pause(self, error: BaseException) -> StepFailedError | None:
        """The invocation whose child run paused at a question, if that is what ended the
        body (`error`: its output, or that of an invocation that could not run without it)."""
        if isinstance(error, StepFailedError) and isinstance(error.__cause__, ChildRunPaused):
            return self.loop.paused_child
        return None

    def _pause(self, record: Callable[[], object]) -> RunOutcome:
        """The body waits for an answer, to its own question (`runtime.waits`) or a child
        run's: the steps it called finish, then `record` records the run PAUSED and this
        session ends; a step that failed meanwhile fails the run instead. Run hooks wait for
        the run's real end."""
        try:
            self.loop.close()
        except BaseException as error:  # noqa: BLE001 - recorded as any failure is
            return self.fail(error)
        if self.loop.failure is not None:
            return self.fail(self.loop.failure)
        record()
        outcome = self._end(RunOutcome("paused"))
        self._keep_figures()
        return outcome

    def _record_child_pause(self, paused: StepFailedError) -> None:
        """The run paused with its child run (`metadata.waits`): answering the child's
        question resumes this run, which resumes the child where it calls it."""
        self.recorder.flush()
        record_child_pause(
            self.recorder.engine, self.loop.run_id, paused.invocation_id, str(paused.__cause__)
        )

    def _keep_figures(self) -> None:
        """Once the run's end is recorded and its hooks have run, a big run keeps its figures
        per step name (`metadata.run_figures`); a resumed one does too, its size being its
        sessions' together. Best effort: a run whose figures are not kept is read from its
        step runs, as any run can be."""
        recorder = self.recorder
        if not (self.hooks.context.resumed or recorder.step_runs_recorded >= KEPT_FROM):
            return
        try:
            keep_figures(recorder.engine, recorder.run_id)
        except Exception as error:  # noqa: BLE001 - the run ended as recorded, whatever this does
            logger.warning(
                "Could not keep the figures of run %s (%s); reading it counts its step runs.",
                recorder.run_id,
                str(error).splitlines()[0] if str(error) else type(error).__name__,
            )

    def _end_hooks(self, outcome: RunOutcome) -> None:
        """The pipeline's end hooks; what they raised is recorded with the run."""
        self.hooks.end(outcome.status, outcome.error)
        if self.hooks.errors:
            self.recorder.run_update(hook_errors=json.dumps(self.hooks.errors))
            self.recorder.flush()


def _check_still_static(pipeline_name: str, compiled: Compiled) -> None:
    """A static run's body, traced again (a resume of an edited body, its orchestration
    process), must still give a static graph: one that now raised was taken for an empty
    graph, and the resume recorded the run completed around its failed step."""
    if compiled.error is not None:
        raise compiled.error
    if compiled.is_dynamic:
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline_name}' ran as a static pipeline, but its body now needs a "
            f"step's value ({compiled.reason}). A run keeps the kind it started with: start a "
            "new run, or make the pipeline dynamic (@pipeline(dynamic=True))."
        )


def _check_same_graph(
    pipeline_name: str, compiled: Compiled, snapshot: PipelineSnapshotResponse
) -> None:
    """Raise PipelineDefinitionError, naming an invocation, if `compiled` is not the graph
    the snapshot recorded: a static body that draws a random seed, reads the clock or a
    global the caller set at run time builds another graph in each process."""
    recorded = {name: c.config for name, c in snapshot.step_configurations.items()}
    here = {i.id: json.loads(json.dumps(invocation_config(i))) for i in compiled.invocations}
    if recorded == here:
        return
    name = min(recorded.keys() ^ here.keys() or (n for n in here if here[n] != recorded[n]))
    if name in recorded and name in here:
        ours, theirs = here[name], recorded[name]
        differs = "; ".join(
            f"{key} {theirs.get(key)!r} there, {ours.get(key)!r} here"
            for key in sorted(ours.keys() | theirs.keys())
            if ours.get(key) != theirs.get(key)
        )
    else:
        differs = "built only " + ("here" if name in here else "there")
    raise PipelineDefinitionError(
        f"Pipeline '{pipeline_name}' is static, and its body built another graph where its "
        f"loop runs than where the run was started: invocation '{name}': {differs}. A static "
        "body runs in both places: make what varies (a random seed, the clock, a global set "
        "at run time) a parameter or a step, or make the pipeline dynamic "
        "(@pipeline(dynamic=True))."
    )


def _record_failure(
    loop: RunLoop,
    recorder: Recorder,
    error: BaseException,
    interrupted: bool,
) -> tuple[bool, BaseException]:
    """Record the run's failure (or stop); returns whether it stopped, and the exception
    that caused it."""
    try:
        loop.close(cancel=True)  # running steps finish and are recorded
    except KeyboardInterrupt as interrupt:
        interrupted = True
        stop_on_interrupt(loop, interrupt)
    except StoreUnavailableError:
        raise  # nothing can be recorded: the run reads lost, and resumes, once it is back
    except Exception as crash:  # the loop itself failed: that is the run's error
        error = crash
    stopped = interrupted or loop.stopped
    failure = None if stopped else loop.failure
    if failure is None and isinstance(error, StepFailedError) and not stopped:
        failure = error
    if failure is not None:
        cause = failure.__cause__ or failure
        failed_step: str | None = failure.invocation_id
        text = loop.traceback_of(failure.invocation_id)
    elif stopped and not isinstance(error, KeyboardInterrupt):
        failed_step, text = None, None
        cause = (
            error
            if isinstance(error, RunStopped)
            else RunStopped(f"Run '{loop.run_name}' was stopped on request.")
        )
    else:
        cause, failed_step, text = error, None, None
    message = error_records.message_of(cause) or (
        # a Ctrl-C stopped the run; one a step raised itself is that step's failure
        "stopped by Ctrl-C" if isinstance(cause, KeyboardInterrupt) and not failed_step else ""
    )
    recorder.run_update(
        status="stopped" if stopped else "failed",
        end_time=utc(time.time()),
        failed_step=failed_step,
        exception_type=error_records.type_name_of(cause),
        exception_message=message,
        exception_data=error_records.encode(cause),
        traceback=text or error_records.traceback_of(cause),
    )
    return stopped, cause
