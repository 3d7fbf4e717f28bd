"""Round trips of values through a real artifact store: the local disk, and S3 (a real S3
server, see tests/s3_server.py), since a materializer only talks to the store's API."""

from __future__ import annotations

import json
import warnings
from typing import Any, NamedTuple

import pytest

from branchwork.artifact_stores import BaseArtifactStore, LocalArtifactStore
from branchwork.materializers import BaseMaterializer, load_artifact, materializer_for
from branchwork.materializers.io import save_artifact
from branchwork.materializers.registry import materializer_path


class RoundTrip(NamedTuple):
    uri: str
    materializer: type[BaseMaterializer]
    loaded: Any
    files: list[str]  # the artifact's files, '/'-separated, sorted
    preview: dict[str, Any]
    content_hash: str
    warnings: list[str]  # what saving warned


@pytest.fixture(params=["local", "s3"])
def artifact_store(request, tmp_path) -> BaseArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "artifacts")
    store: BaseArtifactStore = request.getfixturevalue("s3_store")
    return store


@pytest.fixture
def round_trip(artifact_store):
    """Save a value with the materializer the registry picks for it, and load it back (as
    `data_type`, by default the value's own type, as a run records it)."""

    def save_and_load(value: Any, data_type: Any = None) -> RoundTrip:
        cls = materializer_for(type(value), value)
        uri = artifact_store.new_artifact_uri("out")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            saved = save_artifact(value, uri, artifact_store, cls)
        loaded = load_artifact(
            uri, materializer_path(cls), data_type or type(value), store=artifact_store
        )
        return RoundTrip(
            uri,
            cls,
            loaded,
            sorted(artifact_store.walk_files(uri)),
            json.loads(saved.preview),
            saved.content_hash,
            [str(warning.message) for warning in caught],
        )

    return save_and_load
