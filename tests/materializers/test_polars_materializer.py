"""polars values as Parquet written by polars; a pickle, with a warning, only for Object
columns; previews with shape, schema and head."""

import datetime
import decimal

import pytest

from branchwork import pipeline, step
from branchwork.exceptions import ArtifactError
from branchwork.materializers import save_artifact

pl = pytest.importorskip("polars", reason="the polars materializer needs branchwork[polars]")

from branchwork.materializers.polars_materializer import PolarsMaterializer  # noqa: E402


def measurements() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sensor": pl.Series(["a", "b", None], dtype=pl.Categorical),
            "value": pl.Series([1.5, None, 3.0], dtype=pl.Float32),
            "count": pl.Series([1, 2, 3], dtype=pl.UInt16),
            "at": [datetime.datetime(2026, 1, d, tzinfo=datetime.timezone.utc) for d in (1, 2, 3)],
            "price": pl.Series([decimal.Decimal("1.25"), None, None], dtype=pl.Decimal(6, 2)),
            "tags": [["x"], [], None],
            "pos": [{"x": 1, "y": 2}, None, {"x": 3, "y": None}],
            "level": pl.Series(["low", "high", "low"], dtype=pl.Enum(["low", "high"])),
        }
    )


def test_a_frame_round_trips_as_parquet_with_a_preview(round_trip):
    frame = measurements()
    result = round_trip(frame)
    assert result.materializer is PolarsMaterializer
    assert (result.files, result.warnings) == (["frame.parquet"], [])
    assert result.loaded.schema == frame.schema
    assert result.loaded.equals(frame)
    assert round_trip(frame.clone()).content_hash == result.content_hash

    assert result.preview["metadata"] == {
        "shape": [3, 8],
        "schema": {name: str(dtype) for name, dtype in frame.schema.items()},
    }
    assert result.preview["text"].startswith("shape: (3, 8)\n")
    assert "│ a      ┆" in result.preview["text"]


def test_a_series_round_trips_with_its_name(round_trip):
    series = pl.Series("score", [1, None, 3], dtype=pl.Int8)
    result = round_trip(series)
    assert (result.files, result.warnings) == (["series.parquet"], [])
    assert type(result.loaded) is pl.Series
    assert result.loaded.name == "score"
    assert result.loaded.equals(series, check_dtypes=True)
    assert result.preview["metadata"]["shape"] == [3]


def test_object_columns_are_refused_with_what_to_convert(artifact_store):
    frame = pl.DataFrame({"obj": pl.Series([{1, 2}, {3}], dtype=pl.Object), "n": [1, 2]})
    with pytest.raises(ArtifactError) as refused:
        save_artifact(
            frame, artifact_store.new_artifact_uri("obj"), artifact_store, PolarsMaterializer
        )
    assert (
        "polars stores columns of dtype Object (arbitrary Python objects) neither as Parquet nor "
        "as a pickle: convert 'obj' to a polars dtype (pl.List, pl.Struct, ...) or return the "
        "values as a Python list."
    ) in str(refused.value)


@step
def collect() -> pl.DataFrame:
    return measurements()


@step
def total(frame: pl.DataFrame) -> pl.Series:
    return frame["count"].cum_sum()


@pipeline(enable_cache=False)
def counts():
    return total(collect())


def test_frames_travel_between_steps_of_a_run():
    assert counts().to_list() == [1, 3, 6]
    frame = counts.last_run.steps["collect"].output
    assert frame.materializer.endswith(":PolarsMaterializer")
    assert frame.load().equals(measurements())
    assert frame.preview["metadata"]["shape"] == [3, 8]
