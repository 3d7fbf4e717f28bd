"""Running one run's orchestration loop in this process: the body of every orchestrator's
orchestration loop, whether it runs where the pipeline was called or in a process of its own.

A `RunSession` takes a typed `RunRequest` (see `runtime.requests`): it records the run
running, starts a `RunLoop`, lets the pipeline body (or a static DAG) feed it, and records the
outcome, which it returns as a `RunOutcome`.
"""

from __future__ import annotations

import functools
import json
import time
import traceback
from contextvars import ContextVar
from typing import Any

from branchwork.exceptions import RunStopped, StepFailedError, StoreUnavailableError
from branchwork.graph.context import run_context
from branchwork.graph.tracing import trace
from branchwork.metadata import error_records
from branchwork.metadata.queries import earlier_run, get_run
from branchwork.metadata.recorder import Recorder, utc
from branchwork.metadata.store import get_engine
from branchwork.runtime.body import BodyContext
from branchwork.runtime.engine import Engine
from branchwork.runtime.events import FailureMode, Request
from branchwork.runtime.graph_check import GraphCheck
from branchwork.runtime.hooks import call_hook
from branchwork.runtime.interrupts import interrupts_deferred, stop_on_interrupt
from branchwork.runtime.launchers import Launcher
from branchwork.runtime.loop import RunLoop
from branchwork.runtime.requests import RunOutcome, RunRequest

_orchestrator_run_id: ContextVar[str | None] = ContextVar(
    "branchwork_orchestrator_run_id", default=None
)


def current_orchestrator_run_id() -> str | None:
    """The orchestrator run id of the run whose loop this context hosts, if any."""
    return _orchestrator_run_id.get()


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
        replay = get_run(store, run.id).steps
        self.recorder = Recorder(store, run.id)
        graph_check = GraphCheck(run.name, replay, options.accept_new_graph)
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
        )
        self.body = BodyContext(
            self.loop, pipeline.name, options.enable_cache, dict(options.step_options)
        )
        self.outcome = RunOutcome("running")

    def begin(self) -> BodyContext:
        """Record the run running and start its loop (both, or neither: a Ctrl-C waits)."""
        now = time.time()
        self.recorder.run_update(
            status="running",
            start_time=utc(now),
            heartbeat=now,
            orchestrator_run_id=self.orchestrator_run_id,
        )
        with interrupts_deferred():
            self.recorder.flush()
            self.loop.start()
            self._token = _orchestrator_run_id.set(self.orchestrator_run_id)
        return self.body

    def _end(self, outcome: RunOutcome) -> RunOutcome:
        self.outcome = outcome
        _orchestrator_run_id.reset(self._token)
        return outcome

    def run(self) -> RunOutcome:
        """Run the pipeline as the request's run and record everything; returns how it
        ended rather than raising for a failed run, and re-raises KeyboardInterrupt."""
        body = self.begin()
        request, pipeline = self.request, self.pipeline
        params = request.snapshot.parameters
        try:
            if request.snapshot.is_dynamic:
                with run_context(body):
                    returned = pipeline.func(**params)
            else:
                compiled = request.compiled or trace(
                    pipeline.func,
                    params,
                    pipeline.name,
                    request.options.enable_cache,
                    dict(request.options.step_options),
                )
                body.add(compiled.invocations)
                returned = compiled.returned
        except BaseException as error:
            return self.fail(error)
        return self.complete(returned)

    def complete(self, returned: Any) -> RunOutcome:
        """The body returned `returned`: wait for every step and record the outcome."""
        try:
            structure, refs = self.body.finish(returned)
            self.loop.record_outputs(refs)
        except BaseException as error:
            return self.fail(error)
        self.recorder.run_update(
            status="completed", end_time=utc(time.time()), output_structure=json.dumps(structure)
        )
        self.recorder.flush()
        call_hook(self.pipeline.on_success, None, f"on_success of pipeline '{self.pipeline.name}'")
        return self._end(RunOutcome("completed"))

    def fail(self, error: BaseException) -> RunOutcome:
        """The body (or the loop) raised `error`: stop, record, and re-raise it if it is an
        interrupt."""
        interrupted = isinstance(error, KeyboardInterrupt)
        if isinstance(error, KeyboardInterrupt):
            stop_on_interrupt(self.loop, error)
        stopped, cause = _record_failure(self.loop, self.recorder, error, interrupted)
        outcome = self._end(RunOutcome("stopped" if stopped else "failed", cause))
        self.recorder.flush()
        name = self.pipeline.name
        call_hook(self.pipeline.on_failure, cause, f"on_failure of pipeline '{name}'")
        if not isinstance(error, Exception):
            raise error
        return outcome


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
    message = str(cause) or ("stopped by Ctrl-C" if isinstance(cause, KeyboardInterrupt) else "")
    recorder.run_update(
        status="stopped" if stopped else "failed",
        end_time=utc(time.time()),
        failed_step=failed_step,
        exception_type=type(cause).__name__,
        exception_message=message,
        exception_data=error_records.encode(cause),
        traceback=text or "".join(traceback.format_exception(cause)),
    )
    return stopped, cause
