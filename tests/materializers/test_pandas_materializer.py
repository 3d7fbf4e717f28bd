"""pandas values as Parquet (the `branchwork[pandas]` extra); a pickle, with a warning saying
why, for what Parquet cannot hold exactly or when pyarrow is missing; previews with shape,
dtypes, head and describe()."""

import datetime
import decimal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from branchwork import pipeline, step
from branchwork.materializers import cloudpickle_materializer, load_artifact
from branchwork.materializers.pandas_materializer import DESCRIBE_ROWS, PandasMaterializer
from branchwork.materializers.registry import materializer_path
from branchwork.materializers.table_preview import SCHEMA_COLUMNS


def sales() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "units": [1, 2, 3],
            "region": ["north", None, "south"],
            "price": [0.5, np.nan, 1.5],
            "day": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"]).tz_localize("UTC"),
            "kind": pd.Categorical(["a", "b", "a"]),
        }
    )
    frame.index = pd.Index([10, 20, 30], name="id")
    return frame


def test_a_frame_round_trips_as_parquet_with_a_preview(round_trip):
    frame = sales()
    result = round_trip(frame)
    assert result.materializer is PandasMaterializer
    assert (result.files, result.warnings) == (["frame.parquet"], [])
    pd.testing.assert_frame_equal(result.loaded, frame)
    assert round_trip(frame.copy()).content_hash == result.content_hash
    assert round_trip(frame.assign(units=[1, 2, 4])).content_hash != result.content_hash

    metadata = result.preview["metadata"]
    assert metadata["shape"] == [3, 5]
    assert metadata["dtypes"] == {
        "units": "int64",
        "region": str(frame["region"].dtype),
        "price": "float64",
        "day": "datetime64[us, UTC]",
        "kind": "category",
    }
    assert metadata["describe"] == {
        "units": {
            "count": 3.0,
            "mean": 2.0,
            "std": 1.0,
            "min": 1.0,
            "25%": 1.5,
            "50%": 2.0,
            "75%": 2.5,
            "max": 3.0,
        },
        "price": {
            "count": 2.0,
            "mean": 1.0,
            "std": 0.7071067811865476,  # exact: a rounded min or max is not in the data
            "min": 0.5,
            "25%": 0.75,
            "50%": 1.0,
            "75%": 1.25,
            "max": 1.5,
        },
    }
    ids = round_trip(pd.DataFrame({"user_id": [100_000_001, 123_456_789]})).preview
    assert (
        ids["metadata"]["describe"]["user_id"]["min"],
        ids["metadata"]["describe"]["user_id"]["max"],
    ) == (100_000_001, 123_456_789)
    assert result.preview["text"].splitlines()[0].split() == [
        "units",
        "region",
        "price",
        "day",
        "kind",
    ]
    assert len(result.preview["text"].splitlines()) == 5  # header, index name, three rows


@pytest.mark.parametrize("name", ["s", None])
def test_series_round_trip_as_parquet_named_or_not(round_trip, name):
    series = pd.Series([1.5, 2.5], index=pd.Index(["a", "b"], name="key"), name=name)
    result = round_trip(series)
    assert result.materializer is PandasMaterializer
    assert result.files == ["series.parquet" if name else "unnamed_series.parquet"]
    assert result.warnings == []
    pd.testing.assert_series_equal(result.loaded, series)
    assert result.preview["metadata"]["shape"] == [2]


def test_categoricals_of_text_and_nanosecond_times_stay_parquet(round_trip):
    frame = pd.DataFrame(
        {
            "size": pd.Categorical(["s", "m"], categories=["s", "m", "l"], ordered=True),
            "at": pd.to_datetime(["2026-01-01", "2026-01-02"]).tz_localize("Europe/Paris"),
        }
    )
    empty = round_trip(frame.head(0))  # no rows: Parquet keeps no categories
    assert empty.files == ["data.pkl"] and list(empty.loaded["size"].cat.categories) == [
        "s",
        "m",
        "l",
    ]
    result = round_trip(frame)  # the empty frame's verdict is not this one's
    assert (result.files, result.warnings) == (["frame.parquet"], [])
    assert list(result.loaded["size"].cat.categories) == ["s", "m", "l"]
    assert result.loaded["size"].cat.ordered
    assert result.loaded["at"].dtype == frame["at"].dtype


