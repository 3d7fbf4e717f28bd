"""`StepOutput`: the future a step call returns inside a pipeline.

Passed to another step it is an edge (data moves by reference). Used as a value — truth,
comparison, arithmetic, `int()`, `len()`, iteration, indexing, `in`, formatting, attribute
access — it waits for the step and behaves as the loaded value, which is what lets ordinary
Python control flow drive a dynamic pipeline. `repr()` never waits, so debuggers stay usable.
It cannot be hashed (a set member, a dict key): `.load()` it first.

Its own names are few, so that attribute access reaches the value: `load`, `result` and
`wait` (used as a value rather than called, they raise: `if check.result:` was always true,
the method being truthy), `invocation_id` and `output_name`; which item of a mapped output it
is (`_index`, `_stop`) is private, since `df.index` and `values.index(6)` are the value's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

if TYPE_CHECKING:
    from branchwork.graph.context import RunContext
    from branchwork.graph.invocation import Invocation


class StepOutput:
    """A future for output `output_name` of invocation `invocation_id`; with `_index`, for
    its item `_index` (or items `_index` to `_stop`, a chunk), as `step.map` hands them out.
    `_held` is what its context keeps of the call for as long as a future of it exists (a
    running body's outcome of the call): once no future holds it, its result can go."""

    __slots__ = ("_context", "invocation_id", "output_name", "_index", "_stop", "_held")
    _context: RunContext
    _held: Any
    invocation_id: str
    output_name: str | None
    _index: int | None
    _stop: int | None

    def __init__(
        self,
        context: RunContext,
        invocation_id: str,
        output_name: str | None,
        index: int | None = None,
        stop: int | None = None,
        held: Any = None,
    ) -> None:
        object.__setattr__(self, "_context", context)
        object.__setattr__(self, "invocation_id", invocation_id)
        object.__setattr__(self, "output_name", output_name)
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_stop", stop)
        object.__setattr__(self, "_held", held)

    def _load(self) -> Any:
        return self._context.value_of(self)

    def _wait(self, timeout: float | None = None) -> bool:
        return self._context.wait_for(self, timeout)

    @property
    def load(self) -> _OwnMethod:
        """`load()`: wait for the step and return this output's value."""
        return _OwnMethod(self, "load", self._load)

    @property
    def result(self) -> _OwnMethod:
        """`result()`: the same as `load()`."""
        return _OwnMethod(self, "result", self._load)

    @property
    def wait(self) -> _OwnMethod:
        """`wait(timeout=None)`: wait until the step has finished (successfully or not);
        False on timeout."""
        return _OwnMethod(self, "wait", self._wait)

    def __repr__(self) -> str:
        name = f"{self.invocation_id}.{self.output_name}"
        if self._index is not None:
            name += f"[{self._index}]" if self._stop is None else f"[{self._index}:{self._stop}]"
        return f"<StepOutput {name}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in StepOutput.__slots__:  # unset: a half-made copy
            raise AttributeError(name)
        return getattr(self._load(), name)

    def __copy__(self) -> StepOutput:
        return self  # a reference to one output: its copy is itself

    def __deepcopy__(self, memo: dict[int, Any]) -> StepOutput:
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r} is read-only")

    def __hash__(self) -> int:
        """Refused: by identity, `status() in {"ok", "done"}` was False although `==` compares
        values (a wrong branch); by value, `{work(i): i for i in ...}` would wait for each
        step in turn and merge equal results. Either way silently wrong: say what to do."""
        raise TypeError(
            f"A step output ({self!r}) cannot be hashed, so it cannot be in a set or be a dict "
            "key: use its value, `.load()` (`status().load() in {'ok', 'done'}`), or key by "
            "`.invocation_id`."
        )

    def __bool__(self) -> bool:
        return bool(self._load())

    def __len__(self) -> int:
        return len(self._load())

    def __iter__(self) -> Any:
        return iter(self._load())

    def __contains__(self, item: Any) -> bool:
        return item in self._load()

    def __getitem__(self, key: Any) -> Any:
        return self._load()[key]

    def __str__(self) -> str:
        return str(self._load())

    def __format__(self, spec: str) -> str:
        return format(self._load(), spec)

    def __int__(self) -> int:
        return int(self._load())

    def __float__(self) -> float:
        return float(self._load())

    def __index__(self) -> int:
        return operator.index(self._load())

    def __round__(self, ndigits: int | None = None) -> Any:
        return round(self._load(), ndigits)

    def __neg__(self) -> Any:
        return -self._load()

    def __pos__(self) -> Any:
        return +self._load()

    def __abs__(self) -> Any:
        return abs(self._load())

    def __invert__(self) -> Any:
        return ~self._load()


