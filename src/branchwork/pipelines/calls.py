"""What a call of a pipeline records and returns, whichever way it runs.

Everything that can be checked before anything runs is checked here — parameters, a
forced-static pipeline that uses values, an orchestrator that cannot run dynamic pipelines —
so those errors leave nothing behind in the store. `create_run` records the snapshot and the
placeholder run; `run_outcome` turns the finished run into the call's value or error.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import (
    ConfigurationError,
    DynamicValueUsedError,
    MissingArtifactError,
    OrchestratorError,
    PipelineDefinitionError,
    PipelineHookError,
    PipelineRunFailedError,
    PipelineRunStoppedError,
)
from branchwork.graph.context import current_run_context
from branchwork.graph.invocation import invocation_config
from branchwork.graph.tracing import Compiled, trace, user_location
from branchwork.metadata import error_records
from branchwork.metadata.cache_entries import files_lost
from branchwork.metadata.queries import get_run
from branchwork.metadata.runs import create_placeholder_run, mark_run_failed, mark_run_stopped
from branchwork.metadata.store import get_engine
from branchwork.pipelines.last_runs import remember_last_run
from branchwork.pipelines.parameters import recorded_parameters, validate_parameters
from branchwork.runtime.requests import RunOptions
from branchwork.runtime.waits import paused_error
from branchwork.steps.context import in_a_step
from branchwork.user_code import (
    MAX_DEPTH_ENV,
    ImportStopped,
    is_importing_user_code,
    max_depth,
    new_code_generation,
    process_depth,
    user_import_path,
)

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse
    from branchwork.orchestrators.base import BaseOrchestrator
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.stack import Stack


def refuse_to_start(pipeline: Pipeline[Any, Any]) -> None:
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


def bind_parameters(
    pipeline: Pipeline[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by name, converted to the types the pipeline function annotates
    (see `pipelines.parameters`); they are recorded, so they must be JSON or of a type their
    annotation writes as JSON."""

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
    recorded_parameters(pipeline.name, pipeline.func, params)  # refused now, not half-way
    return params


def compile_pipeline(
    pipeline: Pipeline[Any, Any], params: dict[str, Any], recorded: RunOptions | None = None
) -> Compiled:
    """Static or dynamic, by tracing unless forced; see `graph.tracing`. A resume or a
    replay passes the options its run recorded (`recorded`): the pipeline it loaded has
    none of those a run configuration gave, and a static run's per-step retries and
    settings were lost on resume."""
    options = recorded or RunOptions.of(pipeline, None)
    if pipeline.dynamic is True:
        return Compiled(True, reason="it is declared dynamic=True")
    compiled = trace(
        pipeline.func, params, pipeline.name, options.enable_cache, dict(options.step_options)
    )
    if pipeline.dynamic is False and compiled.is_dynamic:
        if compiled.error is not None:
            raise compiled.error
        raise DynamicValueUsedError(
            f"Pipeline '{pipeline.name}' is declared dynamic=False, but {compiled.reason}. "
            "Remove dynamic=False, or pass the output to a step instead of using its value."
        )
    return compiled


def check_orchestrator(
    pipeline: Pipeline[Any, Any], compiled: Compiled, orchestrator: BaseOrchestrator
) -> None:
    if compiled.is_dynamic and not orchestrator.supports_dynamic_pipelines:
        raise OrchestratorError(
            f"Pipeline '{pipeline.name}' is dynamic ({compiled.reason}), but orchestrator "
            f"'{orchestrator.name}' ({type(orchestrator).__name__}) does not support dynamic "
            "pipelines. Use an orchestrator whose supports_dynamic_pipelines is True."
        )


def _source_file(pipeline: Pipeline[Any, Any]) -> str | None:
    try:
        path = inspect.getsourcefile(pipeline.func)
    except TypeError:
        return None
    return os.path.abspath(path) if path else None


def create_run(
    pipeline: Pipeline[Any, Any],
    params: dict[str, Any],
    compiled: Compiled,
    stack: Stack,
) -> str:
    """Record the snapshot (with the static DAG, if it is one) and the placeholder run,
    started by `stack`; the run becomes this thread's `last_run`. Returns its id."""
    recorded, typed = recorded_parameters(pipeline.name, pipeline.func, params)
    options = replace(RunOptions.of(pipeline, compiled.reason), typed_parameters=typed)
    parent = _parent.get()
    _, run_id = create_placeholder_run(
        get_engine(),
        pipeline_name=pipeline.name,
        is_dynamic=compiled.is_dynamic,
        source=pipeline.source,
        source_file=_source_file(pipeline),
        import_path=user_import_path(),
        working_dir=os.getcwd(),
        argv=_script_arguments(pipeline, parent),
        parameters=recorded,
        spec=options.to_spec(),
        step_configurations=step_configurations(compiled),
        orchestrator=stack.orchestrator.flavor,
        stack=stack.name,
        parent=parent,
    )
    remember_last_run(pipeline.name, run_id)
    return run_id


