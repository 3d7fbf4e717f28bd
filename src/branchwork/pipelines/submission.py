"""Handing a recorded run to its orchestrator and returning the pipeline's value.

To its loop host here, as a typed request with the live pipeline, when the orchestrator runs
loops in the calling process; else through the seed's plugin API (`submit_pipeline` /
`submit_dynamic_pipeline`) with the environment a job needs, waiting for that job (see
`pipelines.waiting`), and heartbeating the run meanwhile until a loop takes it over (a run
whose submitting process died first is then lost, see `metadata.lost`, rather than
`initializing` for good). An orchestrator that raises while handed the run fails the run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from branchwork.config.heartbeat import heartbeat_interval
from branchwork.config.home import home_dir, store_url
from branchwork.exceptions import (
    BranchworkError,
    OrchestratorError,
    RunAlreadyStartedError,
    RunStopped,
    StoreUnavailableError,
)
from branchwork.graph.tracing import Compiled
from branchwork.metadata.error_records import text_of
from branchwork.metadata.queries import get_run
from branchwork.metadata.runs import heartbeat_initializing, mark_run_failed
from branchwork.metadata.store import get_engine
from branchwork.pipelines.calls import run_outcome
from branchwork.pipelines.code_seen import code_seen
from branchwork.pipelines.waiting import wait_for_run
from branchwork.runtime.requests import ACCEPT_NEW_GRAPH_ENV, RunRequest
from branchwork.stack import Stack
from branchwork.stack.stack import STACK_ENV
from branchwork.user_code import DEPTH_ENV, pipeline_by_value, process_depth, user_import_path

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse
    from branchwork.pipelines.pipeline import Pipeline

RUN_ID_ENV = "BRANCHWORK_RUN_ID"
logger = logging.getLogger("branchwork")


def submit_and_wait(
    pipeline: Pipeline[Any, Any],
    compiled: Compiled,
    run_id: str,
    stack: Stack,
    accept_new_graph: bool = False,
) -> Any:
    """Hand the run to the orchestrator and return the pipeline's value: to its loop host
    here, as a typed request with the live pipeline, when its loop runs in this process;
    else to its `submit_*` (the seed's plugin API), waiting for the job it starts."""
    engine = get_engine()
    run = get_run(engine, run_id, include_steps=False)
    orchestrator = stack.orchestrator
    if orchestrator.runs_loop_in_caller:
        request = RunRequest.recorded(run.snapshot, run, stack, pipeline)
        request.compiled = compiled
        if accept_new_graph:
            request.options = replace(request.options, accept_new_graph=True)
        with _failures_recorded(stack, run), heartbeating(run.id):  # (Ray: connecting)
            try:
                outcome = orchestrator.run_loop(request, f"{orchestrator.flavor}-{run.id}")
            except RunStopped:  # before its loop began: raised as for any stopped run
                return run_outcome(run_id, None)
        return run_outcome(run_id, outcome.error)
    environment = environment_for(run_id, stack) | pipeline_by_value(pipeline) | code_seen(pipeline)
    if accept_new_graph:
        environment[ACCEPT_NEW_GRAPH_ENV] = "1"
    dynamic = compiled.is_dynamic
    submit = orchestrator.submit_dynamic_pipeline if dynamic else orchestrator.submit_pipeline
    with heartbeating(run_id):
        with _failures_recorded(stack, run):
            result = submit(run.snapshot, stack, environment, run)
        ended = None
        if result is not None and result.wait_for_completion is not None:
            ended = wait_for_run(result, engine, run_id)
    return run_outcome(run_id, None, ended)


@contextmanager
def heartbeating(run_id: str) -> Iterator[None]:
    """Heartbeat INITIALIZING run `run_id` from this process, on a thread of its own, until
    its loop takes it over, here or in another process or job (connecting to a Ray cluster,
    starting an orchestration process that imports slow modules, a job waiting to be
    scheduled)."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat_interval()):
            try:
                if not heartbeat_initializing(get_engine(), run_id):
                    return  # taken over (or ended): its loop heartbeats now
            except Exception as error:  # noqa: BLE001 - the store away: try at the next beat
                logger.debug("Could not heartbeat run %s: %s", run_id, error)

    thread = threading.Thread(target=beat, name="branchwork-submitted-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


@contextmanager
def _failures_recorded(stack: Stack, run: PipelineRunResponse) -> Iterator[None]:
    """An orchestrator that raises while handed a run: the run is recorded FAILED with an
    error naming the orchestrator."""
    orchestrator = stack.orchestrator
    try:
        yield
    except StoreUnavailableError:
        raise  # nothing can be recorded now; the message says how to resume
    except RunAlreadyStartedError:
        raise  # the run is another loop's: not ours to fail
    except Exception as error:
        failure: BaseException = error
        if not isinstance(error, BranchworkError):
            failure = OrchestratorError(
                f"Orchestrator '{orchestrator.name}' ({type(orchestrator).__name__}) failed to "
                f"run '{run.name}': {type(error).__name__}: {text_of(error)}"
            )
        mark_run_failed(get_engine(), run.id, failure)
        if failure is error:
            raise
        raise failure from error


def environment_for(run_id: str, stack: Stack) -> dict[str, str]:
    """Everything an orchestration process needs: the run, the store, the stack, this
    process's import path (so the pipeline's module imports there as it does here) and how
    deep in orchestration processes it will be."""
    return {
        RUN_ID_ENV: run_id,
        "BRANCHWORK_STORE_URL": store_url(),
        "BRANCHWORK_HOME": str(home_dir()),
        STACK_ENV: stack.to_json(),
        "PYTHONPATH": os.pathsep.join(user_import_path()),
        DEPTH_ENV: str(process_depth() + 1),
    }
