"""Copying one metadata store into another (`branchwork db migrate-to`): a laptop's SQLite
history into a team's PostgreSQL, and optionally its artifact files into the team's store.

- Generic over the schema: every table of `schema.metadata`, parents before children
  (`sorted_tables`), every column; a table that a later migration adds is copied too. Not
  copied: a big run's kept figures (`run_summary`), derived from its step runs when it ended;
  a second copy after the run was resumed would add the new step runs under figures of the
  run as it was first copied. The target reads copied runs from their step runs.
- Both stores at this branchwork's newest schema: the target is migrated first (Alembic); a
  source behind it is refused (migrating it is its owner's call: `branchwork db upgrade`),
  and so is a store newer than this branchwork (its tables may hold columns we would drop).
- Idempotent and resumable: the source is read in primary-key order, in batches, inside one
  read transaction (a consistent snapshot while runs go on writing to it); each batch goes
  into the target with insert-ignore in a transaction of its own. Rows already there are
  skipped, so a rerun after an interruption completes the copy, and a second copy copies
  nothing — except rows that change once written (`_PROGRESS`: a run resumed or finished, a
  step run finished or its result invalidated, a question answered) that got further in the
  source since: those are updated, never taken back to an earlier state.
- Rows a unique key identifies (a stack or a component by its name: every store has its own
  "default" stack) that the target already holds under another id are the same thing: rows
  that refer to them are pointed at the target's row.
- Artifact version numbers are given per artifact by the store that holds them: a copied
  version whose number the target already gave to another version of that artifact (two
  laptops ran the same pipeline) is numbered after the target's last, as a new run would be.

The artifact files themselves are `artifact_copy`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Table,
    UniqueConstraint,
    bindparam,
    select,
    tuple_,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from branchwork.exceptions import BranchworkError, ConfigurationError
from branchwork.metadata import schema
from branchwork.metadata.chunking import CHUNK
from branchwork.metadata.lost import LOST_TYPE
from branchwork.metadata.store import check_known_revision, get_engine, write_transaction
from branchwork.metadata.store_admin import display_url, store_status, upgrade_store
from branchwork.metadata.upsert import insert_ignore

BATCH = 2000  # rows read and inserted at a time
Key = tuple[Any, ...]  # a row's primary key
Remap = dict[str, dict[Any, Any]]  # table -> {source id: the target's id for the same thing}


@dataclass
class TableCopy:
    """How many rows of one table were copied, how many the target already had, and how
    many of those it had were updated (they got further in the source)."""

    table: str
    copied: int = 0
    already_there: int = 0
    updated: int = 0


_NEVER = datetime(1, 1, 1)
# How far a row that changes once written has got, by table: where the source's has got
# further than the target's copy, the copy is updated. A run's latest session starts later
# than its earlier ones', and ends; a step run ends, then may be invalidated; a question is
# answered. A run or an attempt the target recorded lost (reaped there while the copy read
# it running) had not got as far as the source's that ended for real.
_PROGRESS: dict[str, Callable[[Mapping[str, Any]], tuple[Any, ...]]] = {
    "pipeline_run": lambda row: (
        row["start_time"] or _NEVER,
        row["end_time"] is not None,
        row["exception_type"] != LOST_TYPE,
        row["end_time"] or _NEVER,
    ),
    "step_run": lambda row: (
        row["end_time"] is not None,
        row["exception_type"] != LOST_TYPE,
        bool(row["cache_invalidated"]),
    ),
    "run_wait": lambda row: (row["answered"] is not None,),
}


Progress = Callable[[TableCopy, bool], None]  # after each batch; True once the table is done


@dataclass(frozen=True)
class CopyPlan:
    """Two checked stores, the target migrated: (displayed URLs, target revision before)."""

    source_url: str
    target_url: str
    target_revision_before: str | None

    @property
    def source(self) -> str:
        return display_url(self.source_url)

    @property
    def target(self) -> str:
        return display_url(self.target_url)


def prepare_copy(source_url: str, target_url: str) -> CopyPlan:
    """Refuse what cannot be copied (the same store, a schema this branchwork does not know,
    a source behind), then bring the target to the newest schema."""
    if _store_identity(source_url) == _store_identity(target_url):
        raise ConfigurationError(
            f"{display_url(target_url)} is the store being copied: give the URL of another "
            "store to copy it into."
        )
    if _in_memory(target_url):
        raise ConfigurationError(
            f"{display_url(target_url)} is an in-memory database, gone when this command "
            "ends: give the URL of a store that lasts (sqlite:////path/to/branchwork.db)."
        )
    source = store_status(source_url)
    if not source.exists:
        raise ConfigurationError(
            f"There is no store at {source.url} to copy: nothing has been recorded there yet."
        )
    check_known_revision(source.url, source.revision, "copy from it")
    if not source.up_to_date:
        raise ConfigurationError(
            f"The store at {source.url} is at schema revision {source.revision or 'none'}, "
            f"behind this branchwork's {source.head}: run `branchwork db upgrade` first."
        )
    target = store_status(target_url)
    check_known_revision(target.url, target.revision, "copy into it")
    before, _ = upgrade_store(target_url)
    return CopyPlan(source_url, target_url, before)


def _store_identity(url: str) -> tuple[Any, ...]:
    """What tells two stores apart: the database file, or the server and database (not the
    driver, the user or the password)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError(
            f"{display_url(url)!r} is not a store URL: give one like "
            "postgresql+psycopg://user@host/branchwork or sqlite:////path/to/branchwork.db."
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return (backend, str(Path(parsed.database or ":memory:").expanduser().resolve()))
    host = parsed.host or parsed.query.get("host")
    port = parsed.port or parsed.query.get("port")
    return (backend, host, port, parsed.database)


def _in_memory(url: str) -> bool:
    """A SQLite database kept in this process's memory: a copy into it was reported done,
    and thrown away as the command ended."""
    parsed = make_url(url)
    database = parsed.database or ""
    return parsed.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or parsed.query.get("mode") == "memory"
    )


