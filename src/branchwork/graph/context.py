"""The run context a pipeline body executes in, held in a ContextVar.

A step called with no context is a plain function call. Inside a pipeline the context turns
the call into an invocation and hands back futures; it is also what a future asks when the
pipeline body needs its value (tracing answers "that makes the pipeline dynamic", a running
loop answers by waiting for the step).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from branchwork.graph.futures import StepOutput, StepOutputs
    from branchwork.graph.invocation import StepCalls
    from branchwork.graph.questions import Question
    from branchwork.steps.step import Step


class RunContext(Protocol):
    pipeline_name: str
    calls: StepCalls  # the run's calls, made into invocations (shared by a run's contexts)

    def invoke(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str | None,
        after: object,
    ) -> StepOutputs:
        """Record one call of `step` and return its future(s)."""

    def value_of(self, output: StepOutput) -> Any:
        """The loaded value behind `output`, waiting for it if need be."""

    def item_count(self, output: StepOutput) -> int:
        """How many items `step.map` fans out over: recorded with the output when it was
        saved, so the value is not loaded for it (but for types with no count recorded)."""

    def wait_for(self, output: StepOutput, timeout: float | None) -> bool:
        """Block until the step behind `output` has finished; False on timeout."""

    def ask(self, question: Question) -> Any:
        """The answer to a `branchwork.wait` question (a running run pauses until it has one)."""


_current: ContextVar[RunContext | None] = ContextVar("branchwork_run_context", default=None)


def current_run_context() -> RunContext | None:
    return _current.get()


@contextmanager
def run_context(context: RunContext) -> Iterator[RunContext]:
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
