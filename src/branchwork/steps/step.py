"""The `@step` decorator and the `Step` definition it produces.

Outside a pipeline a step is its plain function, so it can be unit-tested directly. Inside
one, calling it records an invocation with the run context and returns future(s) at once.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import inspect
import itertools
import typing
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar, cast, overload

from branchwork.config.cache import NO_POLICY, CachePolicy
from branchwork.config.checks import check_flag, check_hook, check_name
from branchwork.config.concurrency import check_limit_name, check_size
from branchwork.config.resources import ResourceSettings
from branchwork.config.retry import StepRetryConfig, check_retry
from branchwork.exceptions import ConfigurationError, StepInvocationError
from branchwork.graph.code_hash import CodeFingerprint, fingerprint
from branchwork.graph.context import current_run_context
from branchwork.graph.file_input import names_files
from branchwork.graph.futures import MappedOutputs, StepOutput
from branchwork.graph.invocation import Ordering
from branchwork.materializers.types import script_classes
from branchwork.steps.outputs import OutputMaterializers, OutputSpec, parse_outputs
from branchwork.user_code import code_generation, recorded_module

P = ParamSpec("P")
R = TypeVar("R")

_KNOWN_SETTINGS = ("resources",)
_RUNTIMES = (None, "inline", "isolated")


class unmapped:  # noqa: N801 - named like the function users know from other frameworks
    """Marks an argument of `step.map(...)` / `step.product(...)` as passed whole to every call."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _resources_from(settings: dict[str, Any] | None, step_name: str) -> ResourceSettings:
    settings = dict(settings or {})
    unknown = set(settings) - set(_KNOWN_SETTINGS)
    if unknown:
        raise ConfigurationError(
            f"Step '{step_name}': unknown settings {sorted(unknown)}; "
            f"known settings are {list(_KNOWN_SETTINGS)}"
        )
    resources = settings.get("resources", ResourceSettings())
    if isinstance(resources, dict):
        try:
            resources = ResourceSettings(**resources)
        except TypeError as error:
            raise ConfigurationError(
                f"Step '{step_name}': settings['resources']: {error}"
            ) from None
    if not isinstance(resources, ResourceSettings):
        raise ConfigurationError(
            f"Step '{step_name}': settings['resources'] must be a ResourceSettings, "
            f"got {type(resources).__name__}"
        )
    return resources


