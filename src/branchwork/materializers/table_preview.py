"""Bounded preview parts shared by the table materializers (pandas, polars, pyarrow).

Import-light: it imports no table library, so each materializer module imports only its own.
A preview's metadata is dropped whole when its JSON passes `preview.METADATA_LIMIT`, so every
part here is bounded in columns and characters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import islice
from typing import Any

HEAD_ROWS = 10  # rows shown as a table's head
HEAD_COLUMNS = 12  # columns shown in it
SCHEMA_COLUMNS = 40  # columns listed with their type
NAME_LIMIT = 40  # characters of a column name kept
TYPE_LIMIT = 60  # characters of a column type kept (a struct's type can be long)


def short_name(name: Any) -> str:
    """A column name cut to NAME_LIMIT characters, keeping its end: long names often differ
    only there (`feature_..._12`)."""
    text = str(name)
    return text if len(text) <= NAME_LIMIT else f"{text[: NAME_LIMIT - 21]}…{text[-20:]}"


def column_types(columns: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """{column name: type name} of the first SCHEMA_COLUMNS columns, names cut short."""
    return {
        short_name(name): str(kind)[:TYPE_LIMIT] for name, kind in islice(columns, SCHEMA_COLUMNS)
    }


def json_number(value: Any) -> float | int | None:
    """A statistic as JSON can hold it: numpy scalars as Python numbers, exact (rounded, a
    column's max of 4999999.0 read 5000000.0, a value not in it), NaN and infinities (which
    JavaScript's JSON.parse refuses) as None."""
    number = value.item() if hasattr(value, "item") else value
    if isinstance(number, int):
        return int(number)  # a bool too
    number = float(number)
    return number if math.isfinite(number) else None
