"""The conformance suite on the Ray orchestrator, on a real local Ray cluster of 2 CPUs.

`TestRayConformance` hosts the orchestration loop in this process (`loop="driver"`), each
step a Ray task; `TestRayClusterLoopConformance` runs the loop itself as a Ray task
(`loop="cluster"`), so pipelines are re-imported there and errors cross a process.
"""

from __future__ import annotations

import pytest

from branchwork.orchestrators import BaseOrchestrator
from branchwork.testing import OrchestratorConformance

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")

from branchwork.orchestrators.ray import RayOrchestrator  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster(request: pytest.FixtureRequest) -> None:
    """A real local cluster of 2 CPUs, started once per test process (it takes ~10 s here)
    and shared by the Ray test modules; stopped when the session ends."""
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        request.config.add_cleanup(ray.shutdown)


class TestRayConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return RayOrchestrator()


class TestRayClusterLoopConformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return RayOrchestrator(loop="cluster")