class Step(Generic[P, R]):
    """A step: its function plus the settings every invocation of it runs with."""

    __test__ = False  # a pipeline/step named test_* is not a pytest test
    # A call's cache reason when caching is off for it (`runtime.cache_keys`).
    cache_off_reason = (
        "caching is off for this step (enable_cache=False on it, its pipeline or run)"
    )

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        settings: dict[str, Any] | None = None,
        enable_cache: bool | None = None,
        retry: StepRetryConfig | None = None,
        output_materializers: OutputMaterializers | None = None,
        on_failure: Callable[..., Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        runtime: str | None = None,
        cache_key_fn: Callable[[dict[str, Any]], Any] | None = None,
        expire_after: timedelta | None = None,
        cache_policy: CachePolicy | None = None,
        max_concurrency: int | None = None,
        concurrency_limit: str | None = None,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"@step needs a function, got {func!r}")
        if isinstance(func, Step):  # its calls would be the inner step's, options and all
            raise ConfigurationError(
                f"@step of '{func.name}': it is a step already; change its options with "
                f"{func.name}.with_options(...), or make another step of its function with "
                f"step(...)({func.name}.func)"
            )
        self.func = func
        self._fingerprint: tuple[tuple[int, int], CodeFingerprint] | None = None  # code_fingerprint
        self.name: str = check_name(name, func, "@step")
        self.signature = inspect.signature(func)
        # An `async def` step is awaited on the launcher's event loop (see runtime.launchers).
        self.is_async = inspect.iscoroutinefunction(func)
        self.resources = _resources_from(settings, self.name)
        self._set_run_options(enable_cache, retry, runtime)
        self._set_cache_options(cache_key_fn, expire_after, cache_policy or NO_POLICY)
        self._set_concurrency(max_concurrency, concurrency_limit)
        self.on_failure = check_hook(on_failure, f"Step '{self.name}': on_failure")
        self.on_success = check_hook(on_success, f"Step '{self.name}': on_success")
        self.outputs: tuple[OutputSpec, ...] = _with_materializers(
            parse_outputs(func, self.name), output_materializers, self.name
        )
        hints = _input_hints(func)
        # Annotated to take paths as files (`FileInput`, `list[FileInput]`...): their hints.
        self.file_parameters = {name: hint for name, hint in hints.items() if names_files(hint)}
        # By recorded path: an input of a script's class loads where the script is not
        # loaded (an isolated step's process, a Ray worker): see `materializers.types`.
        self.script_classes = script_classes(hints.values())
        # Annotated with a class no tuple is: given all the outputs of a call of a step with
        # several, as a tuple, the call is refused (`graph.invocation`).
        self.not_tuple_parameters = {
            name: hint
            for name, hint in hints.items()
            if isinstance(hint, type) and not issubclass(tuple, hint)
        }
        functools.update_wrapper(self, func)

    def _set_run_options(
        self, enable_cache: bool | None, retry: StepRetryConfig | None, runtime: str | None
    ) -> None:
        """Whether its results are cached, how it is retried, where it runs: checked here for
        `@step` and `.with_options` alike, since a bad value would otherwise be taken for
        something else (`enable_cache=0` leaves caching on) or fail only in a run."""
        where = f"Step '{self.name}': "
        if runtime not in _RUNTIMES:
            raise ConfigurationError(
                f"{where}runtime must be 'inline' or 'isolated', got {runtime!r}"
            )
        self.enable_cache = check_flag(enable_cache, where + "enable_cache")
        self.retry = check_retry(retry, where + "retry")
        self.runtime = runtime

    def _set_cache_options(
        self,
        cache_key_fn: Callable[[dict[str, Any]], Any] | None,
        expire_after: timedelta | None,
        cache_policy: CachePolicy,
    ) -> None:
        """What its cache key takes in beyond code and arguments (see `graph.cache_key`):
        `cache_key_fn(arguments)` for what it depends on outside them, `expire_after` for
        how long a cached result stays usable, `cache_policy` for library versions."""
        if cache_key_fn is not None and not callable(cache_key_fn):
            raise ConfigurationError(f"Step '{self.name}': cache_key_fn must be callable")
        if expire_after is not None and not (
            isinstance(expire_after, timedelta) and expire_after > timedelta(0)
        ):
            raise ConfigurationError(
                f"Step '{self.name}': expire_after must be a positive timedelta, "
                f"got {expire_after!r}"
            )
        if not isinstance(cache_policy, CachePolicy):
            raise ConfigurationError(f"Step '{self.name}': cache_policy must be a CachePolicy")
        self.cache_key_fn = cache_key_fn
        self.expire_after = expire_after
        self.cache_policy = cache_policy

    def _set_concurrency(self, max_concurrency: int | None, concurrency_limit: str | None) -> None:
        """How many of its invocations may run at once (see `config.concurrency`)."""
        where = f"Step '{self.name}': "
        self.max_concurrency = (
            None
            if max_concurrency is None
            else check_size(max_concurrency, where + "max_concurrency")
        )
        self.concurrency_limit = (
            None
            if concurrency_limit is None
            else check_limit_name(concurrency_limit, where + "concurrency_limit")
        )

    @property
    def source(self) -> str:
        """Import path of the step, "module:qualname"."""
        return f"{recorded_module(self.func.__module__)}:{self.func.__qualname__}"

    @property
    def code_fingerprint(self) -> CodeFingerprint:
        """The function and the user's code it reaches (helpers, classes, module
        constants), comments and docstrings left out: see `graph.code_hash` (which computes
        it once per function, and again after a notebook cell ran). A command step's is its
        command (`steps.command`). Kept here too, with the code generation it is of: a
        fan-out asks for it several times per call."""
        generation = code_generation()
        known = self._fingerprint
        if known is None or known[0] != generation:
            known = self._fingerprint = (generation, fingerprint(self.func))
        return known[1]

    @property
    def code_hash(self) -> str:
        """What the step's cache key follows as its code: `code_fingerprint`'s digest."""
        return self.code_fingerprint.digest

    # A ParamSpec cannot take extra keywords, so a call with `id=`, `after=` or
    # `start_after=` matches an overload that leaves the step's own arguments unchecked.
    @overload
    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def __call__(
        self, *args: Any, id: str, after: object = None, start_after: object = None, **kwargs: Any
    ) -> R: ...

    @overload
    def __call__(
        self, *args: Any, after: object, start_after: object = None, **kwargs: Any
    ) -> R: ...

    @overload
    def __call__(self, *args: Any, start_after: object, **kwargs: Any) -> R: ...

    def __call__(self, *args: Any, **kwargs: Any) -> R:
        context = current_run_context()
        invocation_id, ordering = self._pop_reserved(kwargs)
        if context is None:  # a plain call (a unit test): `id=` and `after=` order nothing
            return self.func(*args, **kwargs)
        # Inside a pipeline the future(s) stand in for the value the function will return.
        return cast(R, context.invoke(self, args, kwargs, invocation_id, ordering))

    submit = __call__  # same as calling the step: returns future(s) at once inside a pipeline

    def map(self, *args: Any, **kwargs: Any) -> MappedOutputs[R]:
        """One invocation per item of the mapped arguments (zipped); `unmapped(x)` stays whole.

        A step's output is mapped without loading it into the pipeline: each invocation
        loads only its item. `chunk_size=k` gives each invocation k items (the last one what
        is left), as a value of the mapped kind: a list, an array, a DataFrame."""
        return self._fan_out(args, kwargs, product=False)

    def product(self, *args: Any, **kwargs: Any) -> MappedOutputs[R]:
        """One invocation per combination of the mapped arguments' items."""
        return self._fan_out(args, kwargs, product=True)

    def with_options(
        self,
        *,
        settings: dict[str, Any] | None = None,
        enable_cache: bool | None = None,
        retry: StepRetryConfig | None = None,
        runtime: str | None = None,
        cache_key_fn: Callable[[dict[str, Any]], Any] | None = None,
        expire_after: timedelta | None = None,
        cache_policy: CachePolicy | None = None,
        max_concurrency: int | None = None,
        concurrency_limit: str | None = None,
    ) -> Step[P, R]:
        """A copy of this step with some options replaced (None keeps the step's own), each
        checked as `@step` checks it."""
        clone = copy.copy(self)
        clone._set_run_options(
            _first(enable_cache, self.enable_cache),
            _first(retry, self.retry),
            _first(runtime, self.runtime),
        )
        clone._set_cache_options(
            _first(cache_key_fn, self.cache_key_fn),
            _first(expire_after, self.expire_after),
            _first(cache_policy, self.cache_policy),
        )
        clone._set_concurrency(
            _first(max_concurrency, self.max_concurrency),
            _first(concurrency_limit, self.concurrency_limit),
        )
        if settings is not None:
            clone.resources = _resources_from(settings, self.name)
        return clone

    def _pop_reserved(self, kwargs: dict[str, Any]) -> tuple[str | None, Ordering]:
        # `id=`, `after=` and `start_after=` steer the invocation unless the function itself
        # takes them.
        params = self.signature.parameters
        invocation_id = kwargs.pop("id", None) if "id" not in params else None
        after = kwargs.pop("after", None) if "after" not in params else None
        start_after = kwargs.pop("start_after", None) if "start_after" not in params else None
        return invocation_id, Ordering(after, start_after)

    def _fan_out(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], product: bool
    ) -> MappedOutputs[R]:
        if current_run_context() is None:
            raise StepInvocationError(
                f"Step '{self.name}': .map()/.product() only work inside a pipeline."
            )
        invocation_id, ordering = self._pop_reserved(kwargs)
        if invocation_id is not None:  # it was dropped without a word
            raise StepInvocationError(
                f"Step '{self.name}': .map()/.product() take no id=: its calls are named "
                f"{self.name}, {self.name}_2, ... in order. Call the step in a loop with "
                "id= for ids of your own."
            )
        chunk_size = self._pop_chunk_size(kwargs, product)
        named = [(i, v) for i, v in enumerate(args)] + list(kwargs.items())
        mapped = [
            (key, _items(value, chunk_size, f"Step '{self.name}'"))
            for key, value in named
            if not isinstance(value, unmapped)
        ]
        if not mapped:
            raise StepInvocationError(
                f"Step '{self.name}': .map()/.product() needs at least one argument that is not "
                "unmapped()."
            )
        if product:
            combos = list(itertools.product(*(items for _, items in mapped)))
        else:
            lengths = {len(items) for _, items in mapped}
            if len(lengths) > 1:
                raise StepInvocationError(
                    f"Step '{self.name}': .map() arguments have different lengths "
                    f"{sorted(lengths)}; use .product() for combinations."
                )
            combos = list(zip(*(items for _, items in mapped)))
        calls = []
        for combo in combos:
            values = dict(zip((key for key, _ in mapped), combo))
            call_args = [
                values.get(i, v.value if isinstance(v, unmapped) else v) for i, v in enumerate(args)
            ]
            call_kwargs = {
                k: values.get(k, v.value if isinstance(v, unmapped) else v)
                for k, v in kwargs.items()
            }
            for keyword, value in zip(("after", "start_after"), ordering):
                if keyword not in self.signature.parameters:
                    call_kwargs[keyword] = value
            calls.append(self(*call_args, **call_kwargs))
        return MappedOutputs(calls, len(self.outputs))

    def _pop_chunk_size(self, kwargs: dict[str, Any], product: bool) -> int | None:
        if "chunk_size" in self.signature.parameters:
            return None  # the function's own argument
        chunk_size = kwargs.pop("chunk_size", None)
        if chunk_size is None:
            return None
        if product:
            raise StepInvocationError(
                f"Step '{self.name}': chunk_size= works with .map(), not .product()."
            )
        if type(chunk_size) is not int or chunk_size < 1:
            raise StepInvocationError(
                f"Step '{self.name}': chunk_size= must be a positive int, got {chunk_size!r}."
            )
        return chunk_size


