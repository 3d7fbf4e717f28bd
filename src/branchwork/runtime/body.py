"""The run context a pipeline body executes in, while its run's loop runs beside it.

Each step call becomes an invocation, handed to the loop, and returns futures at once. A
future used as a value waits for its invocation's `Outcome`, which the loop thread resolves
once the result is recorded, so whatever the body sees is already durable. The body and the
loop share nothing else: invocations travel to the loop through its queue, outcomes come back
through the `Outcome`s, and the run's first failure is one field the loop sets.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import MissingArtifactError, PipelineDefinitionError, RunStopped
from branchwork.graph.futures import StepOutput, StepOutputs, outputs_of
from branchwork.graph.invocation import Invocation, Ordering, StepCalls
from branchwork.metadata.cache_entries import files_lost
from branchwork.runtime.events import FailureMode
from branchwork.runtime.interrupts import in_slices
from branchwork.runtime.step_execution import ArtifactInput, StoredArtifact, load_input
from branchwork.runtime.waits import RunQuestions
from branchwork.values import Leaf, encode, leaves_of

if TYPE_CHECKING:
    from branchwork.config.run_config import StepOptions
    from branchwork.graph.questions import Question
    from branchwork.runtime.loop import RunLoop
    from branchwork.runtime.replay import ReplayPlan
    from branchwork.runtime.step_records import Finished
    from branchwork.steps.step import Step


_SCALARS = (int, float, str, bool, type(None))


class Outcome:
    """How one invocation ended, handed from the loop thread to the body: its outputs, or
    the error its future raises. Resolved once; the first resolution wins.

    The outcomes of one body share one condition (`signal`) rather than an Event each: a
    fan-out holds an outcome per step, and an Event is half a kilobyte.

    It lives as long as a future of its call, or a call the loop has not finished that
    needs it (`Invocation.held`), or the loop's record of a call that did not succeed; the
    loop keeps it only weakly once the call succeeded,
    with what later calls need of it (`finished`, the loop thread's): a fan-out whose
    futures are dropped as it goes holds nothing of its finished steps."""

    __slots__ = ("_signal", "_done", "outputs", "error", "values", "finished", "__weakref__")

    def __init__(self, signal: threading.Condition) -> None:
        self._signal = signal
        self._done = False
        self.outputs: dict[str, StoredArtifact] = {}
        self.error: BaseException | None = None
        # Loaded once, in the body's thread, by (output, item, stop); most are never read.
        self.values: dict[tuple[str, int | None, int | None], Any] | None = None
        self.finished: Finished | None = None

    def resolve(
        self, outputs: dict[str, StoredArtifact] | None = None, error: BaseException | None = None
    ) -> None:
        with self._signal:
            if self._done:
                return
            self.outputs = outputs or {}
            self.error = error
            self._done = True
            self._signal.notify_all()

    @property
    def done(self) -> bool:
        return self._done

    def wait(self, timeout: float | None = None) -> bool:
        with self._signal:
            return in_slices(lambda seconds: self._signal.wait_for(self._is_done, seconds), timeout)

    def _is_done(self) -> bool:
        return self._done


class BodyContext:
    """The `RunContext` of a running pipeline body; see the module docstring."""

    def __init__(
        self,
        loop: RunLoop,
        pipeline_name: str,
        enable_cache: bool,
        step_options: dict[str, StepOptions] | None = None,
        replay: ReplayPlan | None = None,
    ) -> None:
        self.loop = loop
        self.pipeline_name = pipeline_name
        self.calls = StepCalls(pipeline_name, enable_cache, step_options)
        self.replay = replay  # a replay's overridden arguments, applied to each call
        self.questions = RunQuestions(loop.run_id, loop.run_name, pipeline_name)
        # The outcomes of the calls handed over in bulk (a static pipeline's, or those traced
        # before a body's first value use), whose futures hold none; a call's future holds
        # its outcome (`StepOutput._held`).
        self._added: dict[str, Outcome] = {}
        self._traced_by: StepCalls | None = None  # a static pipeline's trace (see `add`)
        self._reads: dict[str, Outcome] = {}  # values read since the last call (in order)
        self._last_reads: tuple[str, ...] = ()  # the calls since then come after these
        self._last_read_outcomes: tuple[Outcome, ...] = ()  # and their outcomes
        self._resolved = threading.Condition()  # notified as outcomes resolve (see Outcome)

    def invoke(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str | None,
        after: object,
    ) -> StepOutputs:
        self._raise_if_failed()
        ordering = after if isinstance(after, Ordering) else (after,)
        upstream = self._outcomes_in((*args, *kwargs.values(), *ordering))
        invocation = self.calls.make(step, args, kwargs, invocation_id, after)
        if self.replay is not None:
            try:
                invocation = self.replay.apply(invocation, self.pipeline_name)
            except BaseException:
                self.calls.release(invocation)
                raise
        self._note_value_inputs(invocation)
        reads = self._last_read_outcomes  # shared by the calls until the next read, as above
        invocation.held = upstream + reads if upstream else reads
        outcome = Outcome(self._resolved)
        self.loop.add([(invocation, outcome)])
        return outputs_of(self, invocation, outcome)

    def add(self, invocations: list[Invocation], traced_by: StepCalls | None = None) -> None:
        """Hand invocations to the loop (all of a static pipeline, traced with `traced_by`,
        or those traced before a body's first value use, at once)."""
        self._traced_by = traced_by
        if self.replay is not None:
            invocations = [self.replay.apply(i, self.pipeline_name) for i in invocations]
        calls = [(invocation, Outcome(self._resolved)) for invocation in invocations]
        for invocation, outcome in calls:
            self._added[invocation.id] = outcome
        self.loop.add(calls)

    def _outcomes_in(self, passed: tuple[Any, ...]) -> tuple[Outcome, ...]:
        """The outcomes of the futures among a call's arguments (and `after=`)."""
        outcomes = {}
        for value in passed:
            if type(value) in _SCALARS:  # most arguments
                continue
            for _, output in leaves_of(value, StepOutput):
                outcome = self._outcome_of(output)
                outcomes[id(outcome)] = outcome
        return tuple(outcomes.values())

    def value_of(self, output: StepOutput) -> Any:
        outcome = self._finished(output)
        name = output.output_name
        if name is None:
            return None
        cached_as = (name, output._index, output._stop)
        values = outcome.values = outcome.values or {}
        if cached_as not in values:
            stored = outcome.outputs[name]
            try:
                values[cached_as] = load_input(ArtifactInput(stored, *cached_as[1:]))
            except MissingArtifactError as error:
                raise files_lost(self.loop.recorder.engine, [stored.version_id], error) from None
        return values[cached_as]

    def item_count(self, output: StepOutput) -> int:
        outcome = self._finished(output)
        stored = outcome.outputs.get(output.output_name or "")
        if output._index is None and stored is not None and stored.item_count is not None:
            return stored.item_count
        value = self.value_of(output)
        if isinstance(value, (Mapping, AbstractSet)):  # items are taken by position
            raise TypeError(
                f"a {type(value).__name__} has no positions; map over a list of its keys, "
                "values or items, returned by a step"
            )
        if isinstance(value, (str, bytes)):
            raise TypeError(f"a {type(value).__name__} is one value, not a list of them")
        return len(value)

    def wait_for(self, output: StepOutput, timeout: float | None) -> bool:
        outcome = self._outcome_of(output)
        done = self._await(outcome, timeout)
        if done:
            self._read_value_of(output.invocation_id, outcome)
        return done

    def ask(self, question: Question) -> Any:
        """The recorded answer, or the run pauses here (see `runtime.waits`)."""
        self._raise_if_failed()
        return self.questions.ask(question)

    def finish(self, returned: Any) -> tuple[Any, list[str]]:
        """The body returned: wait for every step, then check the run's outcome. Returns the
        recorded form of what it returned and the artifact versions of the step outputs in
        it."""
        returned_outputs: list[StepOutput] = []
        structure = _return_structure(returned, returned_outputs, self.pipeline_name)
        outcomes = []
        for output in returned_outputs:
            outcome = self._held_by(output, returned=True)
            if outcome is None:
                raise PipelineDefinitionError(
                    f"Pipeline '{self.pipeline_name}' returned {output!r}, which is not a step "
                    "output of this run (a future kept from another run?); return its value "
                    "instead (`.load()` it where it was made)."
                )
            outcomes.append((outcome, output.output_name or ""))
        self.loop.close()
        if self.loop.failure is not None:  # in every mode, a step that failed fails the run
            raise self.loop.failure
        if self.loop.stopped:
            raise RunStopped(f"Run '{self.loop.run_name}' was stopped on request.")
        if self.loop.paused_child is not None:  # the run pauses with its child run
            raise self.loop.paused_child
        return structure, [outcome.outputs[name].version_id for outcome, name in outcomes]

    def _outcome_of(self, output: StepOutput) -> Outcome:
        outcome = self._held_by(output)
        if outcome is None:
            raise PipelineDefinitionError(
                f"{output!r} is not a step output of this run of pipeline "
                f"'{self.pipeline_name}' (a future kept from another run?); pass its value "
                "instead (`.load()` it where it was made)."
            )
        return outcome

    def _held_by(self, output: StepOutput, returned: bool = False) -> Outcome | None:
        """The outcome of a future of this run: made live (it holds it), or while tracing
        the body before it went live (its context shares the run's calls; found by id), or,
        `returned` by a static pipeline, by its trace. None for a future of another run."""
        context = output._context
        if context is self or context.calls is self.calls:
            return output._held or self._added.get(output.invocation_id)
        if returned and context.calls is self._traced_by:
            return self._added.get(output.invocation_id)
        return None

    def _finished(self, output: StepOutput) -> Outcome:
        """The outcome of a step that succeeded (else its error, or the run's, is raised)."""
        outcome = self._wait(output)
        if outcome.error is not None:
            raise outcome.error
        self._raise_if_failed()
        return outcome

    def _wait(self, output: StepOutput) -> Outcome:
        outcome = self._outcome_of(output)
        self._await(outcome)
        self.loop.raise_if_crashed()
        self._read_value_of(output.invocation_id, outcome)
        return outcome

    def _await(self, outcome: Outcome, timeout: float | None = None) -> bool:
        """Wait for an outcome, the loop told so (it then writes what it recorded at once)."""
        if outcome.done:
            return True
        with self.loop.awaited():
            return outcome.wait(timeout)

    def _raise_if_failed(self) -> None:
        continuing = self.loop.failure_mode is FailureMode.CONTINUE_ON_FAILURE
        if self.loop.failure is not None and not continuing:
            raise self.loop.failure

    def _note_value_inputs(self, invocation: Invocation) -> None:
        """The values the body read last before this call (see `Invocation.value_inputs`):
        one tuple shared by the calls made until the next read, so that a thousand calls
        after a thousand reads hold a thousand names, not a million."""
        if self._reads:
            self._last_reads = tuple(self._reads)
            self._last_read_outcomes = tuple(self._reads.values())
            self._reads.clear()
        invocation.value_inputs = self._last_reads

    def _read_value_of(self, invocation_id: str, outcome: Outcome) -> None:
        """The body looked at this invocation's outcome: the calls it makes next depend on
        it through a value."""
        self._reads[invocation_id] = outcome


def _return_structure(value: Any, outputs: list[StepOutput], pipeline_name: str) -> Any:
    """The JSON form of a pipeline's return value, its step outputs numbered in `outputs`
    (`models.responses` reads it back); only step outputs may be returned."""

    def numbered(output: StepOutput) -> Any:
        if output.output_name is None:
            return None
        outputs.append(output)
        node: dict[str, Any] = {"$out": len(outputs) - 1}
        if output._index is not None:
            node["index"] = output._index
        if output._stop is not None:
            node["stop"] = output._stop
        return node

    for path, leaf in leaves_of(value):
        if leaf is not None and not isinstance(leaf, StepOutput):
            where = f" at {path!r} of what it returned" if path else ""
            raise PipelineDefinitionError(
                f"Pipeline '{pipeline_name}' returned a {type(leaf).__name__} ({leaf!r:.60})"
                f"{where}; a pipeline may only return step outputs (or None, or lists/tuples/"
                "dicts of step outputs). Compute the value in a step and return that step's "
                "output."
            )
    try:
        return encode(value, Leaf("$out", StepOutput, numbered))
    except TypeError as error:  # a dict key
        raise PipelineDefinitionError(
            f"Pipeline '{pipeline_name}' returned a dict with a key that cannot be recorded: "
            f"{error}. Use str, int, float, bool or tuple keys."
        ) from None
