import subprocess
import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.exceptions import ArtifactError, ConfigurationError
from branchwork.materializers import (
    BaseMaterializer,
    BuiltinMaterializer,
    CloudpickleMaterializer,
    CollectionMaterializer,
    load_artifact,
    materializer_for,
    register_materializer,
    registry,
    save_artifact,
)
from branchwork.materializers.registry import load_materializer_class, materializer_path


class Document:
    def __init__(self, text: str) -> None:
        self.text = text


class Memo(Document):
    pass


class DocumentMaterializer(BaseMaterializer):
    """Writes two files, one of them without the helpers: the default hash must see both."""

    ASSOCIATED_TYPES = (Document,)

    def save(self, data: Document) -> None:
        self._write_bytes("text.txt", data.text.encode())
        with self.artifact_store.open(self.artifact_store.join(self.uri, "len.txt"), "w") as f:
            f.write(str(len(data.text)))

    def load(self, data_type: type) -> Document:
        return Document(self._read_bytes("text.txt").decode())


class Plugged:
    pass


class PluggedMaterializer(CloudpickleMaterializer):
    ASSOCIATED_TYPES = (Plugged,)


class PluginTarget:
    pass


class PluginDictMaterializer(CollectionMaterializer):
    ASSOCIATED_TYPES = (dict, PluginTarget)


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


@pytest.fixture
def fresh_registry(monkeypatch):
    """Registry state private to the test, with entry points not yet loaded."""
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_plugins", {})
    monkeypatch.setattr(registry, "_resolved", {})
    monkeypatch.setattr(registry, "_entry_points_loaded", False)


def fake_entry_points(monkeypatch, *values: str) -> list[str]:
    """Make importlib.metadata list `values` as materializer entry points; returns the calls."""
    calls: list[str] = []

    def entry_points(group: str) -> list[EntryPoint]:
        calls.append(group)
        return [EntryPoint(f"ep{i}", value, group) for i, value in enumerate(values)]

    monkeypatch.setattr("importlib.metadata.entry_points", entry_points)
    return calls


def test_annotation_wins_when_it_is_a_concrete_type():
    assert materializer_for(int, "a str") is BuiltinMaterializer
    assert materializer_for(list, (1,)) is CollectionMaterializer


@pytest.mark.parametrize(
    "annotation", [Any, None, object, list[int], dict[str, int], int | str, int | None]
)
def test_unconcrete_annotations_defer_to_the_value(annotation):
    assert materializer_for(annotation, {"a": 1}) is CollectionMaterializer
    assert materializer_for(annotation) is CloudpickleMaterializer


def test_annotation_without_materializer_defers_to_the_value():
    assert materializer_for(Plugged, 3) is BuiltinMaterializer


def test_registered_materializer_is_used_for_subclasses_and_hashed_by_default(
    store, fresh_registry
):
    register_materializer(DocumentMaterializer)
    assert materializer_for(Any, Memo("x")) is DocumentMaterializer

    uri = store.new_artifact_uri("doc")
    content_hash = save_artifact(Document("hello"), uri, store, DocumentMaterializer).content_hash
    assert sorted(store.listdir(uri)) == ["len.txt", "text.txt"]
    assert load_artifact(uri, materializer_path(DocumentMaterializer)).text == "hello"

    other = store.new_artifact_uri("doc")
    assert (
        save_artifact(Document("hello"), other, store, DocumentMaterializer).content_hash
        == content_hash
    )
    # The file written without the helpers is hashed too.
    store.write_bytes(store.join(other, "len.txt"), b"6")
    assert DocumentMaterializer(other, store).content_hash() != content_hash


def test_registration_wins_over_builtins(fresh_registry):
    register_materializer(DocumentMaterializer, int)
    assert materializer_for(int, 1) is DocumentMaterializer
    assert materializer_for(bool, True) is BuiltinMaterializer  # bool has its own built-in


def test_bad_registrations_are_refused(fresh_registry):
    with pytest.raises(ConfigurationError, match="BaseMaterializer subclass"):
        register_materializer(dict, int)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ASSOCIATED_TYPES"):
        register_materializer(BaseMaterializer)


def test_entry_points_load_once_on_the_first_miss(monkeypatch, fresh_registry):
    calls = fake_entry_points(monkeypatch, f"{__name__}:PluggedMaterializer")
    assert materializer_for(int) is BuiltinMaterializer
    assert calls == []  # a hit does not need them
    assert materializer_for(Plugged) is PluggedMaterializer
    assert materializer_for(set) is CloudpickleMaterializer
    assert calls == ["branchwork.materializers"]


def test_entry_points_do_not_override_builtins(monkeypatch, fresh_registry):
    fake_entry_points(monkeypatch, f"{__name__}:PluginDictMaterializer")
    assert materializer_for(PluginTarget) is PluginDictMaterializer
    assert materializer_for(dict) is CollectionMaterializer


def test_broken_entry_point_warns_and_is_skipped(monkeypatch, fresh_registry):
    fake_entry_points(monkeypatch, "no_such_module_xyz:Thing", f"{__name__}:PluggedMaterializer")
    with pytest.warns(UserWarning, match="no_such_module_xyz"):
        assert materializer_for(Plugged) is PluggedMaterializer


def test_materializer_paths_round_trip():
    path = materializer_path(CollectionMaterializer)
    assert path == "branchwork.materializers.builtin:CollectionMaterializer"
    assert load_materializer_class(path) is CollectionMaterializer
    assert load_materializer_class(f"{__name__}:DocumentMaterializer") is DocumentMaterializer


@pytest.mark.parametrize(
    "path", ["no_such_module_xyz:Thing", "branchwork.materializers.builtin:Nope", "json:dumps"]
)
def test_unloadable_materializer_path_is_an_artifact_error(path):
    with pytest.raises(ArtifactError, match=path.split(":")[0]):
        load_materializer_class(path)


def test_importing_materializers_stays_light():
    heavy = ("numpy", "pandas", "fsspec", "cloudpickle")
    code = (
        "import sys, branchwork.materializers as m\n"
        "m.materializer_for(int, 1); m.materializer_for(object, object())\n"
        f"loaded = [name for name in {heavy!r} if name in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


class NoteMaterializer(BaseMaterializer):
    """Writes through the helpers only, without declaring HASH_FROM_WRITES."""

    def save(self, data: Document) -> None:
        self._write_bytes("note.txt", data.text.encode())


def test_helper_written_files_hash_like_a_reread(store):
    uri = store.new_artifact_uri("note")
    writer = NoteMaterializer(uri, store)
    writer.save(Document("hi"))
    assert writer.content_hash() == NoteMaterializer(uri, store).content_hash()
    with pytest.raises(ValueError, match="plain file name"):
        writer._write_bytes("sub/x", b"")
