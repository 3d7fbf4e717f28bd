"""Every test runs against a fresh branchwork home (store + artifacts) in a temporary folder."""

from __future__ import annotations

import pytest

from branchwork.metadata.store import dispose_engines
from postgres_server import PostgresServer, server_binaries


@pytest.fixture(autouse=True)
def branchwork_home(tmp_path, monkeypatch):
    home = tmp_path / "branchwork-home"
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    monkeypatch.delenv("BRANCHWORK_STORE_URL", raising=False)
    yield home
    dispose_engines()


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
