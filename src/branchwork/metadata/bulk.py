"""Bulk writes for the recorder's hot path: compiled once, executed through the driver.

A SQLAlchemy Core `execute(insert, rows)` spends far more time building parameters than the
database spends writing a small row. The recorder writes several small rows per step, so each
statement is compiled once per engine, rows are bound with the column types' own bind
processors (so values read back exactly as through SQLAlchemy), and the driver's
executemany runs them. Rows are dicts, or tuples in the order of the `columns` given: a
fan-in's links (a million inputs) then cost a tuple each, handed to SQLite's driver as
they are.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine
from sqlalchemy.sql import ClauseElement


class BulkStatement:
    """One compiled statement with the bind processors of its parameters."""

    def __init__(
        self, engine: Engine, statement: ClauseElement, columns: Sequence[str] | None = None
    ) -> None:
        compiled: Any = statement.compile(dialect=engine.dialect)
        self.sql = compiled.string
        names = (
            list(compiled.positiontup or []) if engine.dialect.positional else list(compiled.binds)
        )
        self.positional = engine.dialect.positional
        self.names = names
        self.processors = [
            compiled.binds[name].type._cached_bind_processor(engine.dialect) for name in names
        ]
        self.keys = [compiled.binds[name].key for name in names]

        # A row's values in one C call, then the few that have a bind processor converted.
        self._values_of = operator.itemgetter(*self.keys) if len(self.keys) > 1 else None
        self._converted = [(i, proc) for i, proc in enumerate(self.processors) if proc]
        self.columns = columns
        # Tuples the driver takes as they are: positional, in its order, nothing to convert.
        self._tuples_as_is = (
            self.positional and list(columns or ()) == self.keys and not any(self.processors)
        )

    def _bound(self, row: Any) -> Any:
        if self.columns is not None:  # a tuple the driver cannot take as it is
            row = dict(zip(self.columns, row))
        values = list(self._values_of(row)) if self._values_of else [row[self.keys[0]]]
        for index, process in self._converted:
            if values[index] is not None:
                values[index] = process(values[index])
        return tuple(values) if self.positional else dict(zip(self.names, values))

    def execute(self, conn: Connection, rows: Sequence[Any]) -> None:
        if self._tuples_as_is:
            conn.exec_driver_sql(self.sql, list(rows))
        else:
            conn.exec_driver_sql(self.sql, [self._bound(row) for row in rows])

    def execute_one(self, conn: Connection, row: dict[str, Any]) -> CursorResult[Any]:
        """Execute for one row; the result holds what a RETURNING clause returns."""
        return conn.exec_driver_sql(self.sql, self._bound(row))
