"""Orchestrators: where the orchestration loop runs and how steps are launched."""

from branchwork.orchestrators.base import BaseOrchestrator, SubmissionResult
from branchwork.orchestrators.containerized import ContainerizedOrchestrator
from branchwork.orchestrators.local import LocalOrchestrator
from branchwork.orchestrators.local_process import LocalProcessOrchestrator

__all__ = [
    "BaseOrchestrator",
    "ContainerizedOrchestrator",
    "LocalOrchestrator",
    "LocalProcessOrchestrator",
    "SubmissionResult",
]
