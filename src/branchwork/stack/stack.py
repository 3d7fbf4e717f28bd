"""A stack is where a pipeline runs (orchestrator) and where its artifacts go.

The active stack is ambient state, so it lives in a ContextVar: `with active_stack(s):`
scopes it to a block (and to one thread's context), with the local default otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from branchwork.artifact_stores import BaseArtifactStore, LocalArtifactStore
from branchwork.config.home import artifacts_dir
from branchwork.orchestrators.base import BaseOrchestrator


@dataclass
class Stack:
    name: str
    orchestrator: BaseOrchestrator
    artifact_store: BaseArtifactStore


_active: ContextVar[Stack | None] = ContextVar("branchwork_active_stack", default=None)


def default_stack() -> Stack:
    from branchwork.orchestrators.local import LocalOrchestrator

    return Stack("default", LocalOrchestrator(), LocalArtifactStore(artifacts_dir()))


def get_active_stack() -> Stack:
    return _active.get() or default_stack()


@contextmanager
def active_stack(stack: Stack) -> Iterator[Stack]:
    token = _active.set(stack)
    try:
        yield stack
    finally:
        _active.reset(token)
