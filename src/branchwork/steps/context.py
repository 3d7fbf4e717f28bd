"""What a running step can ask about itself: `get_step_context()`.

Held in a ContextVar so that steps running side by side in threads each see their own.
"""

from __future__ import annotations

from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from branchwork.exceptions import BranchworkError


@dataclass
class StepContext:
    """The run, invocation and attempt of the step that is running, its outputs, the
    metadata logged for the step run and for its outputs' artifact versions, and what the
    attempt holds until its outputs are stored (`resources`, closed after the attempt: a
    command step's working directory)."""

    run_id: str
    run_name: str
    pipeline_name: str
    invocation_id: str
    step_name: str
    step_run_id: str
    attempt: int
    metadata: dict[str, Any] = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    artifact_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # by output
    resources: ExitStack = field(default_factory=ExitStack)


_current: ContextVar[StepContext | None] = ContextVar("branchwork_step_context", default=None)


def get_step_context() -> StepContext:
    """The context of the step being run; an error outside a running step."""
    return _context_for("get_step_context")


def _context_for(function: str) -> StepContext:
    context = _current.get()
    if context is None:
        raise BranchworkError(
            f"{function}() was called outside a running step; call it from inside a "
            "@step function while a pipeline runs it."
        )
    return context


def in_a_step() -> bool:
    """Whether a step is being run here (in this thread or task)."""
    return _current.get() is not None


def set_step_context(context: StepContext | None) -> Any:
    return _current.set(context)


def reset_step_context(token: Any) -> None:
    _current.reset(token)


def log_metadata(metadata: dict[str, Any]) -> None:
    """Attach JSON-serializable metadata to the running step's record (shown by `runs show`).
    In a step called as a plain function (a unit test), it is checked and dropped."""
    context = _current.get()
    _check_json(_where("log_metadata", context), metadata)
    if context is not None:
        context.metadata.update(metadata)


MAX_KEY_LENGTH = 255  # the store's column for artifact metadata keys


def log_artifact_metadata(metadata: dict[str, Any], output: str | None = None) -> None:
    """Attach JSON-serializable metadata to the artifact version the running step makes of
    `output` (it may be left out when the step has one output). Stored with the version when
    the step succeeds, searchable with `Client().list_artifact_versions(metadata=...)`;
    logging a key again replaces its value. In a step called as a plain function (a unit
    test), it is checked and dropped."""
    context = _current.get()
    where = _where("log_artifact_metadata", context)
    _check_json(where, metadata)
    for key in metadata:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise BranchworkError(
                f"{where}: the key {key!r} is not a string of 1 to {MAX_KEY_LENGTH} characters."
            )
    if context is not None:
        name = _output_of(context, output, where)
        context.artifact_metadata.setdefault(name, {}).update(metadata)


def _where(function: str, context: StepContext | None) -> str:
    """Where a logging call was made, for its errors."""
    if context is None:
        return f"{function} outside a running step"
    return f"{function} in step '{context.invocation_id}'"


def _output_of(context: StepContext, output: str | None, where: str) -> str:
    """The output `output` names (the only one when None), or an error listing them."""
    names = context.outputs
    if output is None and len(names) == 1:
        return names[0]
    if output is not None and output in names:
        return output
    listed = ", ".join(repr(name) for name in names)
    if not names:
        raise BranchworkError(f"{where}: the step has no outputs to attach metadata to.")
    if output is None:
        raise BranchworkError(
            f"{where}: the step has {len(names)} outputs ({listed}); name one with output=."
        )
    raise BranchworkError(f"{where}: the step has no output {output!r}; its outputs: {listed}.")


def _check_json(where: str, metadata: dict[str, Any]) -> None:
    import json

    if not isinstance(metadata, dict):
        raise BranchworkError(f"{where}: metadata must be a dict, got {type(metadata).__name__}.")
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise BranchworkError(
                f"{where}: the value of {key!r} ({type(value).__name__}) is not JSON-serializable."
            ) from None
