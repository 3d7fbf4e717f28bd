import uuid
from pathlib import Path

import pytest

from branchwork.artifact_stores import FsspecArtifactStore, LocalArtifactStore
from branchwork.exceptions import ArtifactError
from branchwork.materializers import (
    BaseMaterializer,
    BuiltinMaterializer,
    CollectionMaterializer,
    load_artifact,
    materializer_for,
    save_artifact,
)
from branchwork.materializers.registry import materializer_path


class ExplodingMaterializer(BaseMaterializer):
    def save(self, data: object) -> None:
        raise RuntimeError("disk on fire")


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


def test_memory_store_round_trip_with_store_found_from_the_uri():
    store = FsspecArtifactStore(f"memory://bw-test-{uuid.uuid4().hex}")
    value = {"rows": [(1, "a"), (2, "b")], "ok": True}
    uri = store.new_artifact_uri("table")
    content_hash = save_artifact(value, uri, store, CollectionMaterializer).content_hash

    assert load_artifact(uri, materializer_path(CollectionMaterializer)) == value
    assert CollectionMaterializer(uri, store).content_hash() == content_hash


def test_local_store_round_trip_with_explicit_store(store):
    uri = store.new_artifact_uri("n")
    save_artifact(41, uri, store, BuiltinMaterializer)
    assert load_artifact(uri, materializer_path(BuiltinMaterializer), int, store) == 41


def test_materializer_failure_names_type_materializer_and_uri(store):
    uri = store.new_artifact_uri("x")
    with pytest.raises(ArtifactError) as caught:
        save_artifact({"a": 1}, uri, store, ExplodingMaterializer)
    message = str(caught.value)
    assert "dict" in message and uri in message and "disk on fire" in message
    assert f"{__name__}:ExplodingMaterializer" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_unpicklable_value_is_an_artifact_error(store):
    value = (x for x in range(3))  # generators cannot be pickled
    uri = store.new_artifact_uri("gen")
    with pytest.warns(UserWarning), pytest.raises(ArtifactError, match="generator"):
        save_artifact(value, uri, store, materializer_for(type(value), value))


@pytest.mark.parametrize("remove", ["folder", "file"])
def test_missing_artifact_is_an_artifact_error_naming_the_uri(store, remove):
    uri = store.new_artifact_uri("gone")
    save_artifact([1, 2], uri, store, CollectionMaterializer)
    if remove == "folder":
        store.rmtree(uri)
    else:
        (Path(uri) / "data.json").unlink()
    with pytest.raises(ArtifactError, match="missing from the artifact store") as caught:
        load_artifact(uri, materializer_path(CollectionMaterializer))
    assert uri in str(caught.value)
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    # every file it looked for: it named data.pkl alone, the last of them
    assert "No file data.json or data.tagged.json or data.pkl in the artifact folder" in str(
        caught.value
    )


def test_missing_artifact_in_memory_store():
    uri = f"memory://bw-test-{uuid.uuid4().hex}/out/nothing"
    with pytest.raises(ArtifactError, match="missing from the artifact store"):
        load_artifact(uri, materializer_path(BuiltinMaterializer))
