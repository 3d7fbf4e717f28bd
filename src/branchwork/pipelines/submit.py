"""Running a pipeline from its call: compile, snapshot, submit, wait, return its value.

Everything that can be checked before anything runs is checked here — parameters, a
forced-static pipeline that uses values, an orchestrator that cannot run dynamic
pipelines — so those errors leave nothing behind in the store.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from branchwork.config.home import home_dir, store_url
from branchwork.exceptions import (
    ConfigurationError,
    DynamicValueUsedError,
    OrchestratorError,
    PipelineDefinitionError,
    PipelineRunFailedError,
    StepFailedError,
)
from branchwork.graph.invocation import invocation_config
from branchwork.graph.tracing import Compiled, trace
from branchwork.metadata.queries import get_run
from branchwork.metadata.runs import create_placeholder_run, mark_run_failed, reopen_run
from branchwork.metadata.store import clear_store_errors, get_engine
from branchwork.runtime.context import current_run_context
from branchwork.runtime.runner import (
    ACCEPT_NEW_GRAPH_ENV,
    LiveSubmission,
    reset_live_submission,
    set_live_submission,
)
from branchwork.stack import Stack, get_active_stack
from branchwork.stack.stack import STACK_ENV

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse
    from branchwork.pipelines.pipeline import Pipeline

RUN_ID_ENV = "BRANCHWORK_RUN_ID"


def bind_parameters(
    pipeline: Pipeline[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by name; they are recorded, so they must be JSON-serializable."""
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
    bound.apply_defaults()
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
    if any(
        p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in pipeline.signature.parameters.values()
    ):
        raise ConfigurationError(
            f"Pipeline '{pipeline.name}' takes *args/**kwargs; declare its parameters by name."
        )
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
        return inspect.getsourcefile(pipeline.func)
    except TypeError:
        return None


def run_pipeline(
    pipeline: Pipeline[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if current_run_context() is not None:
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline.name}' was called inside another pipeline; call its steps "
            "directly instead."
        )
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
    with clear_store_errors(engine):
        _, run_id = create_placeholder_run(
            engine,
            pipeline_name=pipeline.name,
            is_dynamic=compiled.is_dynamic,
            source=pipeline.source,
            source_file=_source_file(pipeline),
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
    orchestrator = stack.orchestrator
    placeholder = get_run(engine, run_id, include_steps=False)
    live = LiveSubmission(pipeline, placeholder.snapshot.id, compiled, accept_new_graph)
    environment = environment_for(run_id, stack)
    if accept_new_graph:
        environment[ACCEPT_NEW_GRAPH_ENV] = "1"
    outcome: Any = None
    token = set_live_submission(live)
    try:
        submit = (
            orchestrator.submit_dynamic_pipeline
            if compiled.is_dynamic
            else orchestrator.submit_pipeline
        )
        result = submit(placeholder.snapshot, stack, environment, placeholder)
        if result is not None and result.wait_for_completion is not None:
            outcome = result.wait_for_completion()
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


def environment_for(run_id: str, stack: Stack) -> dict[str, str]:
    """Everything an orchestration process needs: the run, the store, the stack, and this
    process's import path (so the pipeline's module imports there as it does here)."""
    import_path = [entry or os.getcwd() for entry in sys.path if os.path.isdir(entry or ".")]
    return {
        RUN_ID_ENV: run_id,
        "BRANCHWORK_STORE_URL": store_url(),
        "BRANCHWORK_HOME": str(home_dir()),
        STACK_ENV: stack.to_json(),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(import_path)),
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
    if cause is None:
        cause = StepFailedError(
            f"{run.exception_type}: {run.exception_message}\n{run.traceback or ''}",
            run.failed_step or "",
        )
    error.__cause__ = cause
    return error
