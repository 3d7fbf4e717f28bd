"""pyarrow Tables as Parquet, or as an Arrow IPC file when Parquet would change them:
never a pickle; previews with shape, schema and the first rows."""

import subprocess

import pytest

from branchwork import pipeline, step
from processes import python, python_env

pa = pytest.importorskip("pyarrow", reason="the pyarrow materializer needs branchwork[pyarrow]")

from branchwork.materializers.pyarrow_materializer import PyarrowTableMaterializer  # noqa: E402


def events() -> pa.Table:
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.uint32()),
            "name": pa.array(["a", None, "c"], pa.large_string()),
            "tags": pa.array([["x"], [], None], pa.list_(pa.string())),
            "kind": pa.array(["u", "v", "u"]).dictionary_encode(),
            "on": pa.array([1, 2, None], pa.date32()),
        }
    )
    return table.replace_schema_metadata({"source": "test"})


def test_a_table_round_trips_as_parquet_with_a_preview(round_trip):
    table = events()
    result = round_trip(table)
    assert result.materializer is PyarrowTableMaterializer
    assert (result.files, result.warnings) == (["table.parquet"], [])
    assert result.loaded.equals(table, check_metadata=True)

    assert result.preview["metadata"] == {
        "shape": [3, 5],
        "schema": {
            "id": "uint32",
            "name": "large_string",
            "tags": "list<item: string>",
            "kind": "dictionary<values=string, indices=int32, ordered=0>",
            "on": "date32[day]",
        },
    }
    assert result.preview["text"].splitlines() == [
        "id: 1, name: 'a', tags: ['x'], kind: 'u', on: datetime.date(1970, 1, 2)",
        "id: 2, name: None, tags: [], kind: 'v', on: datetime.date(1970, 1, 3)",
        "id: 3, name: 'c', tags: None, kind: 'u', on: None",
    ]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None], pa.timestamp("s")),  # Parquet stores it in milliseconds
        pa.array([86_400_000, None], pa.date64()),  # Parquet has date32 only
        pa.array([1, 2, 1]).dictionary_encode(),  # Parquet keeps dictionaries of strings only
        pa.UnionArray.from_sparse(
            pa.array([0, 1], pa.int8()), [pa.array([1, 2]), pa.array(["a", "b"])]
        ),
        pa.array([pa.MonthDayNano([1, 2, 3]), None], pa.month_day_nano_interval()),
    ],
    ids=["timestamp_s", "date64", "int_dictionary", "union", "interval"],
)
def test_what_parquet_would_change_is_an_arrow_ipc_file(round_trip, column):
    table = pa.table({"column": column})
    result = round_trip(table)
    assert (result.files, result.warnings) == (["table.arrow"], [])
    assert result.loaded.equals(table, check_metadata=True)
    assert result.loaded.schema.field("column").type == column.type


@step
def record() -> pa.Table:
    return events()


@step
def ids(table: pa.Table) -> list[int]:
    return table.column("id").to_pylist()


@pipeline(enable_cache=False)
def event_ids():
    return ids(record())


def test_tables_travel_between_steps_of_a_run():
    assert event_ids() == [1, 2, 3]
    table = event_ids.last_run.steps["record"].output
    assert table.materializer.endswith(":PyarrowTableMaterializer")
    assert table.load().equals(events(), check_metadata=True)
    assert table.preview["metadata"]["shape"] == [3, 5]


def test_a_process_that_loads_a_small_table_exits_cleanly(branchwork_home):
    """A small table is read without pyarrow's thread pool: with it, about one process in
    fifteen aborted as it exited ("terminate called without an active exception")."""
    event_ids()
    version = event_ids.last_run.steps["record"].output.id
    load = (
        "from branchwork import Client; "
        f"print(Client().get_artifact_version({version!r}).load().num_rows)"
    )
    for _ in range(12):
        done = subprocess.run(
            python("-c", load),
            env=python_env(branchwork_home),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "3\n", "")
