"""The local orchestrator passes the orchestrator conformance suite, twice.

`TestLocalConformance` is the plain local orchestrator. `TestLocalReimportConformance` runs
the same suite, still in this process, but makes the orchestration loop re-import each
pipeline from its recorded source and lose the live exception, as an isolated
orchestrator's process does. So the suite's pipelines are proven re-importable, and bugs of
that path show up here in a few seconds rather than only in subprocess tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from branchwork.orchestrators import BaseOrchestrator, LocalOrchestrator, SubmissionResult
from branchwork.runtime.runner import reset_live_submission, set_live_submission
from branchwork.testing import OrchestratorConformance

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.stack import Stack


class TestLocalConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return LocalOrchestrator()


class ReimportingLocalOrchestrator(LocalOrchestrator):
    """Local, but the loop finds the pipeline by its source, not the live object."""

    def submit_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        token = set_live_submission(None)
        try:
            return super().submit_pipeline(snapshot, stack, environment, placeholder_run)
        finally:
            reset_live_submission(token)

    def submit_dynamic_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        token = set_live_submission(None)
        try:
            return super().submit_dynamic_pipeline(snapshot, stack, environment, placeholder_run)
        finally:
            reset_live_submission(token)


class TestLocalReimportConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return ReimportingLocalOrchestrator()
