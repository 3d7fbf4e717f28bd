"""The `@step` decorator and the `Step` definition it produces.

Outside a pipeline a step is its plain function, so it can be unit-tested directly. Inside
one, calling it records an invocation with the run context and returns future(s) at once.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import inspect
import itertools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from branchwork.config.resources import ResourceSettings
from branchwork.config.retry import StepRetryConfig
from branchwork.exceptions import ConfigurationError, StepInvocationError
from branchwork.graph.context import current_run_context
from branchwork.graph.futures import StepOutput
from branchwork.steps.outputs import OutputSpec, parse_outputs

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

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        settings: dict[str, Any] | None = None,
        enable_cache: bool | None = None,
        retry: StepRetryConfig | None = None,
        output_materializers: Any = None,
        on_failure: Callable[..., Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        runtime: str | None = None,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"@step needs a function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        self.signature = inspect.signature(func)
        self.resources = _resources_from(settings, self.name)
        if retry is not None and not isinstance(retry, StepRetryConfig):
            raise ConfigurationError(f"Step '{self.name}': retry must be a StepRetryConfig")
        if runtime not in _RUNTIMES:
            raise ConfigurationError(
                f"Step '{self.name}': runtime must be 'inline' or 'isolated', got {runtime!r}"
            )
        self.retry = retry
        self.enable_cache = enable_cache
        self.on_failure = on_failure
        self.on_success = on_success
        self.runtime = runtime
        self.outputs: tuple[OutputSpec, ...] = _with_materializers(
            parse_outputs(func, self.name), output_materializers, self.name
        )
        self._code_hash: str | None = None
        functools.update_wrapper(self, func)

    @property
    def source(self) -> str:
        """Import path of the step, "module:qualname"."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    @property
    def code_hash(self) -> str:
        """A hash of the function's source (its bytecode when no source is available)."""
        if self._code_hash is None:
            try:
                code = inspect.getsource(self.func).encode()
            except (OSError, TypeError):
                func_code = self.func.__code__
                code = func_code.co_code + repr(func_code.co_consts).encode()
            self._code_hash = hashlib.sha256(code).hexdigest()
        return self._code_hash

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        context = current_run_context()
        if context is None:
            return self.func(*args, **kwargs)
        invocation_id, after = self._pop_reserved(kwargs)
        return context.invoke(self, args, kwargs, invocation_id, after)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Same as calling the step: returns future(s) at once inside a pipeline."""
        return self(*args, **kwargs)

    def map(self, *args: Any, **kwargs: Any) -> list[Any]:
        """One invocation per item of the mapped arguments (zipped); `unmapped(x)` stays whole."""
        return self._fan_out(args, kwargs, product=False)

    def product(self, *args: Any, **kwargs: Any) -> list[Any]:
        """One invocation per combination of the mapped arguments' items."""
        return self._fan_out(args, kwargs, product=True)

    def with_options(
        self,
        *,
        settings: dict[str, Any] | None = None,
        enable_cache: bool | None = None,
        retry: StepRetryConfig | None = None,
        runtime: str | None = None,
    ) -> Step[P, R]:
        """A copy of this step with some options replaced."""
        clone = copy.copy(self)
        if settings is not None:
            clone.resources = _resources_from(settings, self.name)
        if enable_cache is not None:
            clone.enable_cache = enable_cache
        if retry is not None:
            clone.retry = retry
        if runtime is not None:
            clone.runtime = runtime
        return clone

    def _pop_reserved(self, kwargs: dict[str, Any]) -> tuple[str | None, Any]:
        # `id=` and `after=` steer the invocation unless the function itself takes them.
        params = self.signature.parameters
        invocation_id = kwargs.pop("id", None) if "id" not in params else None
        after = kwargs.pop("after", None) if "after" not in params else None
        return invocation_id, after

    def _fan_out(self, args: tuple[Any, ...], kwargs: dict[str, Any], product: bool) -> list[Any]:
        if current_run_context() is None:
            raise StepInvocationError(
                f"Step '{self.name}': .map()/.product() only work inside a pipeline."
            )
        _, after = self._pop_reserved(kwargs)
        named = [(i, v) for i, v in enumerate(args)] + list(kwargs.items())
        mapped = [(key, _items(value)) for key, value in named if not isinstance(value, unmapped)]
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
            if "after" not in self.signature.parameters:
                call_kwargs["after"] = after
            calls.append(self(*call_args, **call_kwargs))
        return calls


def _items(value: Any) -> list[Any]:
    """The items a mapped argument fans out over; a future's items stay references."""
    if isinstance(value, StepOutput):
        return [
            StepOutput(value._context, value.invocation_id, value.output_name, i)
            for i in range(len(value))
        ]
    return list(value)


def _with_materializers(
    outputs: tuple[OutputSpec, ...], chosen: Any, step_name: str
) -> tuple[OutputSpec, ...]:
    if chosen is None:
        return outputs
    if not isinstance(chosen, dict):
        chosen = {spec.name: chosen for spec in outputs}
    unknown = set(chosen) - {spec.name for spec in outputs}
    if unknown:
        raise ConfigurationError(
            f"Step '{step_name}': output_materializers names unknown outputs {sorted(unknown)}"
        )
    return tuple(OutputSpec(spec.name, spec.annotation, chosen.get(spec.name)) for spec in outputs)


@overload
def step(func: Callable[P, R], /) -> Step[P, R]: ...


@overload
def step(
    *,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
    enable_cache: bool | None = None,
    retry: StepRetryConfig | None = None,
    output_materializers: Any = None,
    on_failure: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    runtime: str | None = None,
) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(func: Any = None, /, **options: Any) -> Any:
    """Turn a function into a step: `@step` or `@step(settings=..., enable_cache=...)`."""
    if func is not None:
        return Step(func, **options)
    return lambda f: Step(f, **options)
