"""A stack is where a pipeline runs (orchestrator) and where its artifacts go.

The active stack is ambient state, so it lives in a ContextVar: `with active_stack(s):`
scopes it to a block (and to one thread's context), with the local default otherwise. A
stack describes itself as JSON so an orchestration process can rebuild it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from branchwork.artifact_stores import (
    BaseArtifactStore,
    LocalArtifactStore,
    artifact_store_for_root,
)
from branchwork.config.home import artifacts_dir
from branchwork.orchestrators.base import BaseOrchestrator

STACK_ENV = "BRANCHWORK_STACK"


@dataclass
class Stack:
    name: str
    orchestrator: BaseOrchestrator
    artifact_store: BaseArtifactStore

    def to_json(self) -> str:
        cls = type(self.orchestrator)
        return json.dumps(
            {
                "name": self.name,
                "orchestrator": {
                    "flavor": self.orchestrator.flavor,
                    "class": f"{cls.__module__}:{cls.__qualname__}",
                    "name": self.orchestrator.name,
                    "config": self.orchestrator.config,
                },
                "artifact_store": self.artifact_store.root,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Stack:
        from branchwork.orchestrators.flavors import orchestrator_from_config

        data: dict[str, Any] = json.loads(text)
        spec = data["orchestrator"]
        return cls(
            data["name"],
            orchestrator_from_config(spec, spec["name"], spec["config"]),
            artifact_store_for_root(data["artifact_store"]),
        )


_active: ContextVar[Stack | None] = ContextVar("branchwork_active_stack", default=None)


def default_stack() -> Stack:
    """The built-in stack: the local orchestrator, artifacts under the branchwork home."""
    from branchwork.orchestrators.local import LocalOrchestrator

    return Stack("default", LocalOrchestrator(), LocalArtifactStore(artifacts_dir()))


def get_active_stack() -> Stack:
    """The stack of a `with active_stack(...)` block; else the one set active in the store's
    stack registry (`branchwork stack set NAME`; the built-in default until then)."""
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