def _first(given: Any, own: Any) -> Any:
    """An option given to `.with_options`, else the step's own. Not `given or own`: a falsy
    value given (0, "", timedelta(0)) must be checked, not silently replaced."""
    return own if given is None else given


def _input_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """The annotation of each parameter, resolved; one that does not resolve (a name
    imported only under TYPE_CHECKING) stays as written, the others resolved still."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - one annotation that does not resolve: each alone
        namespace = getattr(func, "__globals__", {})
        hints = {}
        for name, parameter in inspect.signature(func).parameters.items():
            hints[name] = parameter.annotation
            if isinstance(parameter.annotation, str):
                with contextlib.suppress(Exception):
                    hints[name] = eval(parameter.annotation, namespace)  # noqa: S307 - its own annotation
    hints.pop("return", None)
    return hints


def _items(value: Any, chunk_size: int | None, where: str) -> list[Any]:
    """The items (or chunks of `chunk_size` items) a mapped argument fans out over. A step
    output's stay references, counted from what was recorded when it was saved: the output
    is not loaded here. An item of an output, mapped in turn, is loaded (its items become
    values)."""
    if isinstance(value, StepOutput) and value._index is None:
        try:
            count = value._context.item_count(value)
        except TypeError as error:  # len() of a value with no items
            raise StepInvocationError(
                f"{where} maps over the output of '{value.invocation_id}', which has no items "
                f"to map over ({error}); map over a list, tuple, array or table."
            ) from None
        step = chunk_size or 1
        return [
            StepOutput(
                value._context,
                value.invocation_id,
                value.output_name,
                start,
                None if chunk_size is None else min(start + chunk_size, count),
                value._held,
            )
            for start in range(0, count, step)
        ]
    if isinstance(value, (str, bytes, Mapping, AbstractSet)) or not isinstance(value, Iterable):
        raise StepInvocationError(
            f"{where} cannot map over a {type(value).__name__} ({value!r:.40}): map over a list, "
            "tuple, array or table, or a step output holding one."
        )
    items = [_plain(item) for item in value]
    if chunk_size is None:
        return items
    return [items[start : start + chunk_size] for start in range(0, len(items), chunk_size)]


def _plain(item: Any) -> Any:
    """A numpy scalar (an item of an array, or of an array output's row mapped in turn) as
    the Python number, bool or str it holds: as a numpy scalar it had no recorded form, and
    mapping over an array's row failed as if the user had passed a literal."""
    if type(item).__module__ == "numpy" and getattr(item, "ndim", None) == 0:
        return item.item()
    return item


def _with_materializers(
    outputs: tuple[OutputSpec, ...], chosen: OutputMaterializers | None, step_name: str
) -> tuple[OutputSpec, ...]:
    if chosen is None:
        return outputs
    from branchwork.materializers.base import BaseMaterializer  # only for a step that picks one

    def is_materializer(value: Any) -> bool:
        return isinstance(value, type) and issubclass(value, BaseMaterializer)

    where = f"Step '{step_name}': output_materializers"
    if not isinstance(chosen, Mapping):
        # Checked now: a value that is not a materializer class fails only when an output is
        # saved, in the middle of a run.
        if not is_materializer(chosen):
            raise ConfigurationError(
                f"{where} must be a BaseMaterializer subclass, or a dict of output names to "
                f"BaseMaterializer subclasses, got {chosen!r}"
            )
        chosen = {spec.name: chosen for spec in outputs}
    unknown = set(chosen) - {spec.name for spec in outputs}
    if unknown:
        raise ConfigurationError(f"{where} names unknown outputs {sorted(unknown)}")
    for name, materializer in chosen.items():
        if not is_materializer(materializer):
            raise ConfigurationError(
                f"{where}[{name!r}] must be a BaseMaterializer subclass, got {materializer!r}"
            )
    return tuple(dataclasses.replace(spec, materializer=chosen.get(spec.name)) for spec in outputs)


@overload
def step(func: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
    enable_cache: bool | None = None,
    retry: StepRetryConfig | None = None,
    output_materializers: OutputMaterializers | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    runtime: str | None = None,
    cache_key_fn: Callable[[dict[str, Any]], Any] | None = None,
    expire_after: timedelta | None = None,
    cache_policy: CachePolicy | None = None,
    max_concurrency: int | None = None,
    concurrency_limit: str | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(func: Any = None, /, **options: Any) -> Any:
    """Turn a function into a step: `@step` or `@step(settings=..., enable_cache=...)`."""
    if func is not None:
        return Step(func, **options)
    return lambda f: Step(f, **options)
