"""Running a pipeline from its call: compile, snapshot, submit, wait, return its value.

Everything that can be checked before anything runs is checked here — parameters, a
forced-static pipeline that uses values, an orchestrator that cannot run dynamic
pipelines — so those errors leave nothing behind in the store.
"""

from __future__ import annotations

import inspect
import json
import os
from typing import TYPE_CHECKING, Any

from branchwork.config.home import home_dir, store_url
from branchwork.exceptions import (
    BranchworkError,
    ConfigurationError,
    DynamicValueUsedError,
    OrchestratorError,
    PipelineDefinitionError,
    PipelineRunFailedError,
    StoreUnavailableError,
)
from branchwork.graph.invocation import invocation_config
from branchwork.graph.tracing import Compiled, trace, user_location
from branchwork.metadata import error_records
from branchwork.metadata.queries import get_run
from branchwork.metadata.runs import (
    create_placeholder_run,
    mark_run_failed,
    mark_run_stopped,
    reopen_run,
)
from branchwork.metadata.store import get_engine
from branchwork.pipelines.pipeline import remember_last_run
from branchwork.pipelines.waiting import wait_for_run
from branchwork.runtime.context import current_run_context
from branchwork.runtime.runner import (
    ACCEPT_NEW_GRAPH_ENV,
    LiveSubmission,
    reset_live_submission,
    set_live_submission,
)
from branchwork.stack import Stack, get_active_stack
from branchwork.stack.stack import STACK_ENV
from branchwork.user_code import (
    DEPTH_ENV,
    MAX_DEPTH_ENV,
    ImportStopped,
    is_importing_user_code,
    max_depth,
    process_depth,
    user_import_path,
)

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse
    from branchwork.orchestrators.base import SubmissionResult
    from branchwork.pipelines.pipeline import Pipeline

RUN_ID_ENV = "BRANCHWORK_RUN_ID"


