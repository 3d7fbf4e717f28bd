"""numpy values: `.npy` for every dtype but objects, JSON for object arrays of JSON values,
a pickle only for other objects; previews with shape, dtype and statistics."""

import numpy as np
import pytest

from branchwork import pipeline, step
from branchwork.materializers import cloudpickle_materializer
from branchwork.materializers.numpy_materializer import NumpyMaterializer

STRUCTURED = np.array(
    [(1, 2.5, b"ab", "xy", (0.5, 1.5), [1, 2, 3]), (3, 4.5, b"c", "z", (2.0, 3.0), [4, 5, 6])],
    dtype=[
        ("i", "<i4"),
        ("f", "<f8"),
        ("b", "S2"),
        ("u", "U3"),
        ("point", [("x", "<f4"), ("y", "<f4")]),
        ("v", "<i2", (3,)),
    ],
)
LABELS = np.array([["cat", None], [["a", "b"], 3]], dtype=object)


def assert_identical(loaded, value):
    """Same type, dtype, shape and items (object items of the same Python type too)."""
    assert type(loaded) is type(value)
    if not isinstance(value, np.ndarray):
        assert loaded == value
        return
    assert loaded.dtype == value.dtype
    assert loaded.shape == value.shape
    np.testing.assert_array_equal(loaded, value)
    if value.dtype == object:
        assert list(map(type, loaded.ravel())) == list(map(type, value.ravel()))


@pytest.mark.parametrize(
    ("value", "file"),
    [
        (np.arange(12, dtype=np.float32).reshape(3, 4), "array.npy"),
        (np.asfortranarray(np.eye(3)), "array.npy"),
        (np.array(["a", "bc"]), "array.npy"),
        (np.array([], dtype=np.int64), "array.npy"),
        (STRUCTURED, "array.npy"),  # no pickle needed, so none allowed
        (np.array([1, "a", None, 2.5, True, [1, [2, "x"]], {"k": [None]}], dtype=object), None),
        (np.asfortranarray(np.array([["a", None, 1], [[2], "b", 3.5]], dtype=object)), None),
        (np.array("only", dtype=object), None),
        (np.array([], dtype=object).reshape(0, 3), None),
        (np.float64(2.5), "scalar.npy"),
        (np.int8(-3), "scalar.npy"),
        (np.bool_(True), "scalar.npy"),
        (np.str_("text"), "scalar.npy"),
    ],
)
def test_values_round_trip_without_pickle(round_trip, value, file):
    result = round_trip(value)
    assert result.materializer is NumpyMaterializer
    assert result.files == [file or "array.object.json"]
    assert result.warnings == []
    assert_identical(result.loaded, value)
    if file is None and value.flags.f_contiguous and value.ndim > 1:
        assert result.loaded.flags.f_contiguous  # the memory order is kept too
    assert result.preview["metadata"]["shape"] == list(np.shape(value))
    assert result.preview["metadata"]["dtype"] == str(np.asarray(value).dtype)


@pytest.mark.parametrize(
    ("value", "which"),
    [
        (np.array([1, object()], dtype=object), "with object dtype holding object"),
        (np.array([(1, 2), "a"], dtype=object), "with object dtype holding tuples"),
        (np.array([{1: "a"}], dtype=object), "with object dtype with int keys"),
        (np.zeros(2, dtype=[("i", "i4"), ("o", "O")]), "with object fields"),
    ],
)
def test_other_objects_are_pickled_with_a_warning_naming_why(round_trip, monkeypatch, value, which):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    result = round_trip(value)
    assert result.files == ["data.pkl"]
    assert [message[: 21 + len(which) + 4] for message in result.warnings] == [
        f"numpy.ndarray values {which} are"
    ]
    assert result.loaded.dtype == value.dtype
    assert result.loaded.shape == value.shape


def test_hashes_follow_values(round_trip):
    first = round_trip(np.arange(5)).content_hash
    assert round_trip(np.arange(5)).content_hash == first
    assert round_trip(np.arange(1, 6)).content_hash != first
    assert round_trip(np.arange(5, dtype=np.int32)).content_hash != first
    objects = round_trip(np.array(["a", None], dtype=object)).content_hash
    assert round_trip(np.array(["a", None], dtype=object)).content_hash == objects
    assert round_trip(np.array(["a", "b"], dtype=object)).content_hash != objects


def test_preview_has_statistics_of_numeric_arrays_and_a_bounded_head(round_trip):
    preview = round_trip(np.arange(10_000, dtype=np.int64).reshape(100, 100)).preview
    assert preview["metadata"] == {
        "shape": [100, 100],
        "dtype": "int64",
        "min": 0,
        "max": 9999,
        "mean": 4999.5,
    }
    assert preview["text"].startswith("array([[   0,    1,    2, ...,   97,   98,   99],\n")
    assert len(preview["text"]) < 1000

    floats = round_trip(np.array([0.0, 4_999_999.0, 0.9999999])).preview["metadata"]
    assert (floats["max"], floats["min"]) == (4_999_999.0, 0.0)  # not rounded to 5e6
    assert floats["mean"] == np.array([0.0, 4_999_999.0, 0.9999999]).mean()

    with_nan = round_trip(np.array([1.0, np.nan, 3.0])).preview["metadata"]
    assert (with_nan["min"], with_nan["max"], with_nan["mean"], with_nan["nan"]) == (1, 3, 2, 1)
    only_nan = round_trip(np.array([np.nan, np.nan])).preview["metadata"]
    assert (only_nan["min"], only_nan["mean"], only_nan["nan"]) == (None, None, 2)  # no NaN in JSON
    assert round_trip(np.array([1.0, np.inf])).preview["metadata"]["max"] is None
    assert "min" not in round_trip(np.array(["a"])).preview["metadata"]
    assert "min" not in round_trip(np.array([], dtype=float)).preview["metadata"]
    assert round_trip(np.float32(1.5)).preview == {
        "text": "np.float32(1.5)",
        "metadata": {"shape": [], "dtype": "float32"},
    }


@step
def make_records() -> np.ndarray:
    return STRUCTURED


@step
def make_labels() -> np.ndarray:
    return LABELS


@step
def describe(records: np.ndarray, labels: np.ndarray) -> str:
    return f"{records['point']['y'].sum()} {labels[1, 0][1]} {labels.dtype}"


@pipeline(enable_cache=False)
def arrays():
    return describe(make_records(), make_labels())


def test_arrays_travel_between_steps_of_a_run():
    assert arrays() == "4.5 b object"
    steps = arrays.last_run.steps
    labels = steps["make_labels"].output
    assert labels.preview["metadata"] == {"shape": [2, 2], "dtype": "object"}
    assert_identical(labels.load(), LABELS)
    assert steps["make_records"].output.load().dtype == STRUCTURED.dtype
