"""Opening the metadata store: one SQLAlchemy engine per URL, migrated to the newest schema.

SQLite (the default) runs in WAL mode with `synchronous=NORMAL`: a committed transaction
survives the writing process being killed, readers never block the writer, and a busy
timeout lets several processes share one file. Migrations are Alembic's; to keep every run
from importing Alembic, the schema revision is read directly and compared with `HEAD_REVISION`
(a test keeps that constant equal to the newest migration).

Processes that find the store behind (a team's jobs starting at once on a new store) migrate it
one at a time: the migration transaction holds SQLite's write lock (BEGIN IMMEDIATE) or, on
PostgreSQL, an advisory lock, and reads the revision again under it, so the processes that
waited find the work done and carry on.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError

from branchwork.config.environment import seconds_from_env
from branchwork.config.home import store_url
from branchwork.exceptions import ConfigurationError, StoreUnavailableError

HEAD_REVISION = "0018"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed 64-bit number will do, as long as every branchwork process uses the same one.
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"branchwork-migrations").digest()[:8], "big", signed=True
)

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 opens transactions lazily and not for DDL; take control so that
    # SQLAlchemy's BEGIN is the real one (needed for transactional migrations too).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(1000 * busy_timeout())}")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Put the file in WAL mode. Processes opening a new file at once all read it, then each
    wants it alone for the switch: SQLite answers "locked" at once to all but one rather than
    wait (the busy timeout does not apply, waiting could deadlock), so they try again."""
    import sqlite3

    deadline = time.monotonic() + busy_timeout()
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def busy_timeout() -> float:
    """Seconds a writer waits for another process's lock ($BRANCHWORK_SQLITE_BUSY_TIMEOUT)."""
    return seconds_from_env("BRANCHWORK_SQLITE_BUSY_TIMEOUT", 30.0)


_writing: ContextVar[bool] = ContextVar("branchwork_store_writing", default=False)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes. On SQLite it takes the write lock at BEGIN (IMMEDIATE), so
    concurrent writers wait for each other (busy timeout) instead of failing on lock upgrade;
    reads keep a plain BEGIN and never take it."""
    token = _writing.set(True)
    try:
        with engine.begin() as conn:
            yield conn
    finally:
        _writing.reset(token)


def _begin_sqlite(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if _writing.get() else "BEGIN")


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: the configured store), created and migrated once."""
    url = url or store_url()
    engine = _engines.get(url)
    if engine is not None:
        return engine
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            upgrade_if_needed(engine)
            _engines[url] = engine
    return engine


def _create_engine(url: str) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False})
            event.listen(engine, "connect", _configure_sqlite)
            event.listen(engine, "begin", _begin_sqlite)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except Exception as error:  # bad URL, missing driver
        raise ConfigurationError(
            f"Cannot open the metadata store at {_masked(url)!r}: {error}. "
            "Check BRANCHWORK_STORE_URL."
        ) from None
    return engine


def _masked(url: str | URL) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


def current_revision(engine: Engine) -> str | None:
    """The schema revision the store is at, or None for an empty store."""
    with engine.connect() as conn:
        return _revision_on(conn)


