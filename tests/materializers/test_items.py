"""Items of stored values, as `step.map` hands them out: each materializer's `load_item` gives
what the whole value cut by `select` gives (an item, or a chunk of the value's own kind), and
the item count is what saving recorded. On the local disk and on a real S3 server."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from branchwork.materializers import load_artifact
from branchwork.materializers.builtin import INDEXED_LIST_ITEMS, ITEM_OFFSETS_FILE
from branchwork.materializers.io import save_artifact
from branchwork.materializers.registry import materializer_for, materializer_path

RANGES = [(0, None), (1, None), (0, 2), (1, 3)]


def saved(store: Any, value: Any) -> tuple[str, str, int | None]:
    cls = materializer_for(type(value), value)
    uri = store.new_artifact_uri("out")
    return uri, materializer_path(cls), save_artifact(value, uri, store, cls).item_count


def item(store: Any, uri: str, materializer: str, start: int, stop: int | None) -> Any:
    return load_artifact(uri, materializer, store=store, item=start, stop=stop, allow_pickle=True)


def test_a_long_list_is_stored_with_its_offsets_and_each_item_read_alone(artifact_store):
    value = [{"id": i, "text": '",][' * (i % 4)} for i in range(INDEXED_LIST_ITEMS + 1)]
    uri, materializer, count = saved(artifact_store, value)
    assert count == len(value)
    assert sorted(artifact_store.walk_files(uri)) == ["data.json", ITEM_OFFSETS_FILE]
    # the JSON is what it always was: a reader of data.json alone gets the list
    whole = artifact_store.read_bytes(artifact_store.join(uri, "data.json"))
    assert json.loads(whole) == value
    for start, stop in [(0, None), (7, None), (len(value) - 1, None), (3, 9), (995, 1001)]:
        expected = value[start] if stop is None else value[start:stop]
        assert item(artifact_store, uri, materializer, start, stop) == expected


def test_a_short_list_and_a_tuple_are_cut_from_the_whole_value(artifact_store):
    for value in ([1, "two", [3]], (1, (2, 3), "four")):
        uri, materializer, count = saved(artifact_store, value)
        assert count == 3
        assert ITEM_OFFSETS_FILE not in artifact_store.walk_files(uri)
        for start, stop in RANGES:
            expected = value[start] if stop is None else value[start:stop]
            assert item(artifact_store, uri, materializer, start, stop) == expected


def test_rows_of_an_array_are_read_alone(artifact_store):
    for value in (np.arange(24.0).reshape(4, 3, 2), np.array(["a", "bb", "ccc"])):
        uri, materializer, count = saved(artifact_store, value)
        assert count == len(value)
        for start, stop in RANGES:
            expected = value[start] if stop is None else value[start:stop]
            got = item(artifact_store, uri, materializer, start, stop)
            np.testing.assert_array_equal(got, expected)
            assert got.dtype == expected.dtype


def test_a_fortran_ordered_array_and_a_scalar(artifact_store):
    value = np.asfortranarray(np.arange(6).reshape(3, 2))  # rows not side by side: cut whole
    uri, materializer, _ = saved(artifact_store, value)
    np.testing.assert_array_equal(item(artifact_store, uri, materializer, 1, None), [2, 3])
    assert saved(artifact_store, np.float64(2.5))[2] is None  # a scalar has no items


def frame_rows(frame: pd.DataFrame | pd.Series, start: int, stop: int | None) -> Any:
    return frame.iloc[start] if stop is None else frame.iloc[start:stop]


@pytest.mark.parametrize(
    "value",
    [
        pd.DataFrame(
            {"n": [1, 2, 3], "s": ["a", None, "c"], "t": pd.to_datetime(["2026"] * 3)},
            index=pd.RangeIndex(10, 16, 2),
        ),
        pd.DataFrame({"n": [1, 2, 3]}, index=pd.Index(["x", "y", "z"], name="key")),
        pd.Series([1.5, 2.5, 3.5], name="price"),
    ],
    ids=["range-index", "labelled", "series"],
)
def test_rows_of_a_dataframe_or_series_keep_their_labels_and_dtypes(artifact_store, value):
    uri, materializer, count = saved(artifact_store, value)
    assert count == 3
    for start, stop in RANGES:
        got = item(artifact_store, uri, materializer, start, stop)
        expected = frame_rows(value, start, stop)
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected)
        elif isinstance(expected, pd.Series):
            pd.testing.assert_series_equal(got, expected)
        else:
            assert got == expected


def test_rows_of_a_frame_of_several_row_groups_are_read_from_theirs(tmp_path):
    """pyarrow writes a row group per 1 048 576 rows: a row of the second group, and a chunk
    across both, keep the labels of the whole frame."""
    from branchwork.artifact_stores import LocalArtifactStore

    store = LocalArtifactStore(tmp_path / "artifacts")
    value = pd.DataFrame({"n": np.arange(1_100_000)}, index=pd.RangeIndex(5, 5 + 3 * 1_100_000, 3))
    uri, materializer, _ = saved(store, value)
    for start, stop in [(1_048_576, None), (1_048_570, 1_048_580), (1_099_999, None)]:
        got = item(store, uri, materializer, start, stop)
        expected = frame_rows(value, start, stop)
        if stop is None:
            pd.testing.assert_series_equal(got, expected)
        else:
            pd.testing.assert_frame_equal(got, expected)


def test_rows_of_polars_and_pyarrow_tables_are_dicts_and_chunks_are_tables(artifact_store):
    data = {"n": [1, 2, 3], "s": ["a", "b", "c"]}
    for value in (pl.DataFrame(data), pa.table(data)):
        uri, materializer, count = saved(artifact_store, value)
        assert count == 3
        assert item(artifact_store, uri, materializer, 1, None) == {"n": 2, "s": "b"}
        chunk = item(artifact_store, uri, materializer, 1, 3)
        rows = (
            chunk.to_dict(as_series=False) if isinstance(chunk, pl.DataFrame) else chunk.to_pydict()
        )
        assert type(chunk) is type(value) and rows == {"n": [2, 3], "s": ["b", "c"]}
    series = pl.Series("n", [4, 5, 6])
    uri, materializer, _ = saved(artifact_store, series)
    assert item(artifact_store, uri, materializer, 2, None) == 6


def test_values_without_items_record_none(artifact_store):
    for value in (3, "text", {"a": 1}, b"bytes"):
        assert saved(artifact_store, value)[2] is None
