"""branchwork: dynamic ML and data pipelines in plain Python.

The public surface is this module's `__all__`; everything else is reached through the
documented subpackages (`branchwork.config`, `branchwork.orchestrators`, ...). `Client`
is imported on first use so that `import branchwork` does not load SQLAlchemy, and
`command_step` so that it does not load `subprocess` and `tempfile`.
"""

from typing import TYPE_CHECKING, Any

from branchwork.graph.external import ExternalArtifact
from branchwork.graph.file_input import FileInput
from branchwork.graph.questions import wait
from branchwork.pipelines.pipeline import pipeline
from branchwork.runtime.hooks import PipelineHookContext
from branchwork.steps.context import get_step_context, log_artifact_metadata, log_metadata
from branchwork.steps.outputs import ArtifactConfig
from branchwork.steps.step import step, unmapped

if TYPE_CHECKING:
    from branchwork.client import Client
    from branchwork.steps.command import command_step

__version__ = "0.1.0"

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
    if name == "Client":
        from branchwork.client import Client

        return Client
    if name == "command_step":
        from branchwork.steps.command import command_step

        return command_step
    raise AttributeError(f"module 'branchwork' has no attribute {name!r}")
