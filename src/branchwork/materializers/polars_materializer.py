"""polars DataFrames and Series as Parquet, written and read by polars itself.

Imported by the registry only once polars is already loaded. Parquet holds every polars
dtype but `Object` (arbitrary Python objects), which polars cannot pickle either: saving
such a frame fails with an error saying what to convert.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview
from branchwork.materializers.table_preview import HEAD_COLUMNS, HEAD_ROWS, column_types

FRAME_PARQUET_FILE = "frame.parquet"
SERIES_PARQUET_FILE = "series.parquet"  # the Series as a one-column frame named after it


class PolarsMaterializer(BaseMaterializer):
    """`pl.DataFrame` and `pl.Series`."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pl.DataFrame, pl.Series)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        if type(data) not in (pl.DataFrame, pl.Series):
            save_pickled(self, data)  # a subclass, which Parquet would not give back
            return
        is_series = isinstance(data, pl.Series)
        frame = data.to_frame() if is_series else data
        objects = [name for name, dtype in frame.schema.items() if dtype == pl.Object]
        if objects:
            raise TypeError(
                f"polars stores columns of dtype Object (arbitrary Python objects) neither as "
                f"Parquet nor as a pickle: convert {', '.join(map(repr, objects))} to a polars "
                "dtype (pl.List, pl.Struct, ...) or return the values as a Python list."
            )
        with self._open_write(SERIES_PARQUET_FILE if is_series else FRAME_PARQUET_FILE) as file:
            frame.write_parquet(file)

    def load(self, data_type: type) -> Any:
        stored = self._find_first(FRAME_PARQUET_FILE, SERIES_PARQUET_FILE, PICKLE_FILE)
        if stored.name == PICKLE_FILE:
            return load_pickle(stored.read())
        frame = pl.read_parquet(stored.source(), glob=False)  # a path is one file, no pattern
        return frame.to_series() if stored.name == SERIES_PARQUET_FILE else frame

    def item_count(self, data: Any) -> int | None:
        return len(data)

    @staticmethod
    def select(value: Any, index: int, stop: int | None) -> Any:
        """A frame's row as a dict (a Series' value), or rows as a frame: items are rows."""
        if stop is None and isinstance(value, pl.DataFrame):
            return value.row(index, named=True)
        return value[index] if stop is None else value[index:stop]

    def preview(self, data: Any) -> Preview:
        """Shape, schema and the head as polars prints it."""
        frame = data.to_frame() if isinstance(data, pl.Series) else data
        with pl.Config(tbl_rows=HEAD_ROWS, tbl_cols=HEAD_COLUMNS, fmt_str_lengths=40):
            head = str(frame.head(HEAD_ROWS))
        metadata = {"shape": list(data.shape), "schema": column_types(frame.schema.items())}
        return Preview(text=head, metadata=metadata)
