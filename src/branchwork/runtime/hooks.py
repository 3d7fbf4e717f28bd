"""Running user hooks: `on_success` / `on_failure` of steps, and the run-level hooks of
pipelines, `on_start` / `on_success` / `on_failure` / `on_end`.

A hook is called with as many of the arguments offered to it as it takes, in order: a
step's hooks are offered the exception (None on success); a pipeline's `on_failure` the
exception and the run's `PipelineHookContext`, its other hooks the context. So
`def alert(error): ...` serves as the on_failure of a step or of a pipeline, and a hook that
takes nothing is called bare.

A pipeline's hooks run once per session of a run, in the process that hosts its loop (the
caller on `local`, the orchestration process on `local_process`, the driver or the cluster
on Ray): `on_start` once the run is recorded running, before any step starts; then, when it
ends, `on_success` (completed) or `on_failure` (failed or stopped), then `on_end` (always).
A resume is a new session of the run: `on_start` is called again, with `resumed=True`, and
the run's end calls the end hooks again.

A hook's own error: `on_start`'s fails the run before any step runs (`PipelineHookError`,
the hook's exception as its cause), and `on_failure` and `on_end` are still called. The
end hooks' errors never change the outcome they report on: each is logged as a warning and
recorded with the run (`PipelineRunResponse.hook_errors`: those of its latest session). A
step hook's error is logged, and changes nothing either.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import PipelineHookError
from branchwork.metadata.error_records import text_of, traceback_of
from branchwork.user_code import recorded_module

if TYPE_CHECKING:
    from branchwork.pipelines.pipeline import Pipeline

logger = logging.getLogger("branchwork")

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def call_hook(hook: Callable[..., Any] | None, error: BaseException | None, where: str) -> None:
    """A step's hook, offered the step's exception (None on success); its error is logged,
    a `sys.exit()` in it too (it replaced the step's own exception as the step's error)."""
    if hook is None:
        return
    try:
        hook(*_arguments_for(hook, (error,)))
    except (Exception, SystemExit):
        logger.exception("Hook %s (%s) raised; ignored", _hook_name(hook), where)


def _arguments_for(hook: Callable[..., Any], offered: tuple[Any, ...]) -> tuple[Any, ...]:
    """The leading arguments of `offered` that `hook` takes positionally."""
    try:
        parameters = list(inspect.signature(hook).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin): the first, if any
        return tuple(argument for argument in offered[:1] if argument is not None)
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
        return offered
    return offered[: sum(p.kind in _POSITIONAL for p in parameters)]


def _hook_name(hook: Callable[..., Any]) -> str:
    """How messages and records name a hook: "module:qualname"."""
    module = recorded_module(getattr(hook, "__module__", None) or "?")
    return f"{module}:{getattr(hook, '__qualname__', repr(hook))}"


@dataclass(frozen=True)
class PipelineHookContext:
    """What a pipeline's hook is told about the run: which hook it is called as, the run,
    its parameters, its status ("running" in on_start; "completed", "failed" or "stopped"
    after), the exception that failed or stopped it, and whether this session resumes it."""

    hook: str
    run_id: str
    run_name: str
    pipeline_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    status: str = "running"
    error: BaseException | None = None
    resumed: bool = False


class PipelineHooks:
    """The hooks of one session of a run (see the module docstring); `errors` keeps what
    each hook that raised is recorded as."""

    def __init__(self, pipeline: Pipeline[Any, Any], context: PipelineHookContext) -> None:
        self.pipeline = pipeline
        self.context = context
        self.errors: list[dict[str, str]] = []

    def start(self) -> None:
        """Call on_start; PipelineHookError if it raises."""
        hook = self.pipeline.on_start
        if hook is None:
            return
        try:
            hook(*_arguments_for(hook, (replace(self.context, hook="on_start"),)))
        except (Exception, SystemExit) as error:  # sys.exit() too: it left the run running
            self._record("on_start", hook, error)
            failure = PipelineHookError(
                f"Pipeline '{self.pipeline.name}' run '{self.context.run_name}': its on_start "
                f"hook {_hook_name(hook)} raised {type(error).__name__}: {text_of(error)}. "
                "No step ran; fix the hook, then resume the run (branchwork runs resume "
                f"{self.context.run_name})."
            )
            raise failure from error

    def end(self, status: str, error: BaseException | None) -> None:
        """Call on_success (completed) or on_failure (failed, stopped), then on_end, also
        after a Ctrl-C in the first; an error of theirs is logged and kept in `errors`,
        never raised."""
        context = replace(self.context, status=status, error=error)
        try:
            if status == "completed":
                self._report("on_success", context)
            else:
                self._report("on_failure", context, error)
        finally:
            self._report("on_end", context)

    def _report(self, event: str, context: PipelineHookContext, *leading: Any) -> None:
        hook = getattr(self.pipeline, event)
        if hook is None:
            return
        try:
            hook(*_arguments_for(hook, (*leading, replace(context, hook=event))))
        except (Exception, SystemExit) as error:
            self._record(event, hook, error)
            logger.warning(
                "Pipeline '%s' run '%s': its %s hook %s raised %s: %s; the run stays %s.",
                self.pipeline.name,
                context.run_name,
                event,
                _hook_name(hook),
                type(error).__name__,
                error,
                context.status,
                exc_info=error,
            )

    def _record(self, event: str, hook: Callable[..., Any], error: BaseException) -> None:
        self.errors.append(
            {
                "hook": event,
                "function": _hook_name(hook),
                "exception_type": type(error).__name__,
                "message": text_of(error),
                "traceback": traceback_of(error),
            }
        )
