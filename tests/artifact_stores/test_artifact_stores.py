import uuid

import pytest

from branchwork.artifact_stores import (
    BaseArtifactStore,
    FsspecArtifactStore,
    LocalArtifactStore,
    artifact_store_for_uri,
)


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path) -> BaseArtifactStore:
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "root")
    if request.param == "s3":
        return request.getfixturevalue("s3_store")  # a real S3 server: conftest.py
    return FsspecArtifactStore(f"memory://bw-test-{uuid.uuid4().hex}")


def test_file_and_folder_operations(store):
    folder = store.join(store.root, "a", "b")
    store.makedirs(folder)
    store.makedirs(folder)  # exists already: no error
    store.write_bytes(store.join(folder, "x.bin"), b"\x00\x01")
    with store.open(store.join(folder, "y.txt"), "w") as file:
        file.write("hello")
    with store.open(store.join(folder, "y.txt"), "r") as file:
        assert file.read() == "hello"

    assert store.read_bytes(store.join(folder, "x.bin")) == b"\x00\x01"
    assert sorted(store.listdir(folder)) == ["x.bin", "y.txt"]
    assert store.isdir(folder) and not store.isdir(store.join(folder, "x.bin"))
    assert sorted(store.walk_files(store.join(store.root, "a"))) == ["b/x.bin", "b/y.txt"]

    store.rmtree(folder)
    assert not store.exists(folder)


def test_new_artifact_uri_is_unique_and_sanitized(store):
    first = store.new_artifact_uri("../train model/out:put")
    second = store.new_artifact_uri("../train model/out:put")
    assert first != second
    assert first.startswith(store.join(store.root, "train_model_out_put", ""))
    assert not store.exists(first)  # only named, not created
    assert store.new_artifact_uri("...").startswith(store.join(store.root, "artifact"))


def test_local_root_is_created_lazily(tmp_path):
    store = LocalArtifactStore(tmp_path / "later")
    assert store.root == str(tmp_path / "later")
    assert not (tmp_path / "later").exists()
    store.makedirs(store.new_artifact_uri("x"))
    assert (tmp_path / "later").is_dir()


def test_local_store_accepts_file_urls(tmp_path):
    store = LocalArtifactStore(f"file://{tmp_path}")
    assert store.root == str(tmp_path)
    store.write_bytes(f"file://{tmp_path}/f", b"1")
    assert store.read_bytes(str(tmp_path / "f")) == b"1"


def test_store_for_uri_picks_the_store_by_scheme(tmp_path):
    local = artifact_store_for_uri(str(tmp_path / "out" / "abc"))
    assert isinstance(local, LocalArtifactStore)
    assert local.root == str(tmp_path / "out")
    assert isinstance(artifact_store_for_uri(f"file://{tmp_path}/out/abc"), LocalArtifactStore)

    remote = artifact_store_for_uri("memory://bucket/out/abc")
    assert isinstance(remote, FsspecArtifactStore)
    assert remote.root == "memory://bucket/out"


def test_store_for_uri_reads_what_an_fsspec_store_wrote():
    store = FsspecArtifactStore(f"memory://bw-test-{uuid.uuid4().hex}")
    uri = store.new_artifact_uri("out")
    store.makedirs(uri)
    store.write_bytes(store.join(uri, "data.bin"), b"payload")

    reader = artifact_store_for_uri(uri)
    assert reader.read_bytes(reader.join(uri, "data.bin")) == b"payload"


def test_fsspec_join_handles_bare_and_slashed_roots():
    store = FsspecArtifactStore("memory://")
    assert store.join("memory://", "a", "b") == "memory://a/b"
    assert store.join("memory://x/", "/a/", "b") == "memory://x/a/b"
    assert store.join("memory://x") == "memory://x"
