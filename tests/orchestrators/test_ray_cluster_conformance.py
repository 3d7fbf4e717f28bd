"""The conformance suite on the Ray orchestrator over a real two-node cluster
(tests/ray_cluster.py), connected by address, with the S3 artifact store (a real SeaweedFS
server): every step's outputs are written on one node and read on whichever runs next."""

from __future__ import annotations

import pytest

from branchwork.artifact_stores import BaseArtifactStore
from branchwork.orchestrators import BaseOrchestrator
from branchwork.testing import OrchestratorConformance

pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")

from branchwork.orchestrators.ray import RayOrchestrator  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")


class TestRayTwoNodesS3Conformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        cluster = self.request.getfixturevalue("ray_two_nodes")
        return RayOrchestrator(address=cluster.address)

    def make_artifact_store(self) -> BaseArtifactStore:
        store: BaseArtifactStore = self.request.getfixturevalue("s3_store")
        return store
