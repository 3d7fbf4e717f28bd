"""INSERT ... ON CONFLICT DO NOTHING for the dialects we support."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, Table


def insert_ignore(engine: Engine, table: Table) -> Any:
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table).on_conflict_do_nothing()
