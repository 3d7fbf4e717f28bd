"""Executing one run: the body of every orchestrator's orchestration loop.

Given a snapshot and its placeholder run, it finds the pipeline (live in this process, or
imported from its recorded source), runs it through a `RunLoop` and records the outcome.
A local orchestrator calls it in the caller's process; an isolated one in its own process.
"""

from __future__ import annotations

import json
import time
import traceback
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import StepFailedError
from branchwork.graph.tracing import Compiled, trace
from branchwork.metadata.recorder import Recorder, utc
from branchwork.metadata.store import get_engine
from branchwork.runtime.context import run_context
from branchwork.runtime.engine import Engine, FailureMode, Request
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
    compiled: Compiled
    error: BaseException | None = None


_live: ContextVar[LiveSubmission | None] = ContextVar("branchwork_live_submission", default=None)


def live_submission() -> LiveSubmission | None:
    return _live.get()


def set_live_submission(submission: LiveSubmission | None) -> Any:
    return _live.set(submission)


def reset_live_submission(token: Any) -> None:
    _live.reset(token)


def _pipeline_for(snapshot: PipelineSnapshotResponse) -> tuple[Pipeline[Any, Any], Compiled | None]:
    live = _live.get()
    if live is not None and live.snapshot_id == snapshot.id:
        return live.pipeline, live.compiled
    from branchwork.pipelines.loading import load_pipeline

    return load_pipeline(snapshot), None


def execute_run(
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
    """Run the pipeline of `snapshot` as `run` and record everything; never raises for a
    failed run (the run's status says it), only re-raises KeyboardInterrupt/SystemExit."""
    pipeline, compiled = _pipeline_for(snapshot)
    params = snapshot.parameters
    # Run options come from the snapshot: in another process, the re-imported pipeline does
    # not carry what `with_options(...)` changed in the caller's.
    enable_cache = snapshot.spec.get("enable_cache", pipeline.enable_cache) is not False
    failure_mode = FailureMode(snapshot.spec.get("failure_mode") or failure_mode)
    if not snapshot.is_dynamic and compiled is None:
        compiled = trace(pipeline.func, params, pipeline.name, enable_cache)
    recorder = Recorder(get_engine(), run.id)
    loop = RunLoop(
        run_id=run.id,
        run_name=run.name,
        pipeline_name=pipeline.name,
        is_dynamic=snapshot.is_dynamic,
        enable_cache=enable_cache,
        recorder=recorder,
        artifact_store=stack.artifact_store,
        launcher=launcher,
        engine=Engine(capacity, max_workers, failure_mode),
    )
    recorder.run_update(
        status="running", start_time=utc(time.time()), orchestrator_run_id=orchestrator_run_id
    )
    recorder.flush()
    loop.start()
    try:
        if snapshot.is_dynamic:
            with run_context(loop):
                returned = pipeline.func(**params)
        else:
            assert compiled is not None
            loop.add(compiled.invocations)
            returned = compiled.returned
        structure, refs = loop.finish(returned)
        loop.record_outputs(refs)
        recorder.run_update(
            status="completed", end_time=utc(time.time()), output_structure=json.dumps(structure)
        )
    except BaseException as error:
        _record_failure(loop, recorder, error, snapshot.id)
        if not isinstance(error, Exception):
            raise
    finally:
        recorder.flush()


def _record_failure(
    loop: RunLoop, recorder: Recorder, error: BaseException, snapshot_id: str
) -> None:
    try:
        loop.close(cancel=True, kill=isinstance(error, KeyboardInterrupt))
    except Exception as crash:  # the loop itself failed: that is the run's error
        error = crash
    stopped = isinstance(error, KeyboardInterrupt)
    failure = None if stopped else loop.failure
    if failure is None and isinstance(error, StepFailedError):
        failure = error
    if failure is not None:
        cause = failure.__cause__ or failure
        failed_step: str | None = failure.invocation_id
        text = loop.traceback_of(failure.invocation_id)
    else:
        cause, failed_step, text = error, None, None
    live = _live.get()
    if live is not None and live.snapshot_id == snapshot_id:
        live.error = cause
    recorder.run_update(
        status="stopped" if stopped else "failed",
        end_time=utc(time.time()),
        failed_step=failed_step,
        exception_type=type(cause).__name__,
        exception_message=str(cause),
        traceback=text or "".join(traceback.format_exception(cause)),
    )
