"""The `@pipeline` decorator and the `Pipeline` it produces.

Calling a pipeline runs it on the active stack and returns what its function returned, with
step outputs loaded. Whether it is static or dynamic is found by tracing (see
`graph.tracing`) unless `dynamic=` says so.
"""

from __future__ import annotations

import copy
import functools
import inspect
import types
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast, overload

from branchwork.config.checks import check_flag, check_hook, check_name
from branchwork.config.concurrency import check_limits
from branchwork.config.retry import StepRetryConfig, check_retry
from branchwork.config.run_config import StepOptions, load_run_config
from branchwork.exceptions import ConfigurationError
from branchwork.graph.context import current_run_context
from branchwork.graph.futures import StepOutput
from branchwork.pipelines.last_runs import last_run_id
from branchwork.pipelines.parameters import validate_parameters
from branchwork.runtime.events import FailureMode
from branchwork.user_code import recorded_module
from branchwork.values import leaves_of

if TYPE_CHECKING:
    from branchwork.graph.context import RunContext
    from branchwork.models import PipelineRunResponse

P = ParamSpec("P")
R = TypeVar("R")


class Pipeline(Generic[P, R]):
    """A pipeline definition: its function plus run options."""

    __test__ = False  # a pipeline/step named test_* is not a pytest test

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        dynamic: bool | None = None,
        enable_cache: bool | None = None,
        failure_mode: FailureMode | str | None = None,
        on_start: Callable[..., Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        on_failure: Callable[..., Any] | None = None,
        on_end: Callable[..., Any] | None = None,
        retry: StepRetryConfig | None = None,
        concurrency_limits: Mapping[str, int] | None = None,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"@pipeline needs a function, got {func!r}")
        if isinstance(func, Pipeline):  # its calls would be the inner pipeline's runs
            raise ConfigurationError(
                f"@pipeline of '{func.name}': it is a pipeline already; change its options "
                f"with {func.name}.with_options(...), or make another pipeline of its "
                f"function with pipeline(...)({func.name}.func)"
            )
        self.func = func
        self.name: str = check_name(name, func, "@pipeline")
        if inspect.iscoroutinefunction(func):  # its body would be a coroutine nobody awaits
            raise ConfigurationError(
                f"@pipeline of '{self.name}': a pipeline's body is a plain function (its steps "
                "may be async def); it is called, not awaited. Make it a def."
            )
        self.signature = inspect.signature(func)
        self.dynamic = check_flag(dynamic, f"Pipeline '{self.name}': dynamic")
        self.enable_cache = check_flag(enable_cache, f"Pipeline '{self.name}': enable_cache")
        # Run-level hooks, called where the run's loop runs: see `runtime.hooks`.
        self.on_start = self._hook("on_start", on_start)
        self.on_success = self._hook("on_success", on_success)
        self.on_failure = self._hook("on_failure", on_failure)
        self.on_end = self._hook("on_end", on_end)
        # For every step that has no retry of its own.
        self.retry = check_retry(retry, f"Pipeline '{self.name}': retry")
        # Sizes of the named limits its steps count against (`config.concurrency`).
        self.concurrency_limits = check_limits(
            concurrency_limits or {}, f"Pipeline '{self.name}': concurrency_limits"
        )
        self.config_parameters: dict[str, Any] = {}  # from a run configuration file
        self.step_options: dict[str, StepOptions] = {}
        # Recompute despite the cache, replacing the cached results: all steps, or these.
        self.refresh: bool | tuple[str, ...] = False
        self.failure_mode = self._failure_mode(failure_mode) if failure_mode else None
        functools.update_wrapper(self, func)

    def _hook(self, option: str, hook: Callable[..., Any] | None) -> Callable[..., Any] | None:
        return check_hook(hook, f"Pipeline '{self.name}': {option}")

    def _failure_mode(self, failure_mode: FailureMode | str) -> FailureMode:
        """Checked for `@pipeline` and `.with_options` alike."""
        try:
            return FailureMode(failure_mode)
        except ValueError:
            modes = ", ".join(mode.value for mode in FailureMode)
            raise ConfigurationError(
                f"Pipeline '{self.name}': failure_mode must be one of {modes}, got {failure_mode!r}"
            ) from None

    @property
    def source(self) -> str:
        """Import path of the pipeline, "module:qualname"."""
        return f"{recorded_module(self.func.__module__)}:{self.func.__qualname__}"

    def parameters_from_record(
        self, recorded: Mapping[str, Any], typed: tuple[str, ...]
    ) -> dict[str, Any]:
        """A run's recorded (JSON) parameters as the function takes them: those `typed`
        (written through their annotation) read through it again, a Path recorded as its text
        a Path (see `pipelines.parameters`)."""
        from branchwork.pipelines.parameters import read_back

        return read_back(self.func, dict(recorded), typed)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the pipeline and return what its function returned, step outputs loaded.
        Inside a running pipeline: run it as a child run and return the future of its value,
        once it has finished (see `pipelines.nesting`)."""
        from branchwork.pipelines.submit import run_pipeline

        if current_run_context() is not None:
            future = self.submit(*args, **kwargs)
            future.wait()
            return cast(R, future)
        return cast(R, run_pipeline(self, args, kwargs))

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        """Inside a running pipeline: start the pipeline as a child run and return the future
        of its value at once, so that several run side by side. Takes `id=` and `after=` as a
        step call does."""
        from branchwork.pipelines.nesting import child_step

        self._inside_a_run("submit")
        return child_step(self)(*args, **kwargs)

    def embed(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Inside a running pipeline: run the pipeline's body in that run, its steps being
        the run's own with ids prefixed "<name>."; returns what the body returns (futures)."""
        context = self._inside_a_run("embed")
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise ConfigurationError(
                f"Pipeline '{self.name}' cannot be embedded this way: {error}. Its signature "
                f"is {self.name}{self.signature}."
            ) from None
        # Checked and converted as a call's are (`dry_run="false"` was a truthy str here and
        # False there); a step's output stands for a value known later, and goes in as it is.
        given = {
            name: value
            for name, value in bound.arguments.items()
            if next(leaves_of(value, StepOutput), None) is None
        }
        bound.arguments.update(validate_parameters(self.name, self.func, given))
        with context.calls.embedded(self.name):
            return self.func(*bound.args, **bound.kwargs)

    def _inside_a_run(self, method: str) -> RunContext:
        context = current_run_context()
        if context is None:
            raise ConfigurationError(
                f"Pipeline '{self.name}': .{method}() works inside a running pipeline only; "
                f"call {self.name}(...) to run it."
            )
        return context

    def with_options(
        self,
        *,
        enable_cache: bool | None = None,
        dynamic: bool | None = None,
        failure_mode: FailureMode | str | None = None,
        config_path: str | None = None,
        refresh: bool | Iterable[str] | None = None,
        concurrency_limits: Mapping[str, int] | None = None,
    ) -> Pipeline[P, R]:
        """A copy of this pipeline with some options replaced; `config_path` reads them (and
        parameters and per-step settings) from a YAML run configuration, arguments winning.
        `refresh=True` recomputes every step despite the cache (a list: the steps of those
        names), the new results replacing the cached ones."""
        clone = copy.copy(self)
        if config_path is not None:
            config = load_run_config(config_path)
            self._check_step_names(config.steps, lambda name: f"{config_path}: steps.{name}")
            clone.config_parameters = {**self.config_parameters, **config.parameters}
            clone.step_options = {**self.step_options, **config.steps}
            clone.enable_cache = _first(config.enable_cache, clone.enable_cache)
            clone.retry = config.retry or clone.retry
            if config.failure_mode is not None:
                clone.failure_mode = FailureMode(config.failure_mode)
            clone.concurrency_limits = {**clone.concurrency_limits, **config.concurrency_limits}
        if enable_cache is not None:
            clone.enable_cache = check_flag(enable_cache, f"Pipeline '{self.name}': enable_cache")
        if dynamic is not None:
            clone.dynamic = check_flag(dynamic, f"Pipeline '{self.name}': dynamic")
        if failure_mode is not None:
            clone.failure_mode = self._failure_mode(failure_mode)
        if refresh is not None:
            clone.refresh = refresh if isinstance(refresh, bool) else self._steps_named(refresh)
        if concurrency_limits is not None:
            where = f"Pipeline '{self.name}': concurrency_limits"
            clone.concurrency_limits = {
                **clone.concurrency_limits,
                **check_limits(concurrency_limits, where),
            }
        return clone

    def under(
        self,
        enable_cache: bool,
        refresh: bool | tuple[str, ...],
        step_options: Mapping[str, StepOptions],
    ) -> Pipeline[P, R]:
        """This pipeline as the child run of a run with these options: its caching off
        (`--no-cache`), its refreshed steps (`--refresh`, `--refresh-step`) and its options per
        step (a run configuration's `steps:`) reach the child's steps they name (they were
        ignored there: a refreshed step of a child run was served from the cache)."""
        if enable_cache and not refresh and not step_options:
            return self  # (most calls: nothing to pass on, no walk of the module's steps)
        clone = copy.copy(self)
        if not enable_cache:
            clone.enable_cache = False
        own = _reachable_steps(self, set())
        if refresh is True:
            clone.refresh = True
        elif refresh and clone.refresh is not True:
            named = [name for name in refresh if name in own]
            clone.refresh = tuple(dict.fromkeys([*(clone.refresh or ()), *named]))
        clone.step_options = {
            **clone.step_options,
            **{name: options for name, options in step_options.items() if name in own},
        }
        return clone

    def _steps_named(self, names: Any) -> tuple[str, ...]:
        if isinstance(names, str):
            names = [names]
        elif isinstance(names, Iterable):
            names = list(names)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ConfigurationError(
                f"Pipeline '{self.name}': refresh takes True, False, a step name or a list of "
                f"step names, got {names!r}"
            )
        self._check_step_names(names, lambda name: f"refresh: step '{name}'")
        return tuple(names)

    def _check_step_names(self, names: Iterable[str], where: Callable[[str], str]) -> None:
        """Named steps must be steps this pipeline can reach (a typo is an error)."""
        known = _reachable_steps(self, set())
        for name in names:
            if name not in known:
                raise ConfigurationError(
                    f"{where(name)}: pipeline '{self.name}' uses no step named '{name}' (the "
                    f"steps it can reach: {', '.join(sorted(known)) or 'none'})"
                )

    @property
    def last_run(self) -> PipelineRunResponse:
        """The run that the last call of this pipeline (or resume of one of its runs) in
        this thread started: never another process's or thread's newer run."""
        from branchwork.metadata.queries import get_run
        from branchwork.metadata.store import get_engine

        run_id = last_run_id(self.name)
        if run_id is None:
            raise ConfigurationError(
                f"Pipeline '{self.name}' has not been run in this thread yet; "
                f"Client().list_pipeline_runs(pipeline={self.name!r}) lists all its runs."
            )
        return get_run(get_engine(), run_id)


