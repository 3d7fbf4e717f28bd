"""Which stack is active: the one of a `with active_stack(...)` block (a ContextVar, so it
scopes to a block and to one thread's context), else the one set active in the store's
registry (`branchwork stack set NAME`; the built-in default until then)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from branchwork.stack.stack import Stack

_active: ContextVar[Stack | None] = ContextVar("branchwork_active_stack", default=None)


def get_active_stack() -> Stack:
    """The active stack; see the module docstring."""
    scoped = _active.get()
    if scoped is not None:
        return scoped
    from branchwork.stack.stacks import stored_active_stack  # loads SQLAlchemy

    return stored_active_stack()


@contextmanager
def active_stack(stack: Stack) -> Iterator[Stack]:
    token = _active.set(stack)
    try:
        yield stack
    finally:
        _active.reset(token)
