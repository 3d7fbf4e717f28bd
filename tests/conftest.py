"""Every test runs against a fresh branchwork home (store + artifacts) in a temporary folder."""

from __future__ import annotations

import pytest

from branchwork.metadata.store import dispose_engines


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