class _OwnMethod:
    """A future's own method (`load`, `result`, `wait`), called as usual. Used as a value
    instead — truth, comparison, formatting — it raises: a value's attribute of that name is
    `future.load().name`, and the method, always true, chose a branch without a word."""

    __slots__ = ("_call", "_future", "_name")

    def __init__(self, future: StepOutput, name: str, call: Callable[..., Any]) -> None:
        self._future, self._name, self._call = future, name, call

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<method {self._name} of {self._future!r}>"

    def _used_as_a_value(self, *_: Any) -> Any:
        raise TypeError(
            f"`{self._name}` of a step output ({self._future!r}) is its method "
            f"`{self._name}()`, not an attribute of its value: call it, or use "
            f"`.load().{self._name}` for the value's."
        )

    __bool__ = __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _used_as_a_value
    __str__ = __format__ = __int__ = __float__ = __index__ = __len__ = _used_as_a_value
    __hash__ = None  # type: ignore[assignment]


# What a step call returns inside a pipeline: one future per output (a tuple for several).
StepOutputs: TypeAlias = StepOutput | tuple[StepOutput, ...]

T = TypeVar("T")


class MappedOutputs(list[T]):
    """What `step.map()` and `step.product()` return: each call's future(s), in order."""

    def __init__(self, calls: list[T], output_count: int) -> None:
        super().__init__(calls)
        self.output_count = output_count

    def unpack(self) -> tuple[list[Any], ...]:
        """One list per output of the step: `scores, labels = evaluate.map(xs).unpack()`.
        (Typed `Any`: the lists hold futures, which steps take in place of the values.)"""
        if self.output_count == 1:
            return (list(self),)
        columns: list[list[Any]] = [[] for _ in range(self.output_count)]
        for outputs in self:
            for column, output in zip(columns, cast("tuple[StepOutput, ...]", outputs)):
                column.append(output)
        return tuple(columns)


def _value(operand: Any) -> Any:
    return operand._load() if isinstance(operand, StepOutput) else operand


def _forward(
    op: Callable[[Any, Any], Any], reflected: bool = False
) -> Callable[[StepOutput, Any], Any]:
    if reflected:
        return lambda self, other: op(_value(other), self._load())
    return lambda self, other: op(self._load(), _value(other))


for _name, _op in {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}.items():
    setattr(StepOutput, f"__{_name}__", _forward(_op))

for _name, _op in {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "floordiv": operator.floordiv,
    "mod": operator.mod,
    "pow": operator.pow,
    "matmul": operator.matmul,
    "and": operator.and_,
    "or": operator.or_,
    "xor": operator.xor,
    "lshift": operator.lshift,
    "rshift": operator.rshift,
    "divmod": divmod,
}.items():
    setattr(StepOutput, f"__{_name}__", _forward(_op))
    setattr(StepOutput, f"__r{_name}__", _forward(_op, reflected=True))


def outputs_of(context: RunContext, invocation: Invocation, held: Any = None) -> StepOutputs:
    """The future(s) a step call returns: one, a tuple for several, an empty one for none."""
    specs = invocation.step.outputs
    if not specs:
        return StepOutput(context, invocation.id, None, held=held)
    futures = tuple(StepOutput(context, invocation.id, spec.name, held=held) for spec in specs)
    return futures[0] if len(futures) == 1 else futures
