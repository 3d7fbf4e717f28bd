"""Store administration beyond `Client`: cheap run listings, artifacts and their versions,
where cached step runs came from, deleting a run, creating a project store, and the schema's
revision. The `branchwork` CLI is its user; everything here is SQLAlchemy Core on `schema`.

Deleting a run removes its rows — step runs with their links, parents and configurations, its
outputs, and its snapshot when no other run uses it — in one transaction, without relying on
ON DELETE CASCADE (so it behaves the same whether or not the database enforces it). An
artifact version goes only when nothing links it any more: a later run served from this run's
cache links the very same version rows, so those stay. Artifact rows are name identities (like
pipelines) that concurrent writers converge on, so they stay too; listings hide artifacts with
no versions. Artifact files are left alone unless `purge_files` is called with what
`delete_run` deleted.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, distinct, func, or_, select, union
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError
from sqlalchemy.sql import Select

from branchwork.config.home import PROJECT_DIR_NAME, store_url
from branchwork.exceptions import BranchworkError, ConfigurationError

# Same-package helpers: one definition of how a version row becomes a response.
from branchwork.metadata.lost import lost_cutoff, lost_status
from branchwork.metadata.queries import _VERSION_COLUMNS, _version, get_run
from branchwork.metadata.schema import (
    artifact,
    artifact_version,
    pipeline_run,
    pipeline_run_output,
    pipeline_snapshot,
    step_configuration,
    step_run,
    step_run_input_artifact,
    step_run_output_artifact,
    step_run_parent,
)
from branchwork.metadata.schema import pipeline as pipeline_table
from branchwork.metadata.store import (
    MIGRATIONS_DIR,
    current_revision,
    get_engine,
    write_transaction,
)
from branchwork.models.responses import ArtifactVersionResponse, PipelineRunResponse

_CHUNK = 500
_UNFINISHED = ("initializing", "running")


def _chunks(items: Iterable[str]) -> Iterable[list[str]]:
    ordered = sorted(set(items))
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i : i + _CHUNK]


# ---- runs ----------------------------------------------------------------------------------


def list_runs(
    engine: Engine,
    pipeline: str | None = None,
    limit: int | None = None,
    statuses: Collection[str] = (),
) -> list[PipelineRunResponse]:
    """Runs newest first, optionally only of one pipeline and in one of `statuses`, without
    their step runs (cheap even for runs of 10,000 steps)."""
    query = (
        select(pipeline_run.c.id)
        .join(pipeline_table, pipeline_table.c.id == pipeline_run.c.pipeline_id)
        .order_by(pipeline_run.c.created.desc())
        .limit(limit)
    )
    if pipeline is not None:
        query = query.where(pipeline_table.c.name == pipeline)
    if statuses:
        query = query.where(lost_status(lost_cutoff()).in_(sorted(statuses)))
    with engine.connect() as conn:
        run_ids = list(conn.execute(query).scalars())
    return [get_run(engine, run_id, include_steps=False) for run_id in run_ids]


def step_counts(engine: Engine, run_ids: list[str]) -> dict[str, int]:
    """Run id -> number of invocations (distinct step-run names) it recorded."""
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for chunk in _chunks(run_ids):
            rows = conn.execute(
                select(step_run.c.run_id, func.count(distinct(step_run.c.name)))
                .where(step_run.c.run_id.in_(chunk))
                .group_by(step_run.c.run_id)
            )
            counts.update({run_id: count for run_id, count in rows})
    return counts


@dataclass(frozen=True)
class StepRunOrigin:
    """Where a step run lives: its run and invocation id (for "cached from")."""

    step_run_id: str
    run_id: str
    run_name: str
    invocation_id: str


def step_run_origins(engine: Engine, step_run_ids: Iterable[str]) -> dict[str, StepRunOrigin]:
    """Step run id -> its run and invocation; ids of deleted step runs are absent."""
    origins: dict[str, StepRunOrigin] = {}
    with engine.connect() as conn:
        for chunk in _chunks(step_run_ids):
            rows = conn.execute(
                select(step_run.c.id, step_run.c.run_id, step_run.c.name, pipeline_run.c.name)
                .join(pipeline_run, pipeline_run.c.id == step_run.c.run_id)
                .where(step_run.c.id.in_(chunk))
            )
            for step_run_id, run_id, invocation_id, run_name in rows:
                origins[step_run_id] = StepRunOrigin(step_run_id, run_id, run_name, invocation_id)
    return origins


# ---- artifacts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactSummary:
    """An artifact name with how many versions it has and when the newest was made."""

    id: str
    name: str
    version_count: int
    latest: datetime


def list_artifacts(engine: Engine) -> list[ArtifactSummary]:
    """Artifacts that have versions, by name."""
    query = (
        select(
            artifact.c.id,
            artifact.c.name,
            func.count(artifact_version.c.id),
            func.max(artifact_version.c.created),
        )
        .join(artifact_version, artifact_version.c.artifact_id == artifact.c.id)
        .group_by(artifact.c.id, artifact.c.name)
        .order_by(artifact.c.name)
    )
    with engine.connect() as conn:
        return [ArtifactSummary(*row) for row in conn.execute(query)]


def _versions_query() -> Select[Any]:
    return select(*_VERSION_COLUMNS).join(artifact, artifact.c.id == artifact_version.c.artifact_id)


def list_artifact_versions(engine: Engine, name: str) -> list[ArtifactVersionResponse]:
    """The versions of the artifact called `name`, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            _versions_query()
            .where(artifact.c.name == name)
            .order_by(artifact_version.c.created.desc())
        ).all()
    if not rows:
        raise BranchworkError(
            f"No artifact named {name!r} (or it has no versions); `branchwork artifacts list` "
            "shows the names."
        )
    return [_version(row, row.artifact_name) for row in rows]


