"""Replaying a run: a new run of its pipeline (imported from the recorded source, as a
resume does) with its parameters and options, some step arguments overridden, optionally
reusing what the original finished (`runtime.replay` says what is reused and what runs).

Overrides are checked against the original run before anything is recorded. A key names a
step (every invocation of it) or, when it is no step's name, one invocation by id:
`{"train": {"lr": 0.1}}`, `{"process_2": {"size": 3}}`; each argument must be one the step
took there. Replaying a replay keeps the overrides that run had, under the new ones. The new
run records the original as `replay_of`, and its plan in the snapshot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import ConfigurationError
from branchwork.metadata.recorded_calls import (
    RecordedCall,
    call_of,
    calls_of_step,
    some_invocations,
    step_names,
)
from branchwork.metadata.runs import create_placeholder_run
from branchwork.metadata.store import get_engine
from branchwork.pipelines.calls import (
    check_orchestrator,
    compile_pipeline,
    step_configurations,
    stopped_if_interrupted,
    take_code_afresh,
)
from branchwork.pipelines.last_runs import remember_last_run
from branchwork.pipelines.loading import load_pipeline
from branchwork.pipelines.submission import submit_and_wait
from branchwork.runtime.interrupts import interrupts_deferred
from branchwork.runtime.replay import Overrides, ReplayPlan
from branchwork.runtime.requests import RunOptions
from branchwork.stack import get_active_stack
from branchwork.values import encode

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.graph.tracing import Compiled
    from branchwork.models import PipelineRunResponse
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.stack import Stack

Requested = Mapping[str, Mapping[str, Any]]  # {step name or invocation id: {argument: value}}
LISTED = 20  # invocation ids an error lists at most


def replay_run(
    original: PipelineRunResponse, skip_successful: bool, overrides: Requested | None
) -> Any:
    """Run `original`'s pipeline again as a new run on the active stack and return its
    value; see the module docstring."""
    take_code_afresh()
    plan = replay_plan(original, skip_successful, overrides or {})
    pipeline = load_pipeline(original.snapshot)
    stack = get_active_stack()
    recorded = RunOptions.from_spec(original.snapshot.spec)
    params = pipeline.parameters_from_record(
        original.snapshot.parameters, recorded.typed_parameters
    )
    compiled = compile_pipeline(pipeline, params, recorded)
    check_orchestrator(pipeline, compiled, stack.orchestrator)
    compiled.invocations = [plan.apply(i, pipeline.name) for i in compiled.invocations]
    with stopped_if_interrupted() as runs:
        with interrupts_deferred():
            runs.append(_create_replay(pipeline, original, plan, compiled, stack))
        return submit_and_wait(pipeline, compiled, runs[0], stack)


def replay_plan(
    original: PipelineRunResponse, skip_successful: bool, overrides: Requested
) -> ReplayPlan:
    """The plan, its override keys resolved against what the original recorded (read a step
    name or an invocation at a time: `metadata.recorded_calls`)."""
    engine = get_engine()
    steps = step_names(engine, original)
    by_step: dict[str, dict[str, Any]] = {}
    by_invocation: dict[str, dict[str, Any]] = {}
    for key, values in overrides.items():
        _check_values(key, values)
        if key in steps:
            targets, into = calls_of_step(engine, original, key), by_step
        else:
            call = call_of(engine, original, key)
            if call is None:
                raise ConfigurationError(
                    f"Run '{original.name}' has no step or invocation {key!r} to override; "
                    f"its steps: {_listed(steps)}; its invocations: "
                    f"{_some_invocations(engine, original)}."
                )
            targets, into = iter([call]), by_invocation
        for call in targets:
            _check_arguments(original, call, values)
        into[key] = dict(values)
    return ReplayPlan(skip_successful, Overrides(by_step, by_invocation), _inherited(original))


def plan_of(run: PipelineRunResponse) -> ReplayPlan | None:
    """How `run` replayed another run, if it did (as its snapshot records)."""
    return RunOptions.from_spec(run.snapshot.spec).replay


def _inherited(original: PipelineRunResponse) -> tuple[Overrides, ...]:
    """The overrides `original` ran with, layer by layer, if it was a replay itself: a
    replay runs what the run it replays ran."""
    plan = plan_of(original)
    return () if plan is None else plan.layers


def _check_values(key: str, values: Any) -> None:
    """An override maps argument names to values that can be recorded."""
    if not isinstance(values, Mapping) or not values:
        raise ConfigurationError(
            f"The override of {key!r} must map argument names to values, got {values!r}."
        )
    for name, value in values.items():
        try:
            encode(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"The override {key}.{name} ({type(value).__name__}) cannot be recorded: "
                "overrides are None, bools, numbers, strs, and lists, tuples and dicts of them."
            ) from None


def _check_arguments(
    run: PipelineRunResponse, call: RecordedCall, values: Mapping[str, Any]
) -> None:
    """Each overridden argument is one the targeted invocation took."""
    for name in values:
        if name not in call.arguments:
            raise ConfigurationError(
                f"Run '{run.name}': invocation '{call.invocation_id}' takes no argument "
                f"{name!r} to override; its arguments: {_listed(call.arguments)}."
            )


def _some_invocations(engine: Engine, run: PipelineRunResponse) -> str:
    """The run's invocation ids, the first LISTED of them if it has more."""
    first, total = some_invocations(engine, run, LISTED)
    listed = _listed(first)
    return listed if total <= LISTED else f"{listed}, ... ({total} in all)"


def _create_replay(
    pipeline: Pipeline[Any, Any],
    original: PipelineRunResponse,
    plan: ReplayPlan,
    compiled: Compiled,
    stack: Stack,
) -> str:
    """Record the replay's snapshot — the original's source, parameters and options, with
    the plan — and its placeholder run; it becomes this thread's `last_run`."""
    snapshot = original.snapshot
    options = replace(
        RunOptions.from_spec(snapshot.spec), dynamic_reason=compiled.reason, replay=plan
    )
    _, run_id = create_placeholder_run(
        get_engine(),
        pipeline_name=pipeline.name,
        is_dynamic=compiled.is_dynamic,
        source=snapshot.source,
        source_file=snapshot.source_file,
        import_path=list(snapshot.import_path),
        working_dir=snapshot.working_dir or os.getcwd(),
        argv=list(snapshot.argv),
        parameters=dict(snapshot.parameters),
        spec=options.to_spec(),
        step_configurations=step_configurations(compiled),
        orchestrator=stack.orchestrator.flavor,
        stack=stack.name,
        replay_of=original.id,
    )
    remember_last_run(pipeline.name, run_id)
    return run_id


def _listed(names: Any) -> str:
    return ", ".join(sorted(set(names))) or "none"
