"""The conformance suite on the local_process orchestrator: the loop in its own process,
steps with resources in processes of their own."""

from branchwork.orchestrators import BaseOrchestrator, LocalProcessOrchestrator
from branchwork.testing import OrchestratorConformance


class TestLocalProcessConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return LocalProcessOrchestrator()
