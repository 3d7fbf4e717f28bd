"""pyarrow Tables as Parquet, or as an Arrow IPC file when Parquet cannot hold them exactly.

Imported by the registry only once pyarrow is already loaded. Parquet has no union or
interval types and coerces some others (second-precision timestamps and times, date64,
dictionaries of non-strings); the schema read back from an empty table's Parquet file tells
whether a table comes back as it was, before the table itself is written. The Arrow IPC
format holds every Arrow type, so a table is never pickled.
"""

from __future__ import annotations

import io
from typing import Any, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.preview import Preview, short_repr
from branchwork.materializers.table_preview import HEAD_COLUMNS, HEAD_ROWS, column_types

TABLE_PARQUET_FILE = "table.parquet"
TABLE_ARROW_FILE = "table.arrow"  # the Arrow IPC file format (Feather v2), uncompressed
# Non-compliant nested types keep Arrow's list item names ("item", not "element").
PARQUET_OPTIONS: dict[str, Any] = {"use_compliant_nested_type": False}


class PyarrowTableMaterializer(BaseMaterializer):
    """`pa.Table`."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (pa.Table,)
    HASH_FROM_WRITES = True

    def save(self, data: Any) -> None:
        if _parquet_keeps(data.schema):
            with self._open_write(TABLE_PARQUET_FILE) as file:
                pq.write_table(data, file, **PARQUET_OPTIONS)
            return
        with (
            self._open_write(TABLE_ARROW_FILE) as file,
            pa.ipc.new_file(file, data.schema) as writer,
        ):
            writer.write_table(data)

    def load(self, data_type: type) -> Any:
        stored = self._find_first(TABLE_PARQUET_FILE, TABLE_ARROW_FILE)
        if stored.name == TABLE_PARQUET_FILE:
            return pq.read_table(stored.arrow_source(), use_threads=stored.worth_threads)
        return pa.ipc.open_file(stored.arrow_source()).read_all()

    def item_count(self, data: Any) -> int | None:
        return int(data.num_rows)

    @staticmethod
    def select(value: Any, index: int, stop: int | None) -> Any:
        """A row as a dict, or rows as a table: items are rows."""
        if stop is None:
            return value.slice(index, 1).to_pylist()[0]
        return value.slice(index, max(0, stop - index))

    def preview(self, data: Any) -> Preview:
        """Shape, schema and the first rows, one line each."""
        columns = data.column_names[:HEAD_COLUMNS]
        rows = data.select(columns).slice(0, HEAD_ROWS).to_pylist()
        text = "\n".join(
            ", ".join(f"{name}: {short_repr(value)}" for name, value in row.items()) for row in rows
        )
        metadata = {
            "shape": list(data.shape),
            "schema": column_types(zip(data.column_names, data.schema.types)),
        }
        return Preview(text=text, metadata=metadata)


def _parquet_keeps(schema: pa.Schema) -> bool:
    """Whether Parquet gives back tables of `schema` as they are: what it does to a type does
    not depend on the values, so an empty table written with the schema tells, with the schema
    read back from the file's footer."""
    buffer = io.BytesIO()
    try:
        pq.write_table(schema.empty_table(), buffer, **PARQUET_OPTIONS)
    except pa.ArrowException:  # e.g. a type Parquet lacks: unions, intervals
        return False
    read_schema = pq.read_schema(pa.BufferReader(buffer.getvalue()))
    return bool(read_schema.equals(schema, check_metadata=True))
