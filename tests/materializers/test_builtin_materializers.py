import enum
import math
import warnings

import pytest

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import (
    BuiltinMaterializer,
    BytesMaterializer,
    CloudpickleMaterializer,
    CollectionMaterializer,
    load_artifact,
    materializer_for,
    save_artifact,
)
from branchwork.materializers.registry import materializer_path


class Color(enum.IntEnum):
    RED = 1


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


def round_trip(store, value):
    """(loaded value, content hash, file names) of `value` saved with its own materializer."""
    cls = materializer_for(type(value), value)
    uri = store.new_artifact_uri("out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pickling warnings are tested on their own
        content_hash = save_artifact(value, uri, store, cls).content_hash
    return load_artifact(uri, materializer_path(cls)), content_hash, sorted(store.listdir(uri))


def assert_same(loaded, value):
    """Equal and of the same types all the way down (1 == 1.0 == True would hide bugs)."""
    assert type(loaded) is type(value)
    if isinstance(value, dict):
        assert list(loaded) == list(value)  # key order kept
        for key in value:
            assert_same(loaded[key], value[key])
    elif isinstance(value, (list, tuple)):
        assert len(loaded) == len(value)
        for got, want in zip(loaded, value, strict=True):
            assert_same(got, want)
    elif isinstance(value, float) and math.isnan(value):
        assert math.isnan(loaded)
    else:
        assert loaded == value


@pytest.mark.parametrize(
    ("value", "files"),
    [
        (None, ["data.json"]),
        (True, ["data.json"]),
        (0, ["data.json"]),
        (-(2**70), ["data.json"]),
        (1.5, ["data.json"]),
        (float("nan"), ["data.json"]),
        (float("-inf"), ["data.json"]),
        ('héllo \ud800 "quoted"', ["data.json"]),
        (b"\x00\xffraw", ["data.bin"]),
        (b"", ["data.bin"]),
        ([], ["data.json"]),
        ({}, ["data.json"]),
        ((), ["data.tagged.json"]),
        ([1, "a", None, 2.5, [True]], ["data.json"]),
        ({"b": 1, "a": [1, {"c": None}]}, ["data.json"]),
        ((1, (2, (3, [4, (5,)])), {"k": (6,)}), ["data.tagged.json"]),
        ({"t": (1, 2), "l": [1, 2], "e": []}, ["data.tagged.json"]),
        ([["t", 1], ["l"]], ["data.json"]),  # lists that look like tags stay plain
        ({1: "a", None: "b"}, ["data.pkl"]),  # non-str keys
        ([1, {2, 3}], ["data.pkl"]),  # a set inside
        (Color.RED, ["data.pkl"]),  # an int subclass: JSON would lose the type
        pytest.param(10**5000, ["data.pkl"], id="int-too-long-for-str"),
    ],
)
def test_round_trip_is_exact(store, value, files):
    loaded, _, written = round_trip(store, value)
    assert written == files
    assert_same(loaded, value)


def test_cyclic_list_falls_back_to_pickle(store):
    value: list = [1]
    value.append(value)
    loaded, _, written = round_trip(store, value)
    assert written == ["data.pkl"]
    assert loaded[0] == 1 and loaded[1] is loaded


def test_materializers_by_type():
    assert materializer_for(int) is BuiltinMaterializer
    assert materializer_for(bool) is BuiltinMaterializer
    assert materializer_for(type(None)) is BuiltinMaterializer
    assert materializer_for(tuple) is CollectionMaterializer
    assert materializer_for(bytes) is BytesMaterializer
    assert materializer_for(set) is CloudpickleMaterializer


@pytest.mark.parametrize(
    "value",
    [7, 2.5, "x", None, b"b", [1, (2,)], {"a": 1, "b": [2, 3]}, {1: 2}, Color.RED],
)
def test_equal_values_hash_equal(store, value):
    _, first, _ = round_trip(store, value)
    _, second, _ = round_trip(store, value)
    assert first == second
    assert len(first) == 64


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (1, 2),
        (1, 1.0),
        (1, True),
        (1, "1"),
        (None, b"null"),
        ([1, 2], (1, 2)),
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # key order is part of the value
        ({"a": [1]}, {"a": [2]}),
    ],
)
def test_different_values_hash_differently(store, one, other):
    assert round_trip(store, one)[1] != round_trip(store, other)[1]


def test_remembered_hash_equals_a_full_reread(store):
    """The digests _write_bytes remembers give the hash a fresh read of the files gives."""
    uri = store.new_artifact_uri("out")
    writer = CollectionMaterializer(uri, store)
    writer.save({"a": (1, 2)})
    assert writer.content_hash() == CollectionMaterializer(uri, store).content_hash()


def test_a_dicts_preview_keeps_its_order_and_cuts_it_short(round_trip):
    value = {f"k{i}": i for i in range(30)}
    text = round_trip(value).preview["text"]
    assert text.startswith("{'k0': 0, 'k1': 1, 'k2': 2, 'k3': 3,")  # not k0, k1, k10, k11
    assert text.endswith("'k19': 19, ...}")
    nested = round_trip({"b": {"z": 1, "a": [1, 2]}, "a": 2}).preview["text"]
    assert nested == "{'b': {'z': 1, 'a': [1, 2]}, 'a': 2}"
