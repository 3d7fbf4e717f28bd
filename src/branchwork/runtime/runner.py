"""Executing one run: the body of every orchestrator's orchestration loop.

Given a snapshot and its placeholder run, it finds the pipeline (live in this process, or
imported from its recorded source), runs it through a `RunLoop` and records the outcome.
A local orchestrator calls it in the caller's process; an isolated one in its own process.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from branchwork.config.retry import StepRetryConfig
from branchwork.config.run_config import StepOptions
from branchwork.exceptions import RunStopped, StepFailedError, StoreUnavailableError
from branchwork.graph.tracing import Compiled, trace
from branchwork.metadata import error_records
from branchwork.metadata.queries import get_run, invocation_records, latest_completed_run
from branchwork.metadata.recorder import Recorder, utc
from branchwork.metadata.store import get_engine
from branchwork.runtime.context import run_context
from branchwork.runtime.engine import Engine, FailureMode, Request
from branchwork.runtime.graph_check import GraphCheck
from branchwork.runtime.hooks import call_hook
from branchwork.runtime.interrupts import stop_on_interrupt
from branchwork.runtime.launchers import Launcher
from branchwork.runtime.loop import RunLoop

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.stack import Stack


@dataclass
class LiveSubmission:
    """A run submitted from this process: the live pipeline and where to leave its error."""

    pipeline: Pipeline[Any, Any]
    snapshot_id: str
    compiled: Compiled | None  # None when rebuilt in another process: traced again there
    accept_new_graph: bool = False
    error: BaseException | None = None


ACCEPT_NEW_GRAPH_ENV = "BRANCHWORK_ACCEPT_NEW_GRAPH"

_live: ContextVar[LiveSubmission | None] = ContextVar("branchwork_live_submission", default=None)


def live_submission() -> LiveSubmission | None:
    return _live.get()


def set_live_submission(submission: LiveSubmission | None) -> Any:
    return _live.set(submission)


def reset_live_submission(token: Any) -> None:
    _live.reset(token)


def _pipeline_for(snapshot: PipelineSnapshotResponse) -> LiveSubmission:
    """The submission of this snapshot: live in this process, or rebuilt from the recorded
    source and the environment in an orchestration process."""
    live = _live.get()
    if live is not None and live.snapshot_id == snapshot.id:
        return live
    from branchwork.pipelines.loading import load_pipeline

    pipeline = load_pipeline(snapshot)
    accept = os.environ.get(ACCEPT_NEW_GRAPH_ENV) == "1"
    return LiveSubmission(pipeline, snapshot.id, None, accept)


class RunSession:
    """One run's orchestration loop in this process: `begin()` it, feed it (the pipeline
    body, or a static DAG), then `complete(returned)` or `fail(error)`. `run()` does all of
    it; the caller of a local pipeline drives the steps itself, so that the body it is
    already running carries on into the run (see `pipelines.one_pass`)."""

    def __init__(
        self,
        snapshot: PipelineSnapshotResponse,
        run: PipelineRunResponse,
        stack: Stack,
        *,
        launcher: Launcher,
        capacity: Request,
        max_workers: int,
        orchestrator_run_id: str,
        failure_mode: FailureMode = FailureMode.STOP_ON_FAILURE,
    ) -> None:
        self.snapshot = snapshot
        self.run_id = run.id
        self.orchestrator_run_id = orchestrator_run_id
        self.submission = submission = _pipeline_for(snapshot)
        self.pipeline = pipeline = submission.pipeline
        self.compiled = submission.compiled
        # Run options come from the snapshot: in another process, the re-imported pipeline
        # does not carry what `with_options(...)` changed in the caller's.
        spec = snapshot.spec
        self.enable_cache = spec.get("enable_cache", pipeline.enable_cache) is not False
        failure_mode = FailureMode(spec.get("failure_mode") or failure_mode)
        self.step_options = {
            n: StepOptions(**o) for n, o in (spec.get("step_options") or {}).items()
        }
        store = get_engine()
        # A resumed run: what its earlier sessions recorded is replayed by invocation id.
        replay = get_run(store, run.id).steps
        accept_new_graph = submission.accept_new_graph or bool(spec.get("accept_new_graph"))
        reference = None
        if not replay and self.enable_cache and not accept_new_graph:
            reference_id = latest_completed_run(
                store, pipeline.name, json.dumps(snapshot.parameters), except_run_id=run.id
            )
            if reference_id is not None:
                reference_name = get_run(store, reference_id, include_steps=False).name
                reference = (reference_name, invocation_records(store, reference_id))
        self.recorder = Recorder(store, run.id)
        self.loop = RunLoop(
            run_id=run.id,
            run_name=run.name,
            pipeline_name=pipeline.name,
            is_dynamic=snapshot.is_dynamic,
            enable_cache=self.enable_cache,
            recorder=self.recorder,
            artifact_store=stack.artifact_store,
            launcher=launcher,
            engine=Engine(capacity, max_workers, failure_mode),
            graph_check=GraphCheck(run.name, replay, reference, accept_new_graph),
            default_retry=StepRetryConfig(**spec["retry"]) if spec.get("retry") else None,
            step_options=self.step_options,
        )

    def begin(self) -> RunLoop:
        """Record the run running and start its loop."""
        now = time.time()
        self.recorder.run_update(
            status="running",
            start_time=utc(now),
            heartbeat=now,
            orchestrator_run_id=self.orchestrator_run_id,
        )
        self.recorder.flush()
        self.loop.start()
        return self.loop

    def run(self) -> None:
        """Run the pipeline of the snapshot as the run and record everything; never raises
        for a failed run (the run's status says it), only re-raises KeyboardInterrupt."""
        loop = self.begin()
        pipeline, params = self.pipeline, self.snapshot.parameters
        try:
            if self.snapshot.is_dynamic:
                with run_context(loop):
                    returned = pipeline.func(**params)
            else:
                compiled = self.compiled or trace(
                    pipeline.func, params, pipeline.name, self.enable_cache, self.step_options
                )
                loop.add(compiled.invocations)
                returned = compiled.returned
        except BaseException as error:
            self.fail(error)
        else:
            self.complete(returned)

    def complete(self, returned: Any) -> None:
        """The body returned `returned`: wait for every step and record the outcome."""
        try:
            structure, refs = self.loop.finish(returned)
            self.loop.record_outputs(refs)
        except BaseException as error:
            self.fail(error)
            return
        self.recorder.run_update(
            status="completed", end_time=utc(time.time()), output_structure=json.dumps(structure)
        )
        self.recorder.flush()
        call_hook(self.pipeline.on_success, None, f"on_success of pipeline '{self.pipeline.name}'")

    def fail(self, error: BaseException) -> None:
        """The body (or the loop) raised `error`: stop, record, and re-raise it if it is an
        interrupt."""
        interrupted = isinstance(error, KeyboardInterrupt)
        if isinstance(error, KeyboardInterrupt):
            stop_on_interrupt(self.loop, error)
        cause = _record_failure(self.loop, self.recorder, error, interrupted)
        self.submission.error = cause  # the caller's PipelineRunFailedError carries it
        self.recorder.flush()
        name = self.pipeline.name
        call_hook(self.pipeline.on_failure, cause, f"on_failure of pipeline '{name}'")
        if not isinstance(error, Exception):
            raise error


def execute_run(
    snapshot: PipelineSnapshotResponse,
    run: PipelineRunResponse,
    stack: Stack,
    **settings: Any,
) -> None:
    """Run `run` here, start to end: see `RunSession.run`."""
    RunSession(snapshot, run, stack, **settings).run()


def _record_failure(
    loop: RunLoop,
    recorder: Recorder,
    error: BaseException,
    interrupted: bool,
) -> BaseException:
    """Record the run's failure (or stop); returns the exception that caused it."""
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
    return cause
