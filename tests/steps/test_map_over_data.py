"""`step.map(output)` over a step's list, array or DataFrame output: the orchestration loop
counts the items from what was recorded when the output was saved (it never loads the
output), each mapped step loads only its item, `chunk_size=k` hands out k items at a time,
and `.unpack()` gives one list per output of a multi-output step."""

from __future__ import annotations

from typing import Any

import mapping_pipelines as mp
import numpy as np
import pytest
from sqlalchemy import select

from branchwork import pipeline, step
from branchwork.exceptions import ArtifactError, PipelineRunFailedError, StepInvocationError
from branchwork.materializers.builtin import CollectionMaterializer
from branchwork.materializers.numpy_materializer import NumpyMaterializer
from branchwork.metadata import schema
from branchwork.metadata.store import get_engine
from branchwork.orchestrators import LocalOrchestrator
from branchwork.stack import Stack, active_stack

N = mp.RECORDS
LENGTHS = sum(3 * (i % 3) for i in range(N))


def chunks_of(count: int, size: int, kind: str, first: Any = lambda i: i) -> list[dict]:
    return [
        {"type": kind, "items": min(size, count - start), "first": first(start)}
        for start in range(0, count, size)
    ]


@pytest.fixture
def whole_loads_refused(monkeypatch):
    """Loading the mapped list or array whole fails, in this process: what a run of the local
    orchestrator does while it is on shows that nothing loaded them whole."""

    def refusing(materializer: type) -> Any:
        load = materializer.load

        def refuse(self: Any, data_type: type) -> Any:
            if "/records_output/" in self.uri or "/matrix_output/" in self.uri:
                raise AssertionError(f"{self.uri} was loaded whole")
            return load(self, data_type)

        return refuse

    monkeypatch.setattr(CollectionMaterializer, "load", refusing(CollectionMaterializer))
    monkeypatch.setattr(NumpyMaterializer, "load", refusing(NumpyMaterializer))


def test_each_mapped_step_gets_its_item_of_a_list_and_chunks_of_it(local_flavor):
    ids, lengths, chunks = mp.map_records(n=N, chunk_size=400)
    assert (ids, lengths) == (sum(range(N)), LENGTHS)
    assert chunks == chunks_of(N, 400, "list")
    run = mp.map_records.last_run
    measured = {name for name in run.steps if name.startswith("measure")}
    assert measured == {"measure"} | {f"measure_{i}" for i in range(2, N + 1)}
    assert run.steps["measure_8"].outputs["id"].load() == 7
    assert {str(s.status) for s in run.steps.values()} == {"completed"}
    assert run.steps["records"].output.item_count == N


def test_rows_of_an_array_and_of_a_dataframe_one_at_a_time_and_in_chunks(local_flavor):
    array_rows, frame_rows, array_chunks, frame_chunks = mp.map_tables(n=7, chunk_size=3)
    assert array_rows == [3 * i for i in range(7)]
    assert frame_rows == [100 + 2 * i for i in range(7)]  # a row keeps its label
    assert array_chunks == chunks_of(7, 3, "ndarray", lambda i: 3 * i)
    assert frame_chunks == chunks_of(7, 3, "DataFrame", lambda i: 100 + 2 * i)
    steps = mp.map_tables.last_run.steps
    assert (steps["matrix"].output.item_count, steps["frame"].output.item_count) == (7, 7)


def test_the_pipeline_maps_over_outputs_without_loading_them(whole_loads_refused):
    ids, lengths, chunks = mp.map_records(n=N, chunk_size=700)
    assert (ids, lengths, chunks) == (sum(range(N)), LENGTHS, chunks_of(N, 700, "list"))
    array_rows, _, array_chunks, _ = mp.map_tables(n=5, chunk_size=2)
    assert array_rows == [0, 3, 6, 9, 12]
    assert array_chunks == chunks_of(5, 2, "ndarray", lambda i: 3 * i)
    # the refusal was on: loading the list whole fails
    with pytest.raises(ArtifactError, match="was loaded whole"):
        mp.map_records.last_run.steps["records"].output.load()


