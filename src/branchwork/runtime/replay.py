"""A replay's side of the loop: its overridden arguments, and which of the original run's
invocations it reuses.

A replay (`Client().replay`, `pipelines.replay`) is a new run of a run's pipeline with its
parameters and options, recorded with a `ReplayPlan` in its snapshot's spec, so every
process that runs its loop reads the same plan. The plan overrides arguments: of every
invocation of a step (by step name), or of one invocation (by invocation id); the new value
replaces the argument as a literal, also where the original passed a step's output (that
edge is then gone).

With `skip_successful`, `ReplayCheck` serves each invocation the original completed (or
served from the cache) from the original's record, by invocation id — recorded `cached`,
like a cache hit, whether caching is on or not — unless the replay overrides its arguments,
it comes after one that ran again (through its inputs, `after=`, or a value the body read
before calling it), or it no longer matches its record (another step, changed code, other
inputs). Those run again, never from the cache, with the reason recorded (verdict
`replayed`); invocations the original never made are like any new run's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import StepInvocationError
from branchwork.graph.cache_key import same_key_format
from branchwork.graph.cache_reasons import REPLAYED
from branchwork.graph.file_input import as_file_inputs
from branchwork.graph.invocation import Invocation, references_of
from branchwork.metadata.queries import CacheHit, RecordedAttempt, get_run, latest_attempts
from branchwork.runtime.graph_check import Call, GraphCheck, Verdict, difference_from
from branchwork.values import decode, encode

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.runtime.requests import RunRequest

_REUSABLE = ("completed", "cached")


@dataclass(frozen=True)
class Overrides:
    """Arguments by step name (every invocation of the step) and by invocation id (an
    invocation's own override wins): {key: {argument: value}}."""

    by_step: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    by_invocation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def arguments_for(self, invocation_id: str, step_name: str) -> dict[str, Any]:
        return {**self.by_step.get(step_name, {}), **self.by_invocation.get(invocation_id, {})}

    def describe(self) -> str:
        """As `--override` takes them: `train.lr=0.1, train_2.epochs=3`."""
        return ", ".join(
            f"{key}.{name}={json.dumps(value)}"
            for overrides in (self.by_step, self.by_invocation)
            for key, arguments in overrides.items()
            for name, value in arguments.items()
        )

    def to_spec(self) -> dict[str, Any]:
        """As recorded: each value in `values.encode`'s form, so a tuple stays a tuple and
        an int key an int (plain JSON turned them into a list and a str)."""
        return {
            "by_step": {k: encode(dict(v)) for k, v in self.by_step.items()},
            "by_invocation": {k: encode(dict(v)) for k, v in self.by_invocation.items()},
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> Overrides:
        spec = spec or {}
        return cls(
            {k: decode(v) for k, v in (spec.get("by_step") or {}).items()},
            {k: decode(v) for k, v in (spec.get("by_invocation") or {}).items()},
        )


@dataclass(frozen=True)
class ReplayPlan:
    """How a replay runs; see the module docstring. `overrides` are this replay's own: their
    invocations run again. `inherited` are those of the run it replays, if that run was a
    replay itself, and of the runs before it, oldest first: applied too, so the replay runs
    what that run ran, and reused where they match. A later layer's argument wins over an
    earlier layer's, whether either names a step or an invocation."""

    skip_successful: bool = False
    overrides: Overrides = field(default_factory=Overrides)
    inherited: tuple[Overrides, ...] = ()

    def arguments_for(self, invocation_id: str, step_name: str) -> dict[str, Any]:
        """The invocation's overridden arguments, every layer applied in turn (within one,
        an override of the invocation wins over one of its step). Flattening the layers
        first let an earlier replay's override of one invocation win over a later replay's
        of its step: the later replay ran the value it was told to replace."""
        arguments: dict[str, Any] = {}
        for layer in self.layers:
            arguments.update(layer.arguments_for(invocation_id, step_name))
        return arguments

    @property
    def layers(self) -> tuple[Overrides, ...]:
        """Every layer of overrides, oldest first: what a replay of this replay inherits."""
        return (*self.inherited, self.overrides)

    def apply(self, invocation: Invocation, pipeline_name: str) -> Invocation:
        """The invocation with its overridden arguments (itself if none are)."""
        step = invocation.step
        arguments = self.arguments_for(invocation.id, step.name)
        if not arguments:
            return invocation
        unknown = [name for name in arguments if name not in invocation.inputs]
        if unknown:
            raise StepInvocationError(
                f"Pipeline '{pipeline_name}': the replay overrides argument '{unknown[0]}' of "
                f"step '{step.name}' (invocation '{invocation.id}'), which it does not take; "
                f"its arguments: {', '.join(invocation.inputs) or 'none'}."
            )
        inputs = dict(invocation.inputs)
        for name, value in arguments.items():
            hint = step.file_parameters.get(name)
            inputs[name] = value if hint is None else as_file_inputs(hint, value)
        upstream, files = references_of(inputs)
        return dataclasses.replace(invocation, inputs=inputs, upstream=upstream, files=files)

    def to_spec(self) -> dict[str, Any]:
        return {
            "skip_successful": self.skip_successful,
            "overrides": self.overrides.to_spec(),
            "inherited": [layer.to_spec() for layer in self.inherited],
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> ReplayPlan:
        return cls(
            bool(spec.get("skip_successful")),
            Overrides.from_spec(spec.get("overrides")),
            _layers(spec.get("inherited")),
        )


def _layers(spec: Any) -> tuple[Overrides, ...]:
    """Inherited overrides as recorded: a list of layers, or (recorded before layers were
    kept) one flattened layer."""
    if isinstance(spec, list):
        return tuple(Overrides.from_spec(layer) for layer in spec)
    return (Overrides.from_spec(spec),) if spec else ()


class ReplayCheck(GraphCheck):
    """The graph check of a replay that reuses its original's finished invocations: its own
    records first (a resumed replay), then the original's; see the module docstring."""

    def __init__(
        self,
        run_name: str,
        own: Mapping[str, RecordedAttempt],
        accept_new_graph: bool,
        original_name: str,
        original: Mapping[str, RecordedAttempt],
        plan: ReplayPlan,
    ) -> None:
        super().__init__(run_name, own, accept_new_graph)
        self.own = own
        self.original_name = original_name
        self.original = original
        self.plan = plan
        self._as_original: set[str] = set()  # invocations whose outputs are the original's
        self._reads: list[str] = []  # every value the body read, in order
        self._reads_before: dict[str, int] = {}  # per call yet to check: how many it came after
        self._scanned = 0  # reads looked at so far, until one did not reuse the original's

    def is_replayed(self, invocation_id: str) -> bool:
        return invocation_id in self.own or invocation_id in self.original

    def made(self, invocation_id: str, reads: tuple[str, ...]) -> None:
        super().made(invocation_id, reads)
        self._reads.extend(reads)
        if self.is_replayed(invocation_id):
            self._reads_before[invocation_id] = len(self._reads)

    def check(self, call: Call) -> Verdict:
        invocation_id = call.invocation_id
        reads_before = self._reads_before.pop(invocation_id, 0)
        if invocation_id in self.own:
            verdict = super().check(call)
            if verdict.reuse is not None and _same_outputs(
                verdict.reuse, self.original.get(invocation_id)
            ):
                self._as_original.add(invocation_id)
            return verdict
        record = self.original[invocation_id]
        why = self._why_it_runs(call, record, reads_before)
        if why is None:
            self._as_original.add(invocation_id)
            return Verdict(cached=_hit_of(record, invocation_id, self.original_name))
        return Verdict(missed=REPLAYED, reason=f"replay of run '{self.original_name}': {why}")

    def _why_it_runs(self, call: Call, record: RecordedAttempt, reads_before: int) -> str | None:
        overridden = self.plan.overrides.arguments_for(call.invocation_id, call.step_name)
        if overridden:
            values = ", ".join(f"{name}={value!r}" for name, value in overridden.items())
            return f"its arguments are overridden ({values})"
        moved = [i for i in call.upstream if i not in self._as_original]
        changed = moved[0] if moved else self._changed_read_before(reads_before)
        if changed is not None:
            return f"it comes after '{changed}', which did not reuse the original's result"
        if record.status not in _REUSABLE:
            return f"it {record.status} there"
        if record.invalidated:
            return "its result there was invalidated (branchwork cache invalidate)"
        if not same_key_format(record.cache_key, call.key):
            return "its record there predates the current cache keys"
        difference = difference_from(record, call.step_name, call.code_hash, call.key)
        return None if difference is None else f"invocation '{call.invocation_id}' {difference}"

    def _changed_read_before(self, reads_before: int) -> str | None:
        """The first of the body's first `reads_before` reads that did not reuse the
        original's result, if any. A read value had finished, so whether it reused is
        settled: the reads are looked at once each, in order, however many calls follow."""
        while self._scanned < reads_before:
            read = self._reads[self._scanned]
            if read not in self._as_original:
                return read
            self._scanned += 1
        return None


def graph_check_for(
    request: RunRequest, own: Mapping[str, RecordedAttempt], store: Engine
) -> GraphCheck:
    """The run's graph check: a replay that skips what succeeded checks against its original
    too; any other run only against its own records (a resume's)."""
    run, options = request.run, request.options
    plan = options.replay
    if plan is None or not plan.skip_successful or run.replay_of is None:
        return GraphCheck(run.name, own, options.accept_new_graph)
    original_name = get_run(store, run.replay_of, include_steps=False).name
    original = latest_attempts(store, run.replay_of)  # not the whole run: a few fields each
    return ReplayCheck(run.name, own, options.accept_new_graph, original_name, original, plan)


def _hit_of(record: RecordedAttempt, invocation_id: str, run_name: str) -> CacheHit:
    """A finished record of the original as a cache hit: of the step run that made its
    outputs (the original's own, or the one its cache hit reused)."""
    producer = record.original_step_run_id if record.status == "cached" else None
    return CacheHit(
        producer or record.id, dict(record.outputs), record.end_time, run_name, invocation_id
    )


def _same_outputs(record: RecordedAttempt, original: RecordedAttempt | None) -> bool:
    if original is None:
        return False
    return {n: v.id for n, v in record.outputs.items()} == {
        n: v.id for n, v in original.outputs.items()
    }