def _revision_on(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_if_needed(engine: Engine) -> None:
    """Bring the store to HEAD_REVISION, importing Alembic only when there is work to do. A
    database server is waited for as long as any store operation (`metadata.retries`): a run
    started while PostgreSQL restarted failed at once. (A SQLite file that cannot be opened
    will not open later.)"""
    from branchwork.metadata.retries import retrying

    revision = current_revision
    if engine.dialect.name != "sqlite":
        revision = retrying("connecting to it")(_revision_unless_refused)
    try:
        if revision(engine) != HEAD_REVISION:
            upgrade(engine)
    except StoreUnavailableError as unavailable:
        cause = unavailable.__cause__
        assert isinstance(cause, DBAPIError)
        raise ConfigurationError(_unusable_store_message(engine.url, cause)) from cause
    except (OperationalError, DatabaseError) as error:
        raise ConfigurationError(_unusable_store_message(engine.url, error)) from error


def _revision_unless_refused(engine: Engine) -> str | None:
    """`current_revision`, where a server that answered with a refusal (a wrong password,
    no such database) is a ConfigurationError at once, not waited for. The driver gives a
    refused connection no SQLSTATE: the server's own `FATAL:` line tells it, except while
    the server starts or stops ("the database system is starting up"), which passes."""
    try:
        return current_revision(engine)
    except OperationalError as error:
        said = str(error.orig)
        if "FATAL:" in said and "the database system is" not in said:
            raise ConfigurationError(_unusable_store_message(engine.url, error)) from error
        raise


def _unusable_store_message(url: URL, error: DBAPIError) -> str:
    """Why the store cannot be used and what to do, in the terms of the database in use."""
    if url.get_backend_name() == "sqlite":
        return (
            f"The SQLite metadata store {url.database!r} cannot be opened or migrated: "
            f"{error.orig}. If it is corrupt, move it away; if it is locked, stop the "
            "process holding it."
        )
    server = "PostgreSQL" if url.get_backend_name() == "postgresql" else url.get_backend_name()
    return (
        f"The {server} metadata store at {_masked(url)!r} could not be reached or migrated: "
        f"{error.orig}. Check that the {server} server is running and BRANCHWORK_STORE_URL "
        "is right."
    )


def alembic_config(connection: Any = None) -> Any:
    """Alembic's configuration; migrations run on `connection` (see migrations/env.py)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to `revision` in one transaction, one process at a time. A
    store a newer branchwork migrated is refused, saying so (Alembic's "Can't locate
    revision" sent every command of a team member not yet upgraded to `db upgrade`)."""
    with migrating(engine) as conn:
        found = _revision_on(conn)
        if revision == "head" and found == HEAD_REVISION:
            return  # migrated by another process while this one waited
        check_known_revision(engine.url.render_as_string(hide_password=True), found, "use it")
        with _alembic_quiet():
            from alembic import command

            command.upgrade(alembic_config(conn), revision)


@contextmanager
def _alembic_quiet() -> Iterator[None]:
    """Alembic's INFO records (its plugins as it is imported, each migration) stay out of a
    program that logs at INFO, unless it set a level for them: they told a user of a new
    store nothing."""
    alembic = logging.getLogger("alembic")
    unset = alembic.level == logging.NOTSET
    if unset:
        alembic.setLevel(logging.WARNING)
    try:
        yield
    finally:
        if unset:
            alembic.setLevel(logging.NOTSET)


def check_known_revision(shown: str, revision: str | None, to_do: str) -> None:
    """Refuse a store at a schema revision this branchwork has no migration of."""
    if revision is not None and revision not in known_revisions():
        raise ConfigurationError(
            f"The store at {shown} is at schema revision {revision}, newer than this "
            f"branchwork knows (its newest is {HEAD_REVISION}): upgrade branchwork to {to_do}."
        )


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}


@contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """The write transaction migrations run in, one process at a time.

    On SQLite, foreign keys are off meanwhile: Alembic alters a table by rebuilding it (copy,
    drop, rename), and dropping the old table with them on deletes, by cascade, every row
    that refers to it (a step run's logs, parents, configurations and artifact links).
    """
    with engine.connect() as conn:
        driver = conn.connection.driver_connection if conn.dialect.name == "sqlite" else None
        if driver is not None:  # outside any transaction: SQLite ignores it inside one
            driver.execute("PRAGMA foreign_keys=OFF")
        token = _writing.set(True)
        try:
            with conn.begin():
                _wait_for_other_migrations(conn)
                yield conn
        finally:
            _writing.reset(token)
            # A Ctrl-C in the migration invalidates (closes) the connection, which the pool
            # then replaces: restoring the pragma on it would hide the interrupt.
            if driver is not None and not conn.invalidated:
                driver.execute("PRAGMA foreign_keys=ON")


def _wait_for_other_migrations(conn: Connection) -> None:
    """Hold other processes' migrations back until this transaction ends. On SQLite its
    BEGIN IMMEDIATE already did; PostgreSQL needs an advisory lock, since two transactions
    creating the same table collide ("duplicate key ... pg_type_typname_nsp_index")."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


def dispose_engines() -> None:
    """Close every pooled connection (tests switching stores, forked children)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
