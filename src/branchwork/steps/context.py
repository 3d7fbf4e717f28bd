"""What a running step can ask about itself: `get_step_context()`.

Held in a ContextVar so that steps running side by side in threads each see their own.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from branchwork.exceptions import BranchworkError


@dataclass
class StepContext:
    """The run, invocation and attempt of the step that is running, and its metadata."""

    run_id: str
    run_name: str
    pipeline_name: str
    invocation_id: str
    step_name: str
    step_run_id: str
    attempt: int
    metadata: dict[str, Any] = field(default_factory=dict)


_current: ContextVar[StepContext | None] = ContextVar("branchwork_step_context", default=None)


def get_step_context() -> StepContext:
    """The context of the step being run; an error outside a running step."""
    context = _current.get()
    if context is None:
        raise BranchworkError(
            "get_step_context() was called outside a running step; call it from inside a "
            "@step function while a pipeline runs it."
        )
    return context


def set_step_context(context: StepContext | None) -> Any:
    return _current.set(context)


def reset_step_context(token: Any) -> None:
    _current.reset(token)


def log_metadata(metadata: dict[str, Any]) -> None:
    """Attach JSON-serializable metadata to the running step's record (shown by `runs show`)."""
    import json

    context = get_step_context()
    for key, value in metadata.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise BranchworkError(
                f"log_metadata in step '{context.invocation_id}': the value of {key!r} is a "
                f"{type(value).__name__}, which is not JSON-serializable."
            ) from None
    context.metadata.update(metadata)