# ---- rows ----------------------------------------------------------------------------------


def copy_rows(plan: CopyPlan, progress: Progress | None = None) -> list[TableCopy]:
    """Copy every table's rows the target does not have yet; see the module docstring."""
    source, target = get_engine(plan.source_url), get_engine(plan.target_url)
    remap: Remap = {}
    copies: list[TableCopy] = []
    with _snapshot(source) as reading:
        for table in schema.metadata.sorted_tables:
            if table is schema.run_summary:
                continue
            copy = TableCopy(table.name)
            for batch in _batches(reading, table):
                rows = [_remapped(table, row, remap) for row in batch]
                with write_transaction(target) as writing:
                    _copy_batch(writing, table, rows, copy, remap)
                if progress is not None:
                    progress(copy, False)
            copies.append(copy)
            if progress is not None:
                progress(copy, True)
    return copies


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One read transaction over the whole copy: REPEATABLE READ where the database has
    it (SQLite's transactions are snapshots already)."""
    with engine.connect() as conn:
        if engine.dialect.name != "sqlite":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def _primary_key(table: Table) -> list[Column[Any]]:
    columns = list(table.primary_key.columns)
    if not columns:
        raise BranchworkError(f"Table {table.name} has no primary key: it cannot be copied.")
    return columns


def _batches(conn: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    query = select(table).order_by(*_primary_key(table))
    result = conn.execution_options(yield_per=BATCH).execute(query)
    for partition in result.mappings().partitions():
        yield [dict(row) for row in partition]


def _remapped(table: Table, row: dict[str, Any], remap: Remap) -> dict[str, Any]:
    """`row` with references to rows the target holds under another id pointed at them."""
    for key in table.foreign_keys:
        mapping = remap.get(key.column.table.name)
        if mapping and row[key.parent.key] in mapping:
            row[key.parent.key] = mapping[row[key.parent.key]]
    return row


def _copy_batch(
    conn: Connection, table: Table, rows: list[dict[str, Any]], copy: TableCopy, remap: Remap
) -> None:
    """One batch into the target (inside its transaction), counted in `copy`; rows the
    target holds under another id are added to `remap`."""
    if table is schema.artifact_version:
        _number_versions(conn, rows)
    landed = _insert(conn, table, rows)
    copy.copied += len(landed)
    copy.already_there += len(rows) - len(landed)
    pk = _primary_key(table)
    skipped = [row for row in rows if _key(row, pk) not in landed]
    present = _existing(conn, pk, [_key(row, pk) for row in skipped]) if skipped else set()
    progress = _PROGRESS.get(table.name)
    if progress is not None and present:
        held = [row for row in skipped if _key(row, pk) in present]
        copy.updated += _update_further(conn, table, held, progress)
    others = [row for row in skipped if _key(row, pk) not in present]
    if not others:
        return
    if not _identified_by_unique_keys(table):
        raise BranchworkError(
            f"{len(others)} rows of table {table.name} collide with other rows of the target "
            "on a unique key (a run writing there meanwhile?): run the copy again."
        )
    remap.setdefault(table.name, {}).update(_same_rows(conn, table, others))


def _key(row: dict[str, Any], columns: Sequence[Column[Any]]) -> Key:
    return tuple(row[column.key] for column in columns)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> set[Key]:
    """Insert the rows the target does not have (by any unique key); the keys inserted."""
    pk = _primary_key(table)
    statement = insert_ignore(conn.engine, table).returning(*pk)
    return {tuple(found) for found in conn.execute(statement, rows)}


def _update_further(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    progress: Callable[[Mapping[str, Any]], tuple[Any, ...]],
) -> int:
    """Update the target's copies of `rows` that the source's have got further than; how
    many."""
    pk = _primary_key(table)
    held: dict[Key, tuple[Any, ...]] = {}
    for start in range(0, len(rows), CHUNK):
        keys = [_key(row, pk) for row in rows[start : start + CHUNK]]
        found = conn.execute(select(table).where(tuple_(*pk).in_(keys))).mappings()
        held.update((_key(dict(row), pk), progress(dict(row))) for row in found)
    further = [row for row in rows if progress(row) > held.get(_key(row, pk), progress(row))]
    if further:
        update = table.update().where(*(column == bindparam(f"k_{column.key}") for column in pk))
        values: dict[str, Any] = {c.key: bindparam(f"v_{c.key}") for c in table.columns}
        conn.execute(
            update.values(values),
            [
                {
                    **{f"k_{column.key}": row[column.key] for column in pk},
                    **{f"v_{key}": value for key, value in row.items()},
                }
                for row in further
            ],
        )
    return len(further)


def _existing(conn: Connection, columns: Sequence[Column[Any]], keys: Sequence[Key]) -> set[Key]:
    """Which of `keys` (values of `columns`) the target has."""
    found: set[Key] = set()
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        where = (
            columns[0].in_([key[0] for key in chunk])
            if len(columns) == 1
            else tuple_(*columns).in_(chunk)
        )
        found.update(tuple(row) for row in conn.execute(select(*columns).where(where)))
    return found


def _unique_keys(table: Table) -> list[list[Column[Any]]]:
    """The columns of each unique constraint and unique index besides the primary key."""
    constraints = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    return [list(c.columns) for c in constraints] + [
        list(index.columns) for index in table.indexes if index.unique
    ]


def _identified_by_unique_keys(table: Table) -> bool:
    """Whether a unique key names the thing a row is (not a version number: see
    `_number_versions`), so a row the target holds under another id is the same thing."""
    return (
        len(table.primary_key.columns) == 1
        and table is not schema.artifact_version
        and bool(_unique_keys(table))
    )


def _same_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> dict[Any, Any]:
    """{source id: target id} for rows the target holds under another id, found by the
    unique key they collided on."""
    (pk,) = _primary_key(table)
    found: dict[Any, Any] = {}
    for row in rows:
        for columns in _unique_keys(table):
            query = select(pk).where(*(column == row[column.key] for column in columns))
            target_id = conn.execute(query).scalar()
            if target_id is not None:
                found[row[pk.key]] = target_id
                break
        else:
            raise BranchworkError(
                f"Row {row[pk.key]} of table {table.name} was neither copied nor found in the "
                "target (deleted there meanwhile?): run the copy again."
            )
    return found


def _number_versions(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Give the batch's new versions numbers free in the target, and raise each artifact's
    `version_count` to the numbers it holds (see the module docstring)."""
    versions, artifacts = schema.artifact_version, schema.artifact
    present = _existing(conn, [versions.c.id], [(row["id"],) for row in rows])
    new = [row for row in rows if (row["id"],) not in present]
    if not new:
        return
    pairs = [(row["artifact_id"], row["version"]) for row in new]
    taken = _existing(conn, [versions.c.artifact_id, versions.c.version], pairs)
    ids = sorted({row["artifact_id"] for row in new})
    query = select(artifacts.c.id, artifacts.c.version_count).where(artifacts.c.id.in_(ids))
    counts: dict[str, int] = {row.id: row.version_count for row in conn.execute(query)}
    before = dict(counts)
    for row in sorted(new, key=lambda row: (row["artifact_id"], row["version"])):
        artifact = row["artifact_id"]
        if (artifact, row["version"]) in taken:
            row["version"] = counts[artifact] = counts.get(artifact, 0) + 1
        taken.add((artifact, row["version"]))
        counts[artifact] = max(counts.get(artifact, 0), row["version"])
    changed = [{"b_id": id_, "b_count": n} for id_, n in counts.items() if n != before.get(id_)]
    if changed:
        update = artifacts.update().where(artifacts.c.id == bindparam("b_id"))
        conn.execute(update.values(version_count=bindparam("b_count")), changed)
