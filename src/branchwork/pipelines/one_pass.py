"""Running a pipeline in one pass of its body, where its loop runs in the calling process.

Finding out whether a pipeline is static or dynamic by tracing it, and then running it,
would run its body twice: its prints, experiment-tracker calls and timestamps would happen
twice. Where the loop runs here (the local orchestrator, Ray with `loop="driver"`), the
trace becomes the run. The body runs with a context that records step calls until it first
needs a step's value; then the run is created (dynamic), its loop starts with the calls seen
so far, and the same body carries on, for real, with the value it asked for. A body that
never needs a value is static: its trace is the DAG, run as such. A body that raises before
needing a value becomes a dynamic run that failed with that error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import PipelineDefinitionError, RunStopped
from branchwork.graph.context import run_context
from branchwork.graph.futures import StepOutput, StepOutputs
from branchwork.graph.tracing import Compiled, TracingContext, user_location
from branchwork.metadata.error_records import text_of
from branchwork.metadata.queries import get_run
from branchwork.metadata.store import get_engine
from branchwork.pipelines.calls import (
    check_orchestrator,
    create_run,
    run_outcome,
    stopped_if_interrupted,
)
from branchwork.pipelines.submission import heartbeating, submit_and_wait
from branchwork.runtime.interrupts import interrupts_deferred, sigterm_stops_the_run
from branchwork.runtime.requests import RunOptions, RunRequest
from branchwork.runtime.runner import RunSession

if TYPE_CHECKING:
    from branchwork.graph.questions import Question
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.runtime.body import BodyContext
    from branchwork.stack import Stack
    from branchwork.steps.step import Step


class OnePassContext(TracingContext):
    """Traces until the body first needs a value, then is the live run's context."""

    def __init__(self, pipeline: Pipeline[Any, Any], go_live: Callable[[str], BodyContext]) -> None:
        super().__init__(pipeline.name, pipeline.enable_cache is not False, pipeline.step_options)
        self._go_live = go_live
        self.live: BodyContext | None = None
        self.ended = False  # the call returned: a future kept from it starts nothing

    def invoke(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str | None,
        after: object,
    ) -> StepOutputs:
        if self.live is not None:
            return self.live.invoke(step, args, kwargs, invocation_id, after)
        return super().invoke(step, args, kwargs, invocation_id, after)

    def value_of(self, output: StepOutput) -> Any:
        live = self._live(output)
        return live.value_of(self._on(live, output))

    def item_count(self, output: StepOutput) -> int:
        live = self._live(output)
        return live.item_count(self._on(live, output))

    def wait_for(self, output: StepOutput, timeout: float | None) -> bool:
        live = self._live(output)
        return live.wait_for(self._on(live, output), timeout)

    def ask(self, question: Question) -> Any:
        if self.live is None:
            self._refuse_if_ended(f"the question {question.text!r}")
            self.value_use = f"it waits for an answer to {question.text!r} at {user_location()}"
            self.live = self._go_live(self.value_use)
        return self.live.ask(question)

    def _live(self, output: StepOutput) -> BodyContext:
        if self.live is None:
            self._refuse_if_ended(repr(output))
            self.waited_on = output.invocation_id
            self.value_use = (
                f"it uses the output of step '{output.invocation_id}' as a value at "
                f"{user_location()}"
            )
            self.live = self._go_live(self.value_use)
        return self.live

    def _refuse_if_ended(self, what: str) -> None:
        """Its run ran without needing a value: a future kept past it, read, started a run
        of the pipeline of its own, which nothing ran and which read lost a moment later."""
        if self.ended:
            raise PipelineDefinitionError(
                f"{what} belongs to a call of pipeline '{self.pipeline_name}' that has returned: "
                "use what the pipeline returned, or read the value inside its body."
            )

    @staticmethod
    def _on(live: BodyContext, output: StepOutput) -> StepOutput:
        """A future made while tracing, as one of the live run's."""
        if output._context is live:
            return output
        return StepOutput(
            live, output.invocation_id, output.output_name, output._index, output._stop
        )


class _OnePassRun:
    """The run a one-pass call creates when its body first needs a value (or raises)."""

    def __init__(
        self, pipeline: Pipeline[Any, Any], params: dict[str, Any], stack: Stack, runs: list[str]
    ) -> None:
        self.pipeline = pipeline
        self.params = params
        self.stack = stack
        self.runs = runs  # where the run is recorded as it is created: see stopped_if_interrupted
        self.context = OnePassContext(pipeline, self.start)
        self.session: RunSession | None = None
        self.run_id = ""
        self.started = False

    def start(self, reason: str) -> BodyContext:
        """Create the dynamic run and start its loop with the calls traced so far."""
        self.started = True
        orchestrator = self.stack.orchestrator
        compiled = Compiled(True, reason=reason, discovered=list(self.context.invocations))
        check_orchestrator(self.pipeline, compiled, orchestrator)
        with interrupts_deferred():
            self.run_id = create_run(self.pipeline, self.params, compiled, self.stack)
            self.runs.append(self.run_id)
        run = get_run(get_engine(), self.run_id, include_steps=False)
        options = RunOptions.of(self.pipeline, reason)
        request = RunRequest(run.snapshot, run, self.stack, options, self.pipeline)
        with heartbeating(run.id):  # its loop may take a while to begin (Ray: connecting)
            session = orchestrator.loop_session(request, f"{orchestrator.flavor}-{run.id}")
            with interrupts_deferred():
                try:
                    body = session.begin()
                finally:
                    if session.began:  # else nothing ran: the run is left as it is
                        self.session = session
        body.calls = self.context.calls  # the traced calls keep their ids; later ones follow
        body.add(self.context.invocations)
        return body


def run_in_one_pass(pipeline: Pipeline[Any, Any], params: dict[str, Any], stack: Stack) -> Any:
    """Call the pipeline, its body running once (see the module docstring)."""
    with stopped_if_interrupted() as runs, sigterm_stops_the_run():  # its loop runs here
        live = _OnePassRun(pipeline, params, stack, runs)
        try:
            with run_context(live.context):
                returned = pipeline.func(**params)
        except BaseException as error:
            live.context.ended = True
            if live.session is None:
                if live.started and isinstance(error, RunStopped):
                    return run_outcome(live.run_id, None)  # stopped before its loop began
                if live.started or not isinstance(error, Exception):
                    raise  # Ctrl-C before the run existed, or it could not be started
                live.start(
                    f"its body raised {type(error).__name__} before using a value: {text_of(error)}"
                )
            assert live.session is not None
            return run_outcome(live.run_id, live.session.fail(error).error)
        live.context.ended = True
        if live.session is None:  # it never needed a value: static, the trace is its DAG
            compiled = Compiled(False, live.context.invocations, returned, calls=live.context.calls)
            with interrupts_deferred():
                runs.append(create_run(pipeline, params, compiled, stack))
            return submit_and_wait(pipeline, compiled, runs[0], stack)
        return run_outcome(live.run_id, live.session.complete(returned).error)
