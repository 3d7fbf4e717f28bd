"""`seconds_between(start, end)`: a step run's duration in seconds, to the microsecond, in the
SQL of the store's database, as one expression that both an index and the queries use.

The store indexes it (`schema`: run, status, step name, seconds), so duration percentiles,
the slowest invocations and the longest of a step are read by walking an index instead of
computing the seconds of every step run: what makes a run of a million steps readable in a
fraction of a second. SQLite and PostgreSQL match an index on an expression only when a
query writes the same expression, so it is rendered here, once, with its constants inline
(a bound parameter would not match).

SQLite keeps times as text ('YYYY-MM-DD HH:MM:SS.ffffff') and its date functions round to the
millisecond: whole seconds come from them, the fraction from the text.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class seconds_between(FunctionElement[float]):  # lower case: it reads as a SQL function
    """`end - start` in seconds (NULL when either is)."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


def _bounds(element: seconds_between, compiler: Any, **kw: Any) -> tuple[str, str]:
    start, end = (compiler.process(clause, **kw) for clause in element.clauses)
    return start, end


@compiles(seconds_between, "sqlite")
def _sqlite(element: seconds_between, compiler: Any, **kw: Any) -> str:
    start, end = _bounds(element, compiler, **kw)
    return (
        f"round((julianday(substr({end}, 1, 19)) - julianday(substr({start}, 1, 19)))"
        f" * 86400.0) + (CAST(substr({end}, 20) AS REAL) - CAST(substr({start}, 20) AS REAL))"
    )


@compiles(seconds_between)
def _standard(element: seconds_between, compiler: Any, **kw: Any) -> str:
    """PostgreSQL (and the SQL standard)."""
    start, end = _bounds(element, compiler, **kw)
    return f"EXTRACT(epoch FROM {end} - {start})"
