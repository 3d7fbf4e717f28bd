"""Setting a store up and reporting on it: a project's own store, where the configured store
is (password hidden), its schema revision against the newest, and migrating it on request.
Unlike `store.get_engine()`, nothing here migrates a store it only reports on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError

from branchwork.config.home import PROJECT_DIR_NAME, store_url
from branchwork.exceptions import ConfigurationError
from branchwork.metadata.store import (
    MIGRATIONS_DIR,
    current_revision,
    get_engine,
    known_revisions,
)


def init_project_store(directory: Path) -> tuple[Path, bool]:
    """Create `directory/.branchwork/` with a migrated SQLite store; (its path, existed)."""
    home = directory.expanduser().resolve() / PROJECT_DIR_NAME
    existed = (home / "branchwork.db").is_file()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"Cannot create {home}: {error.strerror}.") from error
    get_engine(f"sqlite:///{home / 'branchwork.db'}")  # the URL config.home.store_url() makes
    return home, existed


_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def display_url(url: str) -> str:
    """`url` with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD.sub(r"\1***@", url)


@dataclass(frozen=True)
class StoreStatus:
    """The configured store (password hidden), its schema revision and the newest one."""

    url: str
    exists: bool
    revision: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.revision == self.head

    @property
    def newer(self) -> bool:
        """Migrated by a newer branchwork: this one has no migration of its revision."""
        return self.revision is not None and self.revision not in known_revisions()


def head_revision() -> str:
    """The newest migration, as Alembic sees it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS_DIR)).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def _open_unmigrated(url: str) -> Engine:
    # store.get_engine() migrates on open, which would hide what `db status` reports.
    from branchwork.metadata.store import _create_engine

    return _create_engine(url)


def store_status(url: str | None = None) -> StoreStatus:
    """Where the store is and whether its schema is current; never migrates or creates it."""
    url = url or store_url()
    shown = display_url(url)
    path = _sqlite_file(url)
    if path is not None and not path.exists():
        return StoreStatus(shown, False, None, head_revision())
    engine = _open_unmigrated(url)
    try:
        revision = current_revision(engine)
    except (OperationalError, DatabaseError) as error:
        raise ConfigurationError(
            f"Cannot read the metadata store at {shown}: {error.orig}"
        ) from error
    finally:
        engine.dispose()
    return StoreStatus(shown, True, revision, head_revision())


def upgrade_store(url: str | None = None) -> tuple[str | None, str | None]:
    """Migrate the store to the newest schema; (revision before, revision after)."""
    from branchwork.metadata.store import upgrade

    url = url or store_url()
    before = store_status(url).revision
    path = _sqlite_file(url)
    if path is not None:  # a new SQLite store's folder is made, as the home's is
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = _open_unmigrated(url)
    try:
        upgrade(engine)  # Alembic's "upgrade head": a no-op when already there
        return before, current_revision(engine)
    except (OperationalError, DatabaseError) as error:
        raise ConfigurationError(
            f"Cannot migrate the metadata store at {display_url(url)}: {error.orig}"
        ) from error
    finally:
        engine.dispose()