def test_object_columns_of_values_parquet_keeps_stay_parquet(round_trip):
    frame = pd.DataFrame(
        {
            "text": pd.Series(["a", "b"], dtype=object),
            "raw": [b"\x00", None],
            "amount": [decimal.Decimal("1.50"), None],
            "day": [datetime.date(2026, 1, 1), None],
            "flag": pd.Series([True, None], dtype=object),
        }
    )
    result = round_trip(frame)
    assert (result.files, result.warnings) == (["frame.parquet"], [])
    for column in ("raw", "amount", "day", "flag"):
        assert result.loaded[column].tolist() == frame[column].tolist()
        assert result.loaded[column].dtype == object
    assert result.loaded["text"].tolist() == ["a", "b"]  # pandas 3 reads text as its str dtype
    assert result.preview["metadata"]["dtypes"]["raw"] == "object"


class Frame(pd.DataFrame):
    pass


@pytest.mark.parametrize(
    ("value", "which"),
    [
        (pd.DataFrame({0: [1], 1: [2]}), "that Parquet cannot store exactly"),  # int names
        (pd.DataFrame({"tags": [["a"], ["b", "c"]]}), "that Parquet cannot store exactly"),
        (pd.DataFrame({"n": pd.Series([1, None], dtype=object)}), "that Parquet cannot store"),
        (pd.DataFrame({"v": [1]}, index=pd.Index([1], dtype=object)), "that Parquet"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "that Parquet cannot store exactly"),
        (pd.Series([1], name=0), "that Parquet cannot store exactly"),
        (Frame({"a": [1]}), ""),
        # Parquet gave these back as ints, milliseconds, bools and an int index
        (pd.DataFrame({"grade": pd.Categorical([1, 2], categories=[1, 2, 3])}), "that Parquet"),
        (pd.DataFrame({"at": pd.to_datetime(["2026-01-01"]).as_unit("s")}), "that Parquet"),
        (pd.DataFrame({"flag": pd.Series([True, False], dtype=object)}), "that Parquet"),
        (pd.DataFrame({"v": [1]}, index=pd.CategoricalIndex([7])), "that Parquet"),
    ],
)
def test_what_parquet_cannot_hold_is_pickled_with_a_warning(round_trip, monkeypatch, value, which):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    result = round_trip(value)
    assert result.files == ["data.pkl"]
    assert len(result.warnings) == 1
    assert result.warnings[0].startswith(f"{type(value).__module__}.{type(value).__qualname__}")
    assert f"values {which}".strip() in result.warnings[0]
    assert type(result.loaded) is type(value)
    if isinstance(value, pd.Series):
        pd.testing.assert_series_equal(result.loaded, value)
    else:
        pd.testing.assert_frame_equal(result.loaded, value)


