"""Invocations: one call of a step inside a run, with deterministic ids and bound inputs.

Arguments are bound against the step's signature when the call is made, so a missing or
unknown argument fails at the line that made the call. Futures found anywhere in the
arguments (also inside lists, tuples and dicts) become `OutputRef`s: edges by reference.
Everything else must have a JSON form (`branchwork.values`): it is recorded and hashed for
the cache.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import inspect
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from branchwork.exceptions import StepInvocationError
from branchwork.graph.external import ExternalArtifact
from branchwork.graph.file_input import FileInput, as_file_inputs
from branchwork.graph.futures import StepOutput
from branchwork.values import LONG_INT, Leaf, encode, leaves_of, tree_map

if TYPE_CHECKING:
    from branchwork.config.run_config import StepOptions
    from branchwork.steps.step import Step


class OutputRef(NamedTuple):
    """A reference to output `output` of invocation `invocation_id` (item `item` if mapped;
    items `item` to `stop` if mapped in chunks)."""

    invocation_id: str
    output: str
    item: int | None = None
    stop: int | None = None

    def to_json(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"$ref": self.invocation_id, "output": self.output}
        if self.item is not None:
            ref["index"] = self.item
        if self.stop is not None:
            ref["stop"] = self.stop
        return ref


@dataclass(slots=True)
class Invocation:
    """One step call: its id, the step, bound inputs (with OutputRef leaves) and edges."""

    id: str
    step: Step[Any, Any]
    inputs: dict[str, Any]
    upstream: tuple[str, ...]
    after: tuple[str, ...]
    enable_cache: bool
    # Dynamic runs: the values the pipeline body read last before this call: edges through
    # control flow, drawn dashed. Every call made between the same two reads holds the same
    # tuple (see `runtime.step_records` for how they are recorded once).
    value_inputs: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # the FileInput paths among its inputs: hashed for its key
    start_after: tuple[str, ...] = ()  # it starts once these have started (sidecars)
    # Dynamic runs: what keeps the results this call needs alive until its run's loop is done
    # with it (the outcomes of the futures passed to it and of the values read before it),
    # since the body's own futures of them may be gone by then.
    held: tuple[Any, ...] = ()

    @property
    def dependencies(self) -> tuple[str, ...]:
        """Every invocation that must succeed first: data parents, then `after=` ones."""
        if not self.after:
            return self.upstream
        return self.upstream + tuple(i for i in self.after if i not in self.upstream)


class InvocationIds:
    """Hands out `name`, `name_2`, `name_3`, ... in call order; honours explicit ids.

    It keeps a count per step name and the explicit ids, not each id handed out (a
    million-call fan-out keeps one number): `name_k` is taken for every k up to the count,
    by this step or by an id it skipped."""

    def __init__(self) -> None:
        self._explicit: set[str] = set()
        self._counters: dict[str, int] = {}

    def __contains__(self, invocation_id: str) -> bool:
        if invocation_id in self._explicit or invocation_id in self._counters:
            return True
        name, _, number = invocation_id.rpartition("_")
        return (
            number.isascii()
            and number.isdigit()
            and not number.startswith("0")
            and 2 <= int(number) <= self._counters.get(name, 0)
        )

    def claim(self, step_name: str, explicit: str | None, pipeline_name: str) -> str:
        if explicit is not None:
            if not isinstance(explicit, str) or not explicit:
                raise StepInvocationError(
                    f"Pipeline '{pipeline_name}': id= for step '{step_name}' must be a "
                    f"non-empty string, got {explicit!r}"
                )
            if "/" in explicit or explicit in (".", ".."):  # RUN/INVOCATION/OUTPUT, URLs
                raise StepInvocationError(
                    f"Pipeline '{pipeline_name}': id= for step '{step_name}' is {explicit!r}; "
                    "an invocation id cannot contain '/' nor be '.' or '..' (the CLI reads "
                    "RUN/INVOCATION/OUTPUT and the dashboard addresses steps by path, so the "
                    "step's outputs could not be addressed)."
                )
            if explicit in self:
                raise StepInvocationError(
                    f"Pipeline '{pipeline_name}': invocation id '{explicit}' is used twice; "
                    "every step call in a run needs its own id."
                )
            self._explicit.add(explicit)
            return explicit
        count = self._counters.get(step_name, 0)
        while True:
            count += 1
            candidate = step_name if count == 1 else f"{step_name}_{count}"
            if candidate not in self:
                break
        self._counters[step_name] = count
        return candidate

    def release(self, step_name: str, invocation_id: str) -> None:
        """Give back the id just claimed for a call that turned out bad, so that nothing
        names it as an earlier step (it never ran) and the next call may take it."""
        if invocation_id in self._explicit:
            self._explicit.discard(invocation_id)
            return
        count = self._counters.get(step_name, 0)
        if count == 1 and invocation_id == step_name:
            del self._counters[step_name]
        elif count > 1 and invocation_id == f"{step_name}_{count}":
            self._counters[step_name] = count - 1


_PLAIN = (int, str, bool, type(None))  # exact types that need neither conversion nor checks

# Inputs that stand for a stored artifact: a step output, or a version made outside the run.
ARTIFACT_REFS = (OutputRef, ExternalArtifact)
# How recorded configurations write them: {"$ref": "load", "output": "output"}, and
# {"$external": "model", "version": 2, "id": "..."}.
_RECORDED_REFS = Leaf("$ref", ARTIFACT_REFS, lambda ref: ref.to_json())


def _of_this_run(output: StepOutput, calls: StepCalls, where: str) -> str:
    """The invocation id of a future of the run whose calls are `calls`: one kept from
    another run (an earlier run, the parent of a child run) was taken by its id alone, for
    whatever call of this run has that id."""
    if output._context.calls is not calls:
        raise StepInvocationError(
            f"{where} receives {output!r}, a step output of another run (a future kept from "
            "an earlier run, or the parent run of a child pipeline): pass its value instead "
            "(`.load()` it in the run that made it), or make the call in that run."
        )
    return output.invocation_id


def _to_ref(output: StepOutput, where: str, calls: StepCalls) -> OutputRef:
    _of_this_run(output, calls, where)
    if output.output_name is None:
        raise StepInvocationError(
            f"{where} receives the result of '{output.invocation_id}', a step with no "
            "outputs; pass it as after= to order the steps instead."
        )
    return OutputRef(output.invocation_id, output.output_name, output._index, output._stop)


def bind_inputs(
    step: Step[Any, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    invocation_id: str,
    calls: StepCalls,
) -> dict[str, Any]:
    """Bind a call's arguments to the step signature; errors name the step and argument."""
    where = f"Pipeline '{calls.pipeline_name}': step '{step.name}' (invocation '{invocation_id}')"
    try:
        bound = step.signature.bind(*args, **kwargs)
    except TypeError as error:
        parameters = step.signature.parameters
        required = [
            name
            for name, p in parameters.items()
            if p.default is inspect.Parameter.empty
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        raise StepInvocationError(
            f"{where} cannot be called this way: {_unknown_keyword(parameters, kwargs) or error}. "
            f"Its signature is {step.name}{step.signature}; required arguments: "
            f"{', '.join(required) or 'none'}."
        ) from None
    bound.apply_defaults()
    inputs: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in step.file_parameters:
            value = as_file_inputs(step.file_parameters[name], value)
        if type(value) in _PLAIN and (type(value) is not int or value.bit_length() < LONG_INT):
            inputs[name] = value  # most arguments: recorded as they are
            continue
        argument = f"{where}, argument '{name}'"
        _check_not_all_outputs(argument, value, step.not_tuple_parameters.get(name))
        converted = tree_map(
            functools.partial(_to_ref, where=argument, calls=calls), value, StepOutput
        )
        try:
            encode(converted, _RECORDED_REFS)
        except TypeError as error:
            raise StepInvocationError(
                f"{argument} cannot be passed as a literal parameter: {error}. Pass its JSON "
                "form (a model's .model_dump(mode='json'), str(path): as a typed pipeline "
                "parameter is recorded), or produce the value in a step and pass that step's "
                "output instead."
            ) from None
        inputs[name] = converted
    return inputs


def _check_not_all_outputs(argument: str, value: Any, annotation: type | None) -> None:
    """Refuse the tuple of every output of a call (`use(split())`) for a parameter annotated
    with a class no tuple is: the step got the tuple and failed later, blaming its own
    output's type."""
    if annotation is None or type(value) is not tuple or len(value) < 2:
        return
    first = value[0]
    if not all(
        isinstance(item, StepOutput)
        and item.invocation_id == first.invocation_id
        and item._index is None
        for item in value
    ):
        return
    names = ", ".join(str(item.output_name) for item in value)
    raise StepInvocationError(
        f"{argument} is annotated {annotation.__qualname__}, but is given the {len(value)} "
        f"outputs of invocation '{first.invocation_id}' as one tuple ({names}). Unpack them "
        f"first ({names} = ...) and pass the one it takes."
    )


def _unknown_keyword(parameters: Mapping[str, inspect.Parameter], kwargs: dict[str, Any]) -> str:
    """The first keyword the signature has no parameter for, with the nearest name it has:
    Python's own error names a missing argument first (a typo reads as a missing one)."""
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return ""
    named = [name for name, p in parameters.items() if p.kind is not p.POSITIONAL_ONLY]
    for keyword in kwargs:
        if keyword not in named:
            nearest = difflib.get_close_matches(keyword, named, n=1)
            hint = f" (did you mean '{nearest[0]}'?)" if nearest else ""
            return f"got an unexpected keyword argument '{keyword}'{hint}"
    return ""


def references_of(inputs: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The invocations the inputs read from (each once, in argument order) and the files
    they name (`FileInput`), in one walk."""
    upstream: dict[str, None] = {}
    files: dict[str, None] = {}
    for _, leaf in leaves_of(inputs, (OutputRef, FileInput)):
        if isinstance(leaf, OutputRef):
            upstream[leaf.invocation_id] = None
        else:
            files[leaf] = None
    return tuple(upstream), tuple(files)


class Ordering(NamedTuple):
    """A call's `after=` (start once these succeeded) and `start_after=` (once these
    started): each a future, an invocation id, or a list of either. The step hands it to the
    run context in place of a bare `after=` value, which `StepCalls.make` still takes."""

    after: object = None
    start_after: object = None


def _prefixed(after: object, prefix: str) -> object:
    """An `after=` value with the invocation ids it names as strings prefixed."""
    if isinstance(after, str):
        return prefix + after
    if isinstance(after, (list, tuple)):
        return [prefix + item if isinstance(item, str) else item for item in after]
    return after


def after_ids(
    after: object, where: str, calls: StepCalls, keyword: str = "after"
) -> tuple[str, ...]:
    """Invocation ids named by an `after=` (or `start_after=`) argument (futures of the
    run whose calls are `calls`, ids or a list of either)."""
    if after is None:
        return ()
    items = after if isinstance(after, (list, tuple)) else [after]
    ids: list[str] = []
    for item in items:
        if isinstance(item, StepOutput):
            ids.append(_of_this_run(item, calls, f"{where}: {keyword}="))
        elif isinstance(item, str):
            ids.append(item)
        else:
            raise StepInvocationError(
                f"{where}: {keyword}= takes step outputs or invocation ids, "
                f"got {type(item).__name__}"
            )
    return tuple(dict.fromkeys(ids))


def invocation_config(invocation: Invocation) -> dict[str, Any]:
    """The recorded configuration of an invocation (JSON-able)."""
    return {**_step_config(invocation.step), **_call_config(invocation)}


def invocation_config_json(invocation: Invocation, value_inputs: dict[str, Any]) -> str:
    """`invocation_config` as JSON text, with how its `value_inputs` are recorded (the
    list, or `value_inputs_of` the call that has it): the step's part written once per
    step, since a dynamic run records one per step run."""
    call = json.dumps({**_call_config(invocation), **value_inputs}, separators=_COMPACT)
    return f"{_step_config_json(invocation.step)[:-1]},{call[1:]}"


def _call_config(invocation: Invocation) -> dict[str, Any]:
    return {
        "inputs": encode(invocation.inputs, _RECORDED_REFS),
        "after": list(invocation.after),
        "enable_cache": invocation.enable_cache,
        **({"start_after": list(invocation.start_after)} if invocation.start_after else {}),
    }


@functools.lru_cache(maxsize=1024)
def _step_config(step: Step[Any, Any]) -> dict[str, Any]:
    return {
        "step": step.name,
        "source": step.source,
        "resources": step.resources.to_dict(),
        "retry": step.retry.to_dict() if step.retry else None,
        "outputs": [spec.name for spec in step.outputs],
        **({"max_concurrency": step.max_concurrency} if step.max_concurrency else {}),
        **({"concurrency_limit": step.concurrency_limit} if step.concurrency_limit else {}),
    }


@functools.lru_cache(maxsize=1024)
def _step_config_json(step: Step[Any, Any]) -> str:
    return json.dumps(_step_config(step), separators=_COMPACT)


_COMPACT = (",", ":")  # a dynamic run writes a configuration per step run: no spaces


class StepCalls:
    """A run's step calls turned into invocations: each validated, given the next free id,
    with the options a run configuration sets for its step, and cached unless the pipeline
    or the step turns caching off. One per run, shared by whoever records its calls."""

    def __init__(
        self,
        pipeline_name: str,
        pipeline_cache: bool,
        step_options: dict[str, StepOptions] | None = None,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.pipeline_cache = pipeline_cache
        self.step_options = step_options or {}
        self.ids = InvocationIds()
        self.prefix = ""  # "child." while an embedded pipeline's body runs (`embedded`)

    @contextlib.contextmanager
    def embedded(self, name: str) -> Iterator[None]:
        """While the block runs, calls get ids prefixed "name." (ids named in `after=` or
        `start_after=` too): the steps of a pipeline embedded in this run."""
        outer = self.prefix
        self.prefix = f"{outer}{name}."
        try:
            yield
        finally:
            self.prefix = outer

    def make(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str | None,
        after: object,
    ) -> Invocation:
        """The invocation of one call of `step` (StepInvocationError: a bad call); `after`
        is an `Ordering` or a bare `after=` value."""
        ordering = after if isinstance(after, Ordering) else Ordering(after)
        if step.name in self.step_options:
            step = self.step_options[step.name].apply(step)
        pipeline_name = self.pipeline_name
        if self.prefix:
            if isinstance(invocation_id, str) and invocation_id:
                invocation_id = self.prefix + invocation_id
            ordering = Ordering(*(_prefixed(ids, self.prefix) for ids in ordering))
        invocation_id = self.ids.claim(self.prefix + step.name, invocation_id, pipeline_name)
        try:
            return self._invocation(step, args, kwargs, invocation_id, ordering)
        except BaseException:
            self.ids.release(self.prefix + step.name, invocation_id)
            raise

    def release(self, invocation: Invocation) -> None:
        """Give back the id of a call made but refused before it reached the run."""
        self.ids.release(self.prefix + invocation.step.name, invocation.id)

    def _invocation(
        self,
        step: Step[Any, Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        invocation_id: str,
        ordering: Ordering,
    ) -> Invocation:
        pipeline_name = self.pipeline_name
        where = f"Pipeline '{pipeline_name}': step '{step.name}' (invocation '{invocation_id}')"
        inputs = bind_inputs(step, args, kwargs, invocation_id, self)
        upstream, files = references_of(inputs)
        invocation = Invocation(
            id=invocation_id,
            step=step,
            inputs=inputs,
            upstream=upstream,
            after=after_ids(ordering.after, where, self),
            enable_cache=self.pipeline_cache and step.enable_cache is not False,
            files=files,
            start_after=after_ids(ordering.start_after, where, self, "start_after"),
        )
        edges = [("depends on", d) for d in invocation.dependencies]
        edges += [("starts after", s) for s in invocation.start_after]
        for relation, earlier in edges:
            if earlier not in self.ids or earlier == invocation_id:
                raise StepInvocationError(
                    f"{where} {relation} '{earlier}', which is not an earlier step of this run."
                )
        return invocation
