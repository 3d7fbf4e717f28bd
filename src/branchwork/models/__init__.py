"""What users get back about pipelines, runs, steps and artifacts: plain read-only records."""

from branchwork.models.responses import (
    ArtifactVersionResponse,
    CacheDecision,
    ExecutionStatus,
    PipelineRunResponse,
    PipelineSnapshotResponse,
    StepConfigurationResponse,
    StepRunResponse,
)
from branchwork.models.waits import WaitResponse

__all__ = [
    "ArtifactVersionResponse",
    "CacheDecision",
    "ExecutionStatus",
    "PipelineRunResponse",
    "PipelineSnapshotResponse",
    "StepConfigurationResponse",
    "StepRunResponse",
    "WaitResponse",
]
