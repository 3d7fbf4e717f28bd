"""Running a pipeline from its call, or resuming one of its runs: check, compile, record,
hand the run to the orchestrator and return its value (see `pipelines.calls` and
`pipelines.submission`). Where the orchestrator runs the loop in this process and the
pipeline does not say whether it is dynamic, the body runs once instead of being traced
first (`pipelines.one_pass`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from branchwork.exceptions import (
    OrchestratorError,
)
from branchwork.metadata.lost import not_resumable_message
from branchwork.metadata.runs import reopen_run
from branchwork.metadata.store import get_engine
from branchwork.pipelines.calls import (
    bind_parameters,
    check_orchestrator,
    compile_pipeline,
    create_run,
    refuse_to_start,
    stopped_if_interrupted,
    take_code_afresh,
)
from branchwork.pipelines.last_runs import remember_last_run
from branchwork.pipelines.submission import submit_and_wait
from branchwork.runtime.interrupts import interrupts_deferred
from branchwork.runtime.requests import RunOptions
from branchwork.stack import get_active_stack

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse
    from branchwork.pipelines.pipeline import Pipeline


def run_pipeline(
    pipeline: Pipeline[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    refuse_to_start(pipeline)
    take_code_afresh()
    params = bind_parameters(pipeline, args, kwargs)
    stack = get_active_stack()
    if stack.orchestrator.runs_loop_in_caller and pipeline.dynamic is None:
        from branchwork.pipelines.one_pass import run_in_one_pass

        return run_in_one_pass(pipeline, params, stack)
    compiled = compile_pipeline(pipeline, params)
    check_orchestrator(pipeline, compiled, stack.orchestrator)
    with stopped_if_interrupted() as runs:
        with interrupts_deferred():
            runs.append(create_run(pipeline, params, compiled, stack))
        return submit_and_wait(pipeline, compiled, runs[0], stack)


def resume_pipeline(
    pipeline: Pipeline[Any, Any], run: PipelineRunResponse, accept_new_graph: bool
) -> Any:
    """Run a FAILED or STOPPED run's pipeline again as the same run, with its recorded
    parameters: invocations that completed are reused by id, the others run."""
    take_code_afresh()
    # The body is traced before the run is reopened: a resume killed, interrupted or failing
    # there (a parameter that no longer binds, a body now using a value under dynamic=False)
    # leaves the run as it was, resumable; it was left `initializing` for good.
    recorded = RunOptions.from_spec(run.snapshot.spec)
    params = pipeline.parameters_from_record(run.snapshot.parameters, recorded.typed_parameters)
    compiled = compile_pipeline(pipeline, params, recorded)
    stack = get_active_stack()
    with stopped_if_interrupted() as runs:
        with interrupts_deferred():
            if not reopen_run(get_engine(), run.id, stack.name, stack.orchestrator.flavor):
                raise OrchestratorError(not_resumable_message(run))
            runs.append(run.id)
        remember_last_run(pipeline.name, run.id)
        return submit_and_wait(pipeline, compiled, run.id, stack, accept_new_graph)