def get_artifact_version(engine: Engine, version_id: str) -> ArtifactVersionResponse:
    """One artifact version by id."""
    with engine.connect() as conn:
        row = conn.execute(
            _versions_query().where(artifact_version.c.id == version_id)
        ).one_or_none()
    if row is None:
        raise BranchworkError(f"No artifact version with id {version_id!r}.")
    return _version(row, row.artifact_name)


def runs_using_version(engine: Engine, version_id: str) -> list[str]:
    """Names of the runs that link a version (as a step output or input, or a run output)."""
    run_ids = union(
        select(step_run.c.run_id)
        .join(step_run_output_artifact, step_run_output_artifact.c.step_run_id == step_run.c.id)
        .where(step_run_output_artifact.c.artifact_version_id == version_id),
        select(step_run.c.run_id)
        .join(step_run_input_artifact, step_run_input_artifact.c.step_run_id == step_run.c.id)
        .where(step_run_input_artifact.c.artifact_version_id == version_id),
        select(pipeline_run_output.c.run_id).where(
            pipeline_run_output.c.artifact_version_id == version_id
        ),
    ).subquery()
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(pipeline_run.c.name)
                .where(pipeline_run.c.id.in_(select(run_ids.c.run_id)))
                .order_by(pipeline_run.c.created)
            ).scalars()
        )


# ---- deleting a run ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeletedRun:
    """What `delete_run` removed, and the versions it produced that other runs still use."""

    run_id: str
    run_name: str
    step_runs: int
    deleted_versions: tuple[ArtifactVersionResponse, ...]
    kept_versions: tuple[str, ...]


def _scalars(conn: Connection, query: Select[Any]) -> set[str]:
    return {str(value) for value in conn.execute(query).scalars()}


def _linked_versions(conn: Connection, version_ids: set[str]) -> set[str]:
    """Which of `version_ids` something still links."""
    linked: set[str] = set()
    for chunk in _chunks(version_ids):
        for table in (step_run_output_artifact, step_run_input_artifact, pipeline_run_output):
            column = table.c.artifact_version_id
            linked |= _scalars(conn, select(column).distinct().where(column.in_(chunk)))
    return linked


