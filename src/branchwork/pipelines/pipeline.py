"""The `@pipeline` decorator and the `Pipeline` it produces.

Calling a pipeline runs it on the active stack and returns what its function returned, with
step outputs loaded. Whether it is static or dynamic is found by tracing (see
`graph.tracing`) unless `dynamic=` says so.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from branchwork.config.retry import StepRetryConfig
from branchwork.exceptions import ConfigurationError
from branchwork.runtime.engine import FailureMode

if TYPE_CHECKING:
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
        on_failure: Callable[..., Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        retry: StepRetryConfig | None = None,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"@pipeline needs a function, got {func!r}")
        if dynamic not in (None, True, False):
            raise ConfigurationError(f"@pipeline(dynamic=...) takes True or False, got {dynamic!r}")
        self.func = func
        self.name = name or func.__name__
        self.signature = inspect.signature(func)
        self.dynamic = dynamic
        self.enable_cache = enable_cache
        self.on_failure = on_failure
        self.on_success = on_success
        if retry is not None and not isinstance(retry, StepRetryConfig):
            raise ConfigurationError(f"Pipeline '{self.name}': retry must be a StepRetryConfig")
        self.retry = retry  # for every step that has no retry of its own
        try:
            self.failure_mode = FailureMode(failure_mode) if failure_mode else None
        except ValueError:
            modes = ", ".join(mode.value for mode in FailureMode)
            raise ConfigurationError(
                f"Pipeline '{self.name}': failure_mode must be one of {modes}, got {failure_mode!r}"
            ) from None
        functools.update_wrapper(self, func)

    @property
    def source(self) -> str:
        """Import path of the pipeline, "module:qualname"."""
        return f"{self.func.__module__}:{self.func.__qualname__}"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from branchwork.pipelines.submit import run_pipeline

        return run_pipeline(self, args, kwargs)

    def with_options(
        self,
        *,
        enable_cache: bool | None = None,
        dynamic: bool | None = None,
        failure_mode: FailureMode | str | None = None,
    ) -> Pipeline[P, R]:
        """A copy of this pipeline with some options replaced."""
        clone = copy.copy(self)
        if enable_cache is not None:
            clone.enable_cache = enable_cache
        if dynamic is not None:
            clone.dynamic = dynamic
        if failure_mode is not None:
            clone.failure_mode = FailureMode(failure_mode)
        return clone

    @property
    def last_run(self) -> PipelineRunResponse:
        """The newest run of this pipeline in the store."""
        from branchwork.client import Client

        runs = Client().list_pipeline_runs(pipeline=self.name, limit=1)
        if not runs:
            raise ConfigurationError(f"Pipeline '{self.name}' has not been run yet.")
        return runs[0]


@overload
def pipeline(func: Callable[P, R], /) -> Pipeline[P, R]: ...


@overload
def pipeline(
    *,
    name: str | None = None,
    dynamic: bool | None = None,
    enable_cache: bool | None = None,
    failure_mode: FailureMode | str | None = None,
    on_failure: Callable[..., Any] | None = None,
    on_success: Callable[..., Any] | None = None,
    retry: StepRetryConfig | None = None,
) -> Callable[[Callable[P, R]], Pipeline[P, R]]: ...


def pipeline(func: Any = None, /, **options: Any) -> Any:
    """Turn a function into a pipeline: `@pipeline` or `@pipeline(dynamic=True, ...)`."""
    if func is not None:
        return Pipeline(func, **options)
    return lambda f: Pipeline(f, **options)
