"""The two-node Ray cluster (tests/ray_cluster.py): one per test session, started on first
use; each module that uses it connects this process to it as a driver and disconnects.
And a team's stack on it: the cluster by address, the S3 store, PostgreSQL if installed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from branchwork.config.home import store_url
from branchwork.stack import Stack, active_stack
from postgres_server import server_binaries
from ray_cluster import NODE_B_RESOURCE, RayCluster, alive_nodes, driver_of, wait_for_nodes
from s3_server import SECRET_ENV


@pytest.fixture(scope="session")
def ray_cluster_processes(s3_server) -> Iterator[RayCluster]:
    """The cluster's processes, killed after the session's last test. Its nodes have the S3
    server's secret in their environment, as a team's nodes have their store's."""
    pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")
    with RayCluster({SECRET_ENV: s3_server.secret}) as cluster:
        cluster.start()
        yield cluster


@pytest.fixture(scope="module")
def ray_two_nodes(ray_cluster_processes: RayCluster) -> Iterator[RayCluster]:
    """This process connected to the two-node cluster for the module's tests (a connection
    to another cluster is closed first); the second node is started again if a previous
    test killed it."""
    from branchwork.orchestrators.ray_cluster import connect

    cluster = ray_cluster_processes
    with driver_of(cluster):
        connect(cluster.address, None, {"log_to_driver": False})
        if len(alive_nodes()) < 2:
            cluster.start_node_b()
        wait_for_nodes(2)
        yield cluster


@pytest.fixture
def node_ids(ray_two_nodes: RayCluster) -> dict[str, str]:
    """The id of each alive node: "head" and "node_b" (found by its custom resource); the
    second node is started again if a test before killed it."""
    if not ray_two_nodes.node_b_started():
        ray_two_nodes.start_node_b()
    nodes = wait_for_nodes(2)
    return {
        "node_b" if NODE_B_RESOURCE in node["Resources"] else "head": node["NodeID"]
        for node in nodes
    }


# ---- the team's stack -----------------------------------------------------------------------


@pytest.fixture
def team_store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The metadata store's URL: a fresh PostgreSQL database when PostgreSQL is installed,
    else the test home's SQLite file (the cluster tests still run, on one machine)."""
    if server_binaries() is not None:
        server = request.getfixturevalue("postgres_server")
        monkeypatch.setenv(
            "BRANCHWORK_STORE_URL", server.create_database(f"ray_{uuid.uuid4().hex[:12]}")
        )
    return store_url()


@pytest.fixture
def team_stack(ray_two_nodes: RayCluster, s3_store: Any, team_store_url: str) -> Iterator[Stack]:
    """The active stack a team uses: the cluster by its address, the S3 store."""
    from branchwork.orchestrators.ray import RayOrchestrator

    orchestrator = RayOrchestrator("team-ray", address=ray_two_nodes.address)
    with active_stack(Stack("team", orchestrator, s3_store)) as stack:
        yield stack