def test_items_are_read_alone_from_an_s3_store(s3_store, whole_loads_refused):
    with active_stack(Stack("s3", LocalOrchestrator(), s3_store)):
        ids, lengths, chunks = mp.map_records(n=N, chunk_size=1000)
        array_rows, frame_rows, _, _ = mp.map_tables(n=4, chunk_size=2)
    assert (ids, lengths, chunks) == (sum(range(N)), LENGTHS, chunks_of(N, 1000, "list"))
    assert (array_rows, frame_rows) == ([0, 3, 6, 9], [100, 102, 104, 106])


def test_a_rerun_is_served_item_by_item_from_the_cache_and_chunks_are_keyed_by_their_range():
    mp.map_records(n=40, chunk_size=10)
    assert mp.map_records(n=40, chunk_size=10)[2] == chunks_of(40, 10, "list")
    rerun = mp.map_records.last_run.steps
    assert {str(s.status) for s in rerun.values()} == {"cached"}
    mp.map_records(n=40, chunk_size=15)
    statuses = {name: str(s.status) for name, s in mp.map_records.last_run.steps.items()}
    assert statuses["measure_40"] == "cached"
    chunked = {name: statuses[name] for name in statuses if name.startswith("describe_chunk")}
    # items 0-14 and 15-29 are new chunks; items 30-39 were the last chunk of 10 before
    assert chunked == {
        "describe_chunk": "completed",
        "describe_chunk_2": "completed",
        "describe_chunk_3": "cached",
    }


def test_an_output_that_changed_runs_every_item_again_and_the_reasons_say_why():
    """Items are keyed by their place in the whole output: one more record changes every
    key, and each reason says the item is keyed by that output, not that it changed."""
    mp.map_records(n=3, chunk_size=2)
    mp.map_records(n=4, chunk_size=2)
    steps = mp.map_records.last_run.steps
    assert [str(steps[name].status) for name in ("measure", "measure_2")] == ["completed"] * 2
    assert steps["measure_2"].cache_reason.endswith(
        "argument 'record' (item 1 of the output of 'records', which is keyed by that whole "
        "output) changed"
    )
    assert steps["describe_chunk"].cache_reason.endswith(
        "argument 'chunk' (items 0 to 1 of the output of 'records', which is keyed by that "
        "whole output) changed"
    )


def test_the_item_count_is_stored_with_the_output():
    mp.map_records(n=12, chunk_size=5)
    engine = get_engine()
    with engine.connect() as conn:
        counts = conn.execute(
            select(schema.artifact.c.name, schema.artifact_version.c.item_count).join(
                schema.artifact, schema.artifact.c.id == schema.artifact_version.c.artifact_id
            )
        ).all()
    by_name = dict(counts)
    assert by_name["map_records::records::output"] == 12
    assert by_name["map_records::describe_chunk::output"] is None  # a dict has no items


@step
def number() -> int:
    return 3


@step
def echo(value: Any) -> Any:
    return value


@pipeline
def map_over_an_int() -> Any:
    return echo.map(number())


@pipeline
def chunked(chunk_size: Any) -> Any:
    return echo.map(mp.records(5), chunk_size=chunk_size)


@pipeline
def chunked_product() -> Any:
    return echo.product(mp.records(2), chunk_size=2)


def test_mapping_over_an_output_without_items_fails_naming_the_step_and_output():
    with pytest.raises(PipelineRunFailedError) as info:
        map_over_an_int()
    cause = info.value.__cause__
    assert type(cause) is StepInvocationError
    assert str(cause) == (
        "Step 'echo' maps over the output of 'number', which has no items to map over "
        "(object of type 'int' has no len()); map over a list, tuple, array or table."
    )


@step
def table() -> dict:
    return {"a": 1, "b": 2}


