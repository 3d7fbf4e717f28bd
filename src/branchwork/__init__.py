"""branchwork: dynamic ML and data pipelines in plain Python.

The public surface is this module's `__all__`; everything else is reached through the
documented subpackages (`branchwork.config`, `branchwork.orchestrators`, ...). Each name is
imported on first use, so that `import branchwork` (and with it every `branchwork.*` module,
such as the CLI's) loads nothing it does not need: `Client` brings SQLAlchemy, `step` and
`pipeline` the graph and runtime modules.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from branchwork.client import Client
    from branchwork.graph.external import ExternalArtifact
    from branchwork.graph.file_input import FileInput
    from branchwork.graph.questions import wait
    from branchwork.pipelines.pipeline import pipeline
    from branchwork.runtime.hooks import PipelineHookContext
    from branchwork.steps.command import command_step
    from branchwork.steps.context import get_step_context, log_artifact_metadata, log_metadata
    from branchwork.steps.outputs import ArtifactConfig
    from branchwork.steps.step import step, unmapped

__version__ = "0.1.0"

# Each public name and the module it is imported from when first used.
_MODULES = {
    "ArtifactConfig": "branchwork.steps.outputs",
    "Client": "branchwork.client",
    "ExternalArtifact": "branchwork.graph.external",
    "FileInput": "branchwork.graph.file_input",
    "PipelineHookContext": "branchwork.runtime.hooks",
    "command_step": "branchwork.steps.command",
    "get_step_context": "branchwork.steps.context",
    "log_artifact_metadata": "branchwork.steps.context",
    "log_metadata": "branchwork.steps.context",
    "pipeline": "branchwork.pipelines.pipeline",
    "step": "branchwork.steps.step",
    "unmapped": "branchwork.steps.step",
    "wait": "branchwork.graph.questions",
}

__all__ = [
    "ArtifactConfig",
    "Client",
    "ExternalArtifact",
    "FileInput",
    "PipelineHookContext",
    "__version__",
    "command_step",
    "get_step_context",
    "log_artifact_metadata",
    "log_metadata",
    "pipeline",
    "step",
    "unmapped",
    "wait",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module 'branchwork' has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
