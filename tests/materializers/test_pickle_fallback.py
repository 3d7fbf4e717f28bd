import warnings

import pytest

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import (
    CloudpickleMaterializer,
    CollectionMaterializer,
    load_artifact,
    materializer_for,
    save_artifact,
)
from branchwork.materializers.registry import materializer_path


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


def save_twice(store, value):
    cls = materializer_for(type(value), value)
    uris = [store.new_artifact_uri("out") for _ in range(2)]
    for uri in uris:
        save_artifact(value, uri, store, cls)
    return cls, uris


def test_unknown_type_is_pickled_with_one_warning_per_type(store, recwarn):
    class Point:
        def __init__(self, x: int) -> None:
            self.x = x

    class Other:
        pass

    cls, uris = save_twice(store, Point(3))
    assert cls is CloudpickleMaterializer
    save_twice(store, Other())

    messages = [str(w.message) for w in recwarn.list]
    assert len(messages) == 2
    assert "Point" in messages[0] and "Other" in messages[1]
    assert "same code and Python version" in messages[0]
    assert "register_materializer(YourMaterializer, " in messages[0]
    loaded = load_artifact(uris[1], materializer_path(cls))
    assert type(loaded).__name__ == "Point" and loaded.x == 3


def test_collection_fallback_names_what_json_cannot_hold(store, recwarn):
    class Key:
        def __eq__(self, other: object) -> bool:
            return isinstance(other, Key)

        def __hash__(self) -> int:
            return 1

    cls, uris = save_twice(store, [1, Key()])
    assert cls is CollectionMaterializer
    save_twice(store, {Key(): 1})

    messages = [str(w.message) for w in recwarn.list]
    assert len(messages) == 2
    assert messages[0].startswith("list values holding test_pickle_fallback.")
    assert "Key are stored as cloudpickles" in messages[0]
    assert messages[1].startswith("dict values with test_pickle_fallback.")
    assert load_artifact(uris[0], materializer_path(cls)) == [1, Key()]


def test_a_warned_type_does_not_warn_again(store):
    class Seen:
        pass

    with pytest.warns(UserWarning, match="Seen values are stored as cloudpickles"):
        save_twice(store, Seen())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        save_twice(store, Seen())


def test_an_equal_set_pickles_to_the_same_bytes_whatever_order_it_was_filled_in(store):
    # {1, 9} and {9, 1} iterate in the order they were filled in (both hash to one slot);
    # strs iterate in an order the process's hash seed picks.
    first = [{1, 9}, {"tags": frozenset(["b", "a", "c"])}, {("x", 1), (2, "y")}]
    second = [set([9, 1]), {"tags": frozenset(["c", "a", "b"])}, set([(2, "y"), ("x", 1)])]
    assert list(first[0]) != list(second[0])

    hashes = []
    for value in (first, second):
        saved = save_artifact(value, store.new_artifact_uri("out"), store, CollectionMaterializer)
        hashes.append(saved.content_hash)
    assert hashes[0] == hashes[1]
    loaded = load_artifact(saved.uri, materializer_path(CollectionMaterializer))
    assert loaded == first
    assert [type(item) for item in loaded] == [set, dict, set]
    assert type(loaded[1]["tags"]) is frozenset
