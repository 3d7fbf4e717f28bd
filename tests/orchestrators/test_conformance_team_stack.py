"""The conformance suite on a team's stack: the local orchestrator recording into PostgreSQL
(an empty database per test) and writing artifacts to the S3 test server (a fresh prefix
per test, configured as a team registers it: endpoint, region, key id, secret variable)."""

from __future__ import annotations

import uuid

from branchwork.artifact_stores import BaseArtifactStore
from branchwork.artifact_stores.inline import INLINE_LIMIT, inline_uri
from branchwork.metadata.store import get_engine
from branchwork.orchestrators import BaseOrchestrator, LocalOrchestrator
from branchwork.testing import OrchestratorConformance, pipelines


class TestLocalPostgresS3Conformance(OrchestratorConformance):
    def make_orchestrator(self) -> BaseOrchestrator:
        return LocalOrchestrator()

    def make_store_url(self) -> str:
        server = self.request.getfixturevalue("postgres_server")
        return str(server.create_database(f"conformance_{uuid.uuid4().hex[:12]}"))

    def make_artifact_store(self) -> BaseArtifactStore:
        store: BaseArtifactStore = self.request.getfixturevalue("s3_store")
        return store

    def test_runs_are_recorded_in_postgresql_and_outputs_written_to_the_bucket(self) -> None:
        n = INLINE_LIMIT  # a list of n numbers is a file in the bucket; their sum is inline
        value, run = self.run(pipelines.summed_list, n=n)
        assert value == n * (n + 1) // 2
        assert get_engine().dialect.name == "postgresql"
        listed, summed = run.steps["emit_list"].output, run.steps["sum_values"].output
        bucket = self.stack.artifact_store
        assert listed.uri.startswith(bucket.root + "/") and bucket.listdir(listed.uri) != []
        assert listed.load() == list(range(1, n + 1))
        assert summed.uri == inline_uri(summed.content_hash) and summed.load() == value
