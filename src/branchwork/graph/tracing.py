"""Compiling a pipeline: run its body once with placeholder futures.

If the body only wires steps together, the trace is the whole DAG and the pipeline is
static. The first time it uses a step output as a value (`if size < 10:`, `range(n)`), there
is no value to give, so tracing stops and the pipeline is dynamic. A body that raises for any
other reason while traced is treated as dynamic too: the real run will meet the same error
with a run recorded around it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from branchwork.graph.context import run_context
from branchwork.graph.futures import StepOutput, StepOutputs, outputs_of
from branchwork.graph.invocation import Invocation, StepCalls
from branchwork.metadata.error_records import text_of

if TYPE_CHECKING:
    from types import FrameType

    from branchwork.config.run_config import StepOptions
    from branchwork.graph.questions import Question
    from branchwork.steps.step import Step

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


class _ValueUsed(BaseException):
    """Raised inside the traced body; a BaseException so `except Exception` cannot swallow it."""


@dataclass
class Compiled:
    """What tracing learnt: static (with every invocation) or dynamic (with the reason)."""

    is_dynamic: bool
    invocations: list[Invocation] = field(default_factory=list)
    returned: Any = None
    reason: str | None = None
    error: Exception | None = None
    # Dynamic: the invocations made before the body needed a value (a preview of the graph),
    # and the invocation whose value it needed.
    discovered: list[Invocation] = field(default_factory=list)
    waited_on: str | None = None
    # Static: the trace's calls, whose futures are the run's (not those of another trace).
    calls: StepCalls | None = None


def user_location() -> str:
    """File and line of the innermost frame outside branchwork (the user's code)."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


class TracingContext:
    """A run context that records invocations and refuses to produce values."""

    def __init__(
        self,
        pipeline_name: str,
        enable_cache: bool,
        step_options: dict[str, StepOptions] | None = None,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.calls = StepCalls(pipeline_name, enable_cache, step_options)
        self.invocations: list[Invocation] = []
        self.value_use: str | None = None
        self.waited_on: str | None = None

    def invoke(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str | None,
        after: object,
    ) -> StepOutputs:
        invocation = self.calls.make(step, args, kwargs, invocation_id, after)
        self.invocations.append(invocation)
        return outputs_of(self, invocation)

    def value_of(self, output: StepOutput) -> Any:
        self.waited_on = output.invocation_id
        self.value_use = (
            f"it uses the output of step '{output.invocation_id}' as a value at {user_location()}"
        )
        raise _ValueUsed(self.value_use)

    def item_count(self, output: StepOutput) -> int:
        """Mapping over an output needs its count at run time: the pipeline is dynamic."""
        return len(self.value_of(output))

    def wait_for(self, output: StepOutput, timeout: float | None) -> bool:
        return bool(self.value_of(output))

    def ask(self, question: Question) -> Any:
        """An answer is a value the body uses: the pipeline is dynamic."""
        self.value_use = f"it waits for an answer to {question.text!r} at {user_location()}"
        raise _ValueUsed(self.value_use)


def trace(
    func: Any,
    params: dict[str, Any],
    pipeline_name: str,
    enable_cache: bool,
    step_options: dict[str, StepOptions] | None = None,
) -> Compiled:
    """Run `func(**params)` with placeholders; see the module docstring."""
    context = TracingContext(pipeline_name, enable_cache, step_options)
    try:
        with run_context(context):
            returned = func(**params)
    except _ValueUsed:
        return Compiled(
            True,
            reason=context.value_use,
            discovered=context.invocations,
            waited_on=context.waited_on,
        )
    except Exception as error:
        if context.value_use:
            return Compiled(
                True,
                reason=context.value_use,
                discovered=context.invocations,
                waited_on=context.waited_on,
            )
        reason = f"its body raised {type(error).__name__} while traced: {text_of(error)}"
        return Compiled(True, reason=reason, error=error, discovered=context.invocations)
    if context.value_use:  # the body swallowed our signal with a bare except
        return Compiled(
            True,
            reason=context.value_use,
            discovered=context.invocations,
            waited_on=context.waited_on,
        )
    return Compiled(False, context.invocations, returned, calls=context.calls)
