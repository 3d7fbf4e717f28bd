"""The local orchestrator passes the orchestrator conformance suite, twice.

`TestLocalConformance` is the plain local orchestrator. `TestLocalReimportConformance` runs
the same suite, still in this process, but makes the orchestration loop re-import each
pipeline from its recorded source and lose the live exception, as an isolated
orchestrator's process does. So the suite's pipelines are proven re-importable, and bugs of
that path show up here in a few seconds rather than only in subprocess tests.
"""

from __future__ import annotations

from branchwork.orchestrators import BaseOrchestrator, LocalOrchestrator
from branchwork.testing import OrchestratorConformance


class TestLocalConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return LocalOrchestrator()


class ReimportingLocalOrchestrator(LocalOrchestrator):
    """Local, but handed its runs through the seed's `submit_*` API, as an orchestrator
    whose loop runs elsewhere is: the loop finds the pipeline by its source, not the live
    object, and the caller rebuilds a failed step's exception from the store."""

    @property
    def runs_loop_in_caller(self) -> bool:
        return False


class TestLocalReimportConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return ReimportingLocalOrchestrator()