def _script_arguments(pipeline: Pipeline[Any, Any], parent: tuple[str, str] | None) -> list[str]:
    """The arguments a run's script was started with, to import it with again elsewhere
    (`user_code.load_source`): a child run's are its parent's (it is created in a step's
    process: a Ray worker's arguments are Ray's); else this process's when it runs the
    script that defines the pipeline (`python train.py --lr 0.5`); none elsewhere (a
    notebook, pytest, `branchwork run`, which sets `sys.argv` to the target alone)."""
    if parent is not None:
        return list(get_run(get_engine(), parent[0], include_steps=False).snapshot.argv)
    source = _source_file(pipeline)
    if not source or not sys.argv or not _same_file(source, sys.argv[0]):
        return []
    return sys.argv[1:]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# (run id, invocation id) of the parent invocation whose thread starts a child run.
_parent: ContextVar[tuple[str, str] | None] = ContextVar("branchwork_parent", default=None)


@contextmanager
def child_of(run_id: str, invocation_id: str) -> Iterator[None]:
    """Runs created in the block are child runs of invocation `invocation_id` of run
    `run_id` (see `pipelines.nesting`)."""
    token = _parent.set((run_id, invocation_id))
    try:
        yield
    finally:
        _parent.reset(token)


def step_configurations(compiled: Compiled) -> list[dict[str, Any]]:
    """A static DAG's invocations as its snapshot records them (none for a dynamic one)."""
    return [
        {"name": inv.id, "step_name": inv.step.name, "config": json.dumps(invocation_config(inv))}
        for inv in compiled.invocations
    ]


@contextmanager
def stopped_if_interrupted() -> Iterator[list[str]]:
    """Ctrl-C before a run's loop took it over: the runs the block added to the list it
    gives are recorded STOPPED (a loop that took its run over records that itself). Add a
    run inside `interrupts_deferred()` as it is created, so no Ctrl-C falls in between."""
    runs: list[str] = []
    try:
        yield runs
    except KeyboardInterrupt:
        for run_id in runs:
            mark_run_stopped(get_engine(), run_id, "Stopped by Ctrl-C before its loop ran.")
        raise


def run_outcome(run_id: str, cause: BaseException | None, ended: Any = None) -> Any:
    """The pipeline's value once the run has finished, or PipelineRunFailedError with the
    step's exception (`cause`, or rebuilt from the store) as `__cause__`, or RunPaused when
    it waits for an answer. A run that is not finished here was orphaned by its
    orchestration (`ended` says how that ended)."""
    engine = get_engine()
    run = get_run(engine, run_id, include_steps=False)
    if run.status == "paused":
        raise paused_error(engine, run)
    if not run.status.is_finished:
        mark_run_failed(
            engine,
            run_id,
            OrchestratorError(
                f"The orchestration of run '{run.name}' ended (result: {ended!r}) before the run "
                "finished: its process or job died. Resume the run to finish it."
            ),
        )
        run = get_run(engine, run_id, include_steps=False)
    if run.status != "completed":
        raise _run_error(run, cause)
    try:
        return run.load_output(allow_pickle=True)  # the run this process asked for
    except MissingArtifactError as error:  # a cached result's files, deleted
        lost = [version.id for version in run.outputs if version.uri == error.uri]
        raise files_lost(engine, lost, error) from None


def _run_error(run: PipelineRunResponse, cause: BaseException | None) -> PipelineRunFailedError:
    if run.failed_step:
        where = f"step '{run.failed_step}' raised "
    elif run.traceback and run.exception_type != PipelineHookError.__name__:
        where = "the pipeline function raised "  # (a hook's error says which hook raised)
    else:  # nothing raised it here: its orchestration died, say
        where = ""
    kind = PipelineRunStoppedError if run.status == "stopped" else PipelineRunFailedError
    error = kind(
        f"Pipeline '{run.pipeline_name}' run '{run.name}' {run.status}: {where}"
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


def take_code_afresh() -> None:
    """A run the user starts hashes its steps' code, and the values they read, as they are
    now (`user_code.code_generation`); a run started inside a step (a child run) takes them
    as its parent's run did."""
    if not in_a_step():
        new_code_generation()
