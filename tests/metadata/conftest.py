"""A fresh store on each database branchwork supports, for tests that must hold on both."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path, monkeypatch) -> str:
    """The URL of a new, empty store (SQLite, then PostgreSQL); BRANCHWORK_STORE_URL names
    it, so runs, the CLI and `get_engine()` use it."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"store_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("BRANCHWORK_STORE_URL", url)
    return url
