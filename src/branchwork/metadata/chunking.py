"""Long id lists cut into chunks for `IN (...)`: SQLite caps the bound parameters of one
statement, and a statement per id would be slow."""

from __future__ import annotations

from collections.abc import Iterable

CHUNK = 500


def chunks(items: Iterable[str]) -> Iterable[list[str]]:
    """The distinct `items`, sorted, in lists of at most CHUNK."""
    ordered = sorted(set(items))
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]