def test_without_pyarrow_frames_are_pickled_after_one_warning_naming_the_extra(tmp_path):
    code = f"""
import sys, warnings
sys.modules["pyarrow"] = None  # as if pyarrow were not installed
import pandas as pd
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.materializers import load_artifact, materializer_for, save_artifact
from branchwork.materializers.registry import materializer_path

store = LocalArtifactStore({str(tmp_path)!r})
frame = pd.DataFrame({{"a": [1, 2]}})
cls = materializer_for(pd.DataFrame, frame)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    uris = [store.new_artifact_uri("frame") for _ in range(2)]
    for uri in uris:
        save_artifact(frame, uri, store, cls)
for message in caught:
    print("warning:", message.message)
print("files:", store.listdir(uris[0]))
print("equal:", load_artifact(uris[1], materializer_path(cls)).equals(frame))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == [
        "warning: pandas.DataFrame values (pyarrow, which stores them as Parquet, is not "
        "installed: pip install 'branchwork[pandas]') are stored as cloudpickles (no "
        "materializer stores them exactly): such artifacts only load with the same code and "
        "Python version. To store them durably, subclass "
        "branchwork.materializers.BaseMaterializer and call "
        "register_materializer(YourMaterializer, DataFrame). (Shown once per type.)",
        "files: ['data.pkl']",
        "equal: True",
    ]


def test_a_big_frame_is_described_from_evenly_spaced_rows(round_trip):
    rows = 3 * DESCRIBE_ROWS
    frame = pd.DataFrame({"x": np.arange(rows, dtype=np.float64), "label": "a"})
    metadata = round_trip(frame).preview["metadata"]
    assert metadata["describe_rows"] == DESCRIBE_ROWS  # every third row
    assert metadata["describe"]["x"]["count"] == DESCRIBE_ROWS
    assert (metadata["describe"]["x"]["min"], metadata["describe"]["x"]["max"]) == (0, rows - 3)
    assert list(metadata["describe"]) == ["x"]


def test_a_duration_column_is_described_in_durations(round_trip):
    frame = pd.DataFrame({"took": pd.to_timedelta([1, 2, 3], unit="s"), "n": [1, 2, 3]})
    described = round_trip(frame).preview["metadata"]["describe"]
    assert described["took"] == {
        "count": 3.0,
        "mean": "0 days 00:00:02",
        "std": "0 days 00:00:01",
        "min": "0 days 00:00:01",
        "25%": "0 days 00:00:01.500000",
        "50%": "0 days 00:00:02",
        "75%": "0 days 00:00:02.500000",
        "max": "0 days 00:00:03",
    }
    assert described["n"]["mean"] == 2.0


def test_a_nullable_column_without_values_is_described_as_such(round_trip):
    frame = pd.DataFrame({"units": pd.array([None, None], dtype="Int64"), "price": [1.0, 2.0]})
    described = round_trip(frame).preview["metadata"]["describe"]
    assert described["units"] == {
        "count": 0.0,
        **dict.fromkeys(("mean", "std", "min", "25%", "50%", "75%", "max")),
    }
    assert described["price"]["mean"] == 1.5


@step
def load_sales() -> pd.DataFrame:
    return sales()


@step
def revenue(frame: pd.DataFrame) -> pd.Series:
    return (frame["units"] * frame["price"]).rename("revenue")


@pipeline(enable_cache=False)
def report():
    return revenue(load_sales())


def test_frames_travel_between_steps_of_a_run():
    expected = pd.Series([0.5, np.nan, 4.5], index=sales().index, name="revenue")
    pd.testing.assert_series_equal(report(), expected)
    steps = report.last_run.steps
    frame = steps["load_sales"].output
    assert frame.materializer.endswith(":PandasMaterializer")
    pd.testing.assert_frame_equal(frame.load(), sales())
    assert frame.preview["metadata"]["shape"] == [3, 5]
    assert steps["revenue"].output.preview["metadata"]["describe"]["revenue"]["max"] == 4.5


def test_a_wide_frame_with_long_names_has_a_bounded_preview(round_trip):
    names = [f"{'feature_' * 8}{i}" for i in range(200)]
    frame = pd.DataFrame(np.ones((2, 200)), columns=names)
    preview = round_trip(frame).preview  # metadata over the limit would be dropped whole
    assert preview["metadata"]["shape"] == [2, 200]
    dtypes = preview["metadata"]["dtypes"]
    assert len(dtypes) == SCHEMA_COLUMNS
    assert list(dtypes)[:2] == [
        "feature_feature_fea…re_feature_feature_0",
        "feature_feature_fea…re_feature_feature_1",
    ]
    assert len(preview["metadata"]["describe"]) == 10
    assert preview["text"].split()[:2] == list(dtypes)[:2]


@pytest.mark.parametrize(
    "index",
    [
        pd.date_range("2026-01-01", periods=4, freq="D"),
        pd.date_range("2026-01-01", periods=4, freq="2W-SUN", tz="Europe/Paris"),
        pd.bdate_range("2026-01-01", periods=4),
        pd.timedelta_range("1D", periods=4, freq="h"),
    ],
)
def test_a_time_index_keeps_its_frequency_whole_and_in_chunks(round_trip, artifact_store, index):
    """Parquet has no place for it: it came back None (`assert_frame_equal` checks it)."""
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}, index=index)
    frame.attrs = {"source": "sensor"}
    result = round_trip(frame)
    assert (result.files, result.warnings) == (["frame.parquet"], [])
    pd.testing.assert_frame_equal(result.loaded, frame)
    assert result.loaded.attrs == {"source": "sensor"}
    pd.testing.assert_series_equal(round_trip(frame["x"]).loaded, frame["x"])
    chunk = load_artifact(
        result.uri, materializer_path(PandasMaterializer), store=artifact_store, item=1, stop=3
    )
    pd.testing.assert_frame_equal(chunk, frame.iloc[1:3])
    assert chunk.index.freq == index.freq and chunk.attrs == {"source": "sensor"}


def test_a_business_calendar_its_name_cannot_rebuild_is_pickled(round_trip, monkeypatch):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    index = pd.bdate_range("2026-01-01", periods=4, freq="C", holidays=["2026-01-05"])
    series = pd.Series([1, 2, 3, 4], index=index)
    result = round_trip(series)
    assert result.files == ["data.pkl"]
    assert "that Parquet cannot store exactly" in result.warnings[0]
    pd.testing.assert_series_equal(result.loaded, series)
    assert result.loaded.index.freq.holidays == index.freq.holidays
