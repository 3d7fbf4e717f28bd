"""Pipelines that map steps over other steps' outputs (tests/steps/test_map_over_data.py), in a
module of their own so that isolated orchestrators can import them."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import pandas as pd

from branchwork import pipeline, step

RECORDS = 1500  # more than INDEXED_LIST_ITEMS: each item is read alone through the offsets


@step
def records(n: int) -> list:
    """Items whose JSON holds commas and brackets, so a naive split would cut them wrong."""
    return [{"id": i, "text": "a,]" * (i % 3)} for i in range(n)]


@step
def matrix(n: int) -> np.ndarray:
    return np.arange(3 * n).reshape(n, 3)


@step
def frame(n: int) -> pd.DataFrame:
    """Rows labelled 100, 102, 104 ...: an item must keep its label."""
    return pd.DataFrame({"x": range(n)}, index=pd.RangeIndex(100, 100 + 2 * n, 2))


@step
def measure(record: dict) -> tuple[Annotated[int, "id"], Annotated[int, "length"]]:
    return record["id"], len(record["text"])


@step
def label(item: Any) -> int:
    """A row's label: a Series' name, an array row's first value."""
    return int(item.name) if isinstance(item, pd.Series) else int(item[0])


@step
def describe_chunk(chunk: Any) -> dict:
    """What a mapped step got: its type, how many items, the first one's label."""
    if isinstance(chunk, pd.DataFrame):
        first = int(chunk.index[0])
    elif isinstance(chunk, np.ndarray):
        first = int(chunk[0][0])
    else:
        first = chunk[0]["id"]
    return {"type": type(chunk).__name__, "items": len(chunk), "first": first}


@step
def total(values: list) -> int:
    return sum(values)


@pipeline
def map_records(n: int, chunk_size: int) -> Any:
    """Dynamic: measure ... measure_<n> (two outputs, unpacked), describe_chunk per chunk."""
    rows = records(n)
    ids, lengths = measure.map(rows).unpack()
    return total(ids), total(lengths), describe_chunk.map(rows, chunk_size=chunk_size)


@pipeline
def map_tables(n: int, chunk_size: int) -> Any:
    """Dynamic: an array's and a DataFrame's rows, one at a time and in chunks."""
    array, table = matrix(n), frame(n)
    return (
        label.map(array),
        label.map(table),
        describe_chunk.map(array, chunk_size=chunk_size),
        describe_chunk.map(table, chunk_size=chunk_size),
    )
