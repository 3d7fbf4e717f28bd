"""INSERT ... ON CONFLICT DO NOTHING for the dialects we support."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table


def dialect_insert(engine: Engine, table: Table) -> Any:
    """The dialect's INSERT, which has `on_conflict_do_nothing/do_update` and `excluded`."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def insert_ignore(engine: Engine, table: Table) -> Any:
    return dialect_insert(engine, table).on_conflict_do_nothing()