def delete_run(engine: Engine, id_or_name: str, force: bool = False) -> DeletedRun:
    """Delete a run and its rows, and the artifact versions nothing else uses; see the
    module docstring. An unfinished run is refused unless `force` (its process is gone)."""
    with write_transaction(engine) as conn:
        run = conn.execute(
            select(
                pipeline_run.c.id,
                pipeline_run.c.name,
                pipeline_run.c.status,
                pipeline_run.c.snapshot_id,
            ).where(or_(pipeline_run.c.id == id_or_name, pipeline_run.c.name == id_or_name))
        ).one_or_none()
        if run is None:
            raise BranchworkError(f"No pipeline run with id or name {id_or_name!r}.")
        if run.status in _UNFINISHED and not force:
            raise BranchworkError(
                f"Run '{run.name}' is {run.status}; deleting it would break its recording. "
                "Wait for it to finish, or force the deletion if its process is gone."
            )
        step_ids = _scalars(conn, select(step_run.c.id).where(step_run.c.run_id == run.id))
        produced: set[str] = set()
        candidates = _scalars(
            conn,
            select(pipeline_run_output.c.artifact_version_id).where(
                pipeline_run_output.c.run_id == run.id
            ),
        )
        for chunk in _chunks(step_ids):
            produced |= _scalars(
                conn,
                select(artifact_version.c.id).where(
                    artifact_version.c.producer_step_run_id.in_(chunk)
                ),
            )
            for table in (step_run_output_artifact, step_run_input_artifact):
                candidates |= _scalars(
                    conn, select(table.c.artifact_version_id).where(table.c.step_run_id.in_(chunk))
                )
        # A version this run only linked may be orphaned too (its producer was deleted before).
        candidates |= produced

        for chunk in _chunks(step_ids):
            conn.execute(
                delete(step_run_parent).where(
                    or_(
                        step_run_parent.c.child_id.in_(chunk),
                        step_run_parent.c.parent_id.in_(chunk),
                    )
                )
            )
            for table in (step_run_input_artifact, step_run_output_artifact):
                conn.execute(delete(table).where(table.c.step_run_id.in_(chunk)))
            conn.execute(
                delete(step_configuration).where(step_configuration.c.step_run_id.in_(chunk))
            )
        conn.execute(delete(pipeline_run_output).where(pipeline_run_output.c.run_id == run.id))
        conn.execute(delete(step_run).where(step_run.c.run_id == run.id))
        conn.execute(delete(pipeline_run).where(pipeline_run.c.id == run.id))
        shared = conn.execute(
            select(pipeline_run.c.id).where(pipeline_run.c.snapshot_id == run.snapshot_id).limit(1)
        ).first()
        if shared is None:
            conn.execute(
                delete(step_configuration).where(
                    step_configuration.c.snapshot_id == run.snapshot_id
                )
            )
            conn.execute(delete(pipeline_snapshot).where(pipeline_snapshot.c.id == run.snapshot_id))

        still_linked = _linked_versions(conn, candidates)
        orphaned = candidates - still_linked
        deleted: list[ArtifactVersionResponse] = []
        for chunk in _chunks(orphaned):
            rows = conn.execute(_versions_query().where(artifact_version.c.id.in_(chunk))).all()
            deleted.extend(_version(row, row.artifact_name) for row in rows)
            conn.execute(delete(artifact_version).where(artifact_version.c.id.in_(chunk)))
    return DeletedRun(
        run_id=run.id,
        run_name=run.name,
        step_runs=len(step_ids),
        deleted_versions=tuple(sorted(deleted, key=lambda v: v.created)),
        kept_versions=tuple(sorted(produced & still_linked)),
    )


def purge_files(
    engine: Engine, versions: Iterable[ArtifactVersionResponse]
) -> tuple[list[str], list[tuple[str, str]]]:
    """Remove the artifact folders of deleted versions that no remaining version points at.

    Returns (removed URIs, [(URI, reason)] for those that could not be removed).
    """
    from branchwork.artifact_stores import artifact_store_for_uri

    uris = {version.uri for version in versions}
    with engine.connect() as conn:
        for chunk in _chunks(uris):
            uris -= _scalars(
                conn, select(artifact_version.c.uri).where(artifact_version.c.uri.in_(chunk))
            )
    removed: list[str] = []
    failed: list[tuple[str, str]] = []
    for uri in sorted(uris):
        try:
            store = artifact_store_for_uri(uri)
            if not store.exists(uri):
                continue
            if not store.isdir(uri):
                failed.append((uri, "not an artifact folder"))
                continue
            store.rmtree(uri)
            removed.append(uri)
        except OSError as error:
            failed.append((uri, str(error)))
    return removed, failed


# ---- store setup and schema ----------------------------------------------------------------


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
