"""A stack is where a pipeline runs (orchestrator) and where its artifacts go. It describes
itself as JSON so an orchestration process can rebuild it. Which one is active:
`stack.active`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from branchwork.artifact_stores import (
    BaseArtifactStore,
    LocalArtifactStore,
    artifact_store_from_spec,
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
                "artifact_store": self.artifact_store.spec(),
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
            artifact_store_from_spec(data["artifact_store"]),
        )


def default_stack() -> Stack:
    """The built-in stack: the local orchestrator, artifacts under the branchwork home."""
    from branchwork.orchestrators.local import LocalOrchestrator

    return Stack("default", LocalOrchestrator(), LocalArtifactStore(artifacts_dir()))