@pipeline
def map_over_a_dict() -> Any:
    return echo.map(table())


def test_mapping_over_a_dict_output_is_refused_saying_what_to_map_over():
    """Its two entries were mapped by position: every item failed loading (KeyError(0))."""
    with pytest.raises(PipelineRunFailedError) as info:
        map_over_a_dict()
    assert str(info.value.__cause__) == (
        "Step 'echo' maps over the output of 'table', which has no items to map over (a dict "
        "has no positions; map over a list of its keys, values or items, returned by a step); "
        "map over a list, tuple, array or table."
    )
    assert map_over_a_dict.last_run.steps.keys() == {"table"}  # no item step ran


@step
def file_name() -> str:
    return "data.csv"


@pipeline
def map_over_a_str_output() -> Any:
    return echo.map(file_name())


@pipeline
def map_over_a_literal(value: Any) -> Any:
    return echo.map(value)


def test_mapping_over_a_str_output_is_refused_not_mapped_over_its_characters():
    with pytest.raises(PipelineRunFailedError) as info:
        map_over_a_str_output()
    assert str(info.value.__cause__) == (
        "Step 'echo' maps over the output of 'file_name', which has no items to map over (a "
        "str is one value, not a list of them); map over a list, tuple, array or table."
    )


@pytest.mark.parametrize(
    ("value", "shown"), [(5, "int (5)"), ("abc", "str ('abc')"), ({"a": 1}, "dict ({'a': 1})")]
)
def test_mapping_over_a_literal_that_is_not_a_list_names_the_step(value, shown):
    """`echo.map(5)` raised a bare "TypeError: 'int' object is not iterable"; a str was
    mapped over its characters."""
    with pytest.raises(PipelineRunFailedError) as info:
        map_over_a_literal(value)
    assert str(info.value.__cause__) == (
        f"Step 'echo' cannot map over a {shown}: map over a list, tuple, array or table, or "
        "a step output holding one."
    )
    assert map_over_a_literal([1, 2]) == [1, 2]


@pytest.mark.parametrize("size", [0, -1, "2", 2.0, True])
def test_a_chunk_size_that_is_not_a_positive_int_is_refused(size):
    with pytest.raises(PipelineRunFailedError) as info:
        chunked(chunk_size=size)
    assert str(info.value.__cause__) == (
        f"Step 'echo': chunk_size= must be a positive int, got {size!r}."
    )


def test_chunk_size_is_refused_on_a_product():
    with pytest.raises(PipelineRunFailedError) as info:
        chunked_product()
    assert str(info.value.__cause__) == (
        "Step 'echo': chunk_size= works with .map(), not .product()."
    )


def test_a_chunk_size_bigger_than_the_output_gives_one_chunk_of_everything():
    assert chunked(chunk_size=50) == [[{"id": i, "text": "a,]" * (i % 3)} for i in range(5)]]


@pipeline
def unpacked_single() -> Any:
    (values,) = echo.map([1, 2, 3]).unpack()
    return values


def test_unpack_of_a_one_output_map_is_one_list_of_its_outputs():
    assert unpacked_single() == [1, 2, 3]


@step
def a_grid() -> np.ndarray:
    return np.array([[1, 2], [3, 4]])


@step
def doubled_item(x: int) -> int:
    return 2 * x


@step
def gathered(values: list) -> list:
    return values


def test_the_items_of_an_array_row_and_of_an_array_are_mapped_as_python_numbers():
    """numpy scalars have no recorded form: mapping over an array output's row failed as if
    the user had passed a literal ("a int64 has no JSON form")."""

    @pipeline(enable_cache=False)
    def rows() -> Any:
        grid = a_grid()
        return (
            gathered(doubled_item.map(grid[0])),
            gathered(doubled_item.map(np.arange(3, dtype=np.int32))),
            gathered(doubled_item.map(np.array([5, 6]), chunk_size=None)),
        )

    assert rows() == ([2, 4], [0, 2, 4], [10, 12])
