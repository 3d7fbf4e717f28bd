import warnings

import numpy as np
import pandas as pd
import pytest

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import (
    cloudpickle_materializer,
    load_artifact,
    materializer_for,
    save_artifact,
)
from branchwork.materializers.numpy_materializer import NumpyMaterializer
from branchwork.materializers.pandas_materializer import PandasMaterializer
from branchwork.materializers.registry import materializer_path


@pytest.fixture
def store(tmp_path):
    return LocalArtifactStore(tmp_path)


def round_trip(store, value):
    cls = materializer_for(type(value), value)
    uri = store.new_artifact_uri("out")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        content_hash = save_artifact(value, uri, store, cls).content_hash
    return cls, load_artifact(uri, materializer_path(cls)), content_hash, store.listdir(uri)


@pytest.mark.parametrize(
    ("value", "file"),
    [
        (np.arange(12, dtype=np.float32).reshape(3, 4), "array.npy"),
        (np.asfortranarray(np.eye(3)), "array.npy"),
        (np.array(["a", "bc"]), "array.npy"),
        (np.array([], dtype=np.int64), "array.npy"),
        (np.array([1, "a", None, {"k": 1}], dtype=object), "data.pkl"),
        (np.float64(2.5), "scalar.npy"),
        (np.int8(-3), "scalar.npy"),
        (np.bool_(True), "scalar.npy"),
        (np.str_("text"), "scalar.npy"),
    ],
)
def test_numpy_round_trip(store, value, file):
    cls, loaded, _, files = round_trip(store, value)
    assert cls is NumpyMaterializer
    assert files == [file]
    assert type(loaded) is type(value)
    if isinstance(value, np.ndarray):
        assert loaded.dtype == value.dtype
        np.testing.assert_array_equal(loaded, value)
    else:
        assert loaded == value


def test_object_arrays_warn_once(store, recwarn, monkeypatch):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    for _ in range(2):
        save_artifact(np.array([None]), store.new_artifact_uri("o"), store, NumpyMaterializer)
    save_artifact(np.arange(3), store.new_artifact_uri("o"), store, NumpyMaterializer)
    assert [str(w.message)[:42] for w in recwarn.list] == [
        "numpy.ndarray values with object dtype are"
    ]


def test_numpy_hashes_follow_values(store):
    first = round_trip(store, np.arange(5))[2]
    assert round_trip(store, np.arange(5))[2] == first
    assert round_trip(store, np.arange(1, 6))[2] != first
    assert round_trip(store, np.arange(5, dtype=np.int32))[2] != first


def test_pandas_round_trip(store):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "c": [0.5, np.nan, 1.5]})
    frame.index = pd.Index([10, 20, 30], name="id")
    cls, loaded, content_hash, _ = round_trip(store, frame)
    assert cls is PandasMaterializer
    pd.testing.assert_frame_equal(loaded, frame)
    assert round_trip(store, frame.copy())[2] == content_hash
    assert round_trip(store, frame.assign(a=[1, 2, 4]))[2] != content_hash


@pytest.mark.parametrize("name", ["s", None])
def test_pandas_series_round_trip(store, name):
    series = pd.Series([1.5, 2.5], index=["a", "b"], name=name)
    cls, loaded, _, _ = round_trip(store, series)
    assert cls is PandasMaterializer
    pd.testing.assert_series_equal(loaded, series)