def _reachable_steps(pipeline: Pipeline[Any, Any], seen: set[int]) -> set[str]:
    """The names of the steps a pipeline's module holds: as globals, in the modules it
    imports (`mysteps.train`), in its lists, tuples and dicts (`MODELS = {"a": train_a}`),
    and those of the pipelines it holds (a child pipeline's)."""
    from branchwork.steps.step import Step

    seen.add(id(pipeline))
    names: set[str] = set()
    for value in pipeline.func.__globals__.values():
        if isinstance(value, types.ModuleType):
            held = list(vars(value).values())
        elif isinstance(value, (list, tuple)):
            held = list(value)
        elif isinstance(value, dict):
            held = list(value.values())
        else:
            held = [value]
        for item in held:
            if isinstance(item, Step):
                names.add(item.name)
            elif isinstance(item, Pipeline) and id(item) not in seen:
                names |= _reachable_steps(item, seen)
    return names


@overload
def pipeline(func: Callable[P, R], /) -> Pipeline[P, R]: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    dynamic: bool | None = None,
    enable_cache: bool | None = None,
    failure_mode: FailureMode | str | None = None,
    on_start: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_end: Callable[..., Any] | None = None,
    retry: StepRetryConfig | None = None,
    concurrency_limits: Mapping[str, int] | None = None,
) -> Callable[[Callable[P, R]], Pipeline[P, R]]: ...


def pipeline(func: Any = None, /, **options: Any) -> Any:
    """Turn a function into a pipeline: `@pipeline` or `@pipeline(dynamic=True, ...)`."""
    if func is not None:
        return Pipeline(func, **options)
    return lambda f: Pipeline(f, **options)


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)