def bind_parameters(
    pipeline: Pipeline[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by name, converted to the types the pipeline function annotates
    (see `pipelines.parameters`); they are recorded, so they must be JSON-serializable."""
    from branchwork.pipelines.parameters import validate_parameters

    if any(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in pipeline.signature.parameters.values()
    ):
        raise ConfigurationError(
            f"Pipeline '{pipeline.name}' takes *args/**kwargs; declare its parameters by name."
        )
    try:
        bound = pipeline.signature.bind_partial(*args, **kwargs)
    except TypeError as error:
        raise ConfigurationError(
            f"Pipeline '{pipeline.name}' cannot be called this way: {error}. Its signature is "
            f"{pipeline.name}{pipeline.signature}."
        ) from None
    given = set(bound.arguments)
    for name, value in pipeline.config_parameters.items():
        if name not in pipeline.signature.parameters:
            raise ConfigurationError(
                f"Pipeline '{pipeline.name}': the run configuration sets parameter '{name}', "
                f"which {pipeline.name}{pipeline.signature} does not take."
            )
        if name not in given:
            bound.arguments[name] = value
    missing = [
        name
        for name, p in pipeline.signature.parameters.items()
        if p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in bound.arguments
    ]
    if missing:
        raise ConfigurationError(
            f"Pipeline '{pipeline.name}' cannot be called this way: missing required "
            f"argument(s) {', '.join(repr(m) for m in missing)}. Its signature is "
            f"{pipeline.name}{pipeline.signature}."
        )
    bound.arguments.update(validate_parameters(pipeline.name, pipeline.func, bound.arguments))
    bound.apply_defaults()  # defaults are the author's values: not validated
    params = dict(bound.arguments)
    for name, value in params.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"Pipeline '{pipeline.name}': parameter '{name}' is a {type(value).__name__}, "
                "which cannot be recorded; pipeline parameters must be JSON-serializable "
                "(load bigger values in a step)."
            ) from None
    return params


def compile_pipeline(pipeline: Pipeline[Any, Any], params: dict[str, Any]) -> Compiled:
    """Static or dynamic, by tracing unless forced; see `graph.tracing`."""
    enable_cache = pipeline.enable_cache is not False
    if pipeline.dynamic is True:
        return Compiled(True, reason="it is declared dynamic=True")
    compiled = trace(pipeline.func, params, pipeline.name, enable_cache, pipeline.step_options)
    if pipeline.dynamic is False and compiled.is_dynamic:
        if compiled.error is not None:
            raise compiled.error
        raise DynamicValueUsedError(
            f"Pipeline '{pipeline.name}' is declared dynamic=False, but {compiled.reason}. "
            "Remove dynamic=False, or pass the output to a step instead of using its value."
        )
    return compiled


def _source_file(pipeline: Pipeline[Any, Any]) -> str | None:
    try:
        path = inspect.getsourcefile(pipeline.func)
    except TypeError:
        return None
    return os.path.abspath(path) if path else None


def _refuse_to_start(pipeline: Pipeline[Any, Any]) -> None:
    """Calls that must not become runs: inside a running pipeline, while branchwork
    imports user code (see `branchwork.user_code`), or too deep in orchestration processes."""
    if current_run_context() is not None:
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline.name}' was called inside another pipeline; call its steps "
            "directly instead."
        )
    if is_importing_user_code():
        raise ImportStopped(pipeline.name, user_location())
    if process_depth() >= max_depth():
        raise OrchestratorError(
            f"Pipeline '{pipeline.name}' was called in an orchestration process "
            f"{process_depth()} levels deep (the limit, ${MAX_DEPTH_ENV}, is {max_depth()}): "
            "runs starting runs without end. Does a step or a module's top level call the "
            'pipeline that runs it? Guard top-level calls with `if __name__ == "__main__":`.'
        )


def run_pipeline(
    pipeline: Pipeline[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    _refuse_to_start(pipeline)
    params = bind_parameters(pipeline, args, kwargs)
    compiled = compile_pipeline(pipeline, params)
    stack = get_active_stack()
    orchestrator = stack.orchestrator
    if compiled.is_dynamic and not orchestrator.supports_dynamic_pipelines:
        raise OrchestratorError(
            f"Pipeline '{pipeline.name}' is dynamic ({compiled.reason}), but orchestrator "
            f"'{orchestrator.name}' ({type(orchestrator).__name__}) does not support dynamic "
            "pipelines. Use an orchestrator whose supports_dynamic_pipelines is True."
        )
    engine = get_engine()
    _, run_id = create_placeholder_run(
        engine,
        pipeline_name=pipeline.name,
        is_dynamic=compiled.is_dynamic,
        source=pipeline.source,
        source_file=_source_file(pipeline),
        import_path=user_import_path(),
        working_dir=os.getcwd(),
        parameters=params,
        spec={
            "enable_cache": pipeline.enable_cache,
            "dynamic": pipeline.dynamic,
            "failure_mode": pipeline.failure_mode,
            "retry": pipeline.retry.to_dict() if pipeline.retry else None,
            "accept_new_graph": pipeline.accept_new_graph,
            "step_options": {n: o.to_dict() for n, o in pipeline.step_options.items()},
            "dynamic_reason": compiled.reason,
        },
        step_configurations=[
            {
                "name": inv.id,
                "step_name": inv.step.name,
                "config": json.dumps(invocation_config(inv)),
            }
            for inv in compiled.invocations
        ],
        orchestrator=orchestrator.flavor,
    )
    remember_last_run(pipeline.name, run_id)
    return _submit_and_wait(pipeline, compiled, run_id, stack)


def resume_pipeline(
    pipeline: Pipeline[Any, Any], run: PipelineRunResponse, accept_new_graph: bool
) -> Any:
    """Run a FAILED or STOPPED run's pipeline again as the same run, with its recorded
    parameters: invocations that completed are reused by id, the others run."""
    engine = get_engine()
    if not reopen_run(engine, run.id):
        raise OrchestratorError(
            f"Run '{run.name}' is {run.status}: only failed or stopped runs can be resumed."
        )
    remember_last_run(pipeline.name, run.id)
    compiled = compile_pipeline(pipeline, run.snapshot.parameters)
    return _submit_and_wait(pipeline, compiled, run.id, get_active_stack(), accept_new_graph)


def _submit_and_wait(
    pipeline: Pipeline[Any, Any],
    compiled: Compiled,
    run_id: str,
    stack: Stack,
    accept_new_graph: bool = False,
) -> Any:
    engine = get_engine()
    placeholder = get_run(engine, run_id, include_steps=False)
    live = LiveSubmission(pipeline, placeholder.snapshot.id, compiled, accept_new_graph)
    environment = environment_for(run_id, stack)
    if accept_new_graph:
        environment[ACCEPT_NEW_GRAPH_ENV] = "1"
    outcome: Any = None
    token = set_live_submission(live)
    try:
        result = _submit(stack, placeholder, compiled.is_dynamic, environment)
        if result is not None and result.wait_for_completion is not None:
            outcome = wait_for_run(result, engine, run_id)
    except KeyboardInterrupt:
        mark_run_stopped(engine, run_id, "Stopped by Ctrl-C before its orchestration started.")
        raise
    finally:
        reset_live_submission(token)
    run = get_run(engine, run_id, include_steps=False)
    if not run.status.is_finished:
        mark_run_failed(
            engine,
            run_id,
            OrchestratorError(
                f"The orchestration of run '{run.name}' ended (result: {outcome!r}) before the run "
                "finished: its process or job died."
            ),
        )
        run = get_run(engine, run_id, include_steps=False)
    if run.status != "completed":
        raise _run_error(run, live.error)
    return run.load_output()


def _submit(
    stack: Stack, placeholder: PipelineRunResponse, is_dynamic: bool, environment: dict[str, str]
) -> SubmissionResult | None:
    """Hand the run to the orchestrator. If that raises, the run is recorded FAILED with an
    error naming the orchestrator."""
    orchestrator = stack.orchestrator
    submit = orchestrator.submit_dynamic_pipeline if is_dynamic else orchestrator.submit_pipeline
    try:
        return submit(placeholder.snapshot, stack, environment, placeholder)
    except StoreUnavailableError:
        raise  # nothing can be recorded now; the message says how to resume
    except Exception as error:
        failure: BaseException = error
        if not isinstance(error, BranchworkError):
            failure = OrchestratorError(
                f"Orchestrator '{orchestrator.name}' ({type(orchestrator).__name__}) failed to "
                f"run '{placeholder.name}': {type(error).__name__}: {error}"
            )
        mark_run_failed(get_engine(), placeholder.id, failure)
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


def _run_error(run: PipelineRunResponse, cause: BaseException | None) -> PipelineRunFailedError:
    where = (
        f"step '{run.failed_step}' raised" if run.failed_step else "the pipeline function raised"
    )
    error = PipelineRunFailedError(
        f"Pipeline '{run.pipeline_name}' run '{run.name}' {run.status}: {where} "
        f"{run.exception_type}: {run.exception_message}",
        run.id,
        run.failed_step,
    )
    if cause is None:  # the loop ran in another process: rebuilt from the store
        cause = error_records.rebuild(
            run.exception_data, run.exception_type or "", run.exception_message or "", run.traceback
        )
    error.__cause__ = cause
    return error
