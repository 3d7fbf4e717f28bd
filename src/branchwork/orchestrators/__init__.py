"""Orchestrators: where the orchestration loop runs and how steps are launched."""

from branchwork.orchestrators.base import BaseOrchestrator, SubmissionResult
from branchwork.orchestrators.local import LocalOrchestrator

__all__ = ["BaseOrchestrator", "LocalOrchestrator", "SubmissionResult"]
