"""Pipelines called inside a running pipeline.

A call of a pipeline in a running body, or its `.submit()`, is an invocation of the parent run
whose step (`ChildPipelineStep`) runs on the loop's threads — never in a process or a Ray task
of its own — and runs the pipeline as a child run: its own run and snapshot, on the parent's
stack, linked to the parent run and to that invocation. The child's return value is the
invocation's output. A call waits for it; `.submit()` returns the future at once, so children
run side by side. Resuming the parent resumes its failed, stopped or paused child runs (a child
run finished since, by a resume of its own, gives its value), and a parent's failure mode
treats a failed child like a failed step. A child run that pauses at a question pauses its
parent (`runtime.runner`): answering it resumes the parent, which resumes the child here.
`.embed()` runs the child's body in the parent run instead: its steps are the parent's, with
ids prefixed by the child's name.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import ChildRunPaused, OrchestratorError, RunPaused
from branchwork.graph.code_hash import CodeFingerprint, fingerprint
from branchwork.metadata.queries import latest_child_run, nesting_depth
from branchwork.metadata.store import get_engine
from branchwork.pipelines.calls import child_of
from branchwork.runtime.runner import request_of_running_run
from branchwork.stack import active_stack
from branchwork.steps.context import get_step_context
from branchwork.steps.step import Step
from branchwork.user_code import MAX_DEPTH_ENV, max_depth

if TYPE_CHECKING:
    from branchwork.pipelines.pipeline import Pipeline


class ChildPipelineStep(Step[Any, Any]):
    """The step a pipeline is when a running pipeline calls it: see the module docstring."""

    cache_off_reason = "a call of a pipeline: its child run's steps are cached, not the call"

    def __init__(self, child: Pipeline[Any, Any]) -> None:
        def run_child(*args: Any, **kwargs: Any) -> Any:
            return _run_child(child, dict(child.signature.bind(*args, **kwargs).arguments))

        run_child.__signature__ = child.signature.replace(  # type: ignore[attr-defined]
            return_annotation=Any
        )
        run_child.__annotations__ = {"return": Any}
        run_child.__name__ = run_child.__qualname__ = child.name
        run_child.__module__ = child.func.__module__
        super().__init__(run_child, name=child.name, enable_cache=False, runtime="inline")
        self.child = child

    @property
    def code_fingerprint(self) -> CodeFingerprint:
        """The child pipeline's code: what its run executes."""
        return fingerprint(self.child.func)


@functools.cache
def child_step(child: Pipeline[Any, Any]) -> ChildPipelineStep:
    return ChildPipelineStep(child)


def _run_child(child: Pipeline[Any, Any], params: dict[str, Any]) -> Any:
    """Run `child` as the child run of the invocation being executed (see the docstring)."""
    from branchwork.pipelines.submit import resume_pipeline, run_pipeline

    step = get_step_context()
    parent = request_of_running_run(step.run_id)
    if parent is None:
        raise OrchestratorError(
            f"Pipeline '{child.name}' (invocation '{step.invocation_id}' of run "
            f"'{step.run_name}') must run where its parent run's loop runs."
        )
    engine = get_engine()
    level = nesting_depth(engine, step.run_id, max_depth()) + 1  # the child's
    if level > max_depth():
        raise OrchestratorError(
            f"Pipeline '{child.name}' (invocation '{step.invocation_id}' of run "
            f"'{step.run_name}') would be a child run {level} levels deep (the limit, "
            f"${MAX_DEPTH_ENV}, is {max_depth()}): does a pipeline call itself without end?"
        )
    earlier = latest_child_run(engine, step.run_id, step.invocation_id)
    options = parent.options
    child = child.under(options.enable_cache, options.refresh, options.step_options)
    with active_stack(parent.stack), child_of(step.run_id, step.invocation_id):
        if earlier is not None and earlier.status == "completed":
            return earlier.load_output(allow_pickle=True)  # resumed by hand since
        try:
            if earlier is not None and earlier.status in ("failed", "stopped", "paused"):
                return resume_pipeline(child, earlier, accept_new_graph=False)
            return run_pipeline(child, (), params)
        except RunPaused as paused:
            run = latest_child_run(engine, step.run_id, step.invocation_id)
            name = run.name if run is not None else paused.run_id
            raise ChildRunPaused(
                f"its child run '{name}' waits for an answer to {paused.question!r}",
                paused.run_id,
                paused.wait_id,
                paused.question,
            ) from None
