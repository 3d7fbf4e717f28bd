"""Deleting a run: its rows, the artifact versions nothing else uses, and (on request) their
files.

One delete path, the schema's ON DELETE CASCADE: removing the `pipeline_run` row removes its
step runs and, with them, their input/output links, parent edges, configurations and logs,
and the run's outputs and graph edges (SQLite enforces the cascades because `store` turns
`foreign_keys` on for every connection; PostgreSQL always does). Its snapshot goes too when
no other run uses it, taking the snapshot's step configurations along.

Artifact versions have no foreign key to the step run that produced them, so they are decided
here, in the same transaction: a version the run produced or linked goes only when nothing
links it any more. A later run served from this run's cache links the very same version
rows, so those stay (reported as kept), and its cache hit serves them from then on
(`queries.servable`). Artifact rows are name identities (like pipelines)
that concurrent writers converge on, so they stay too; listings hide artifacts with no
versions. Artifact files are left alone unless `purge_files` is called with what
`delete_run` deleted.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, or_, select, union
from sqlalchemy.sql import Select

from branchwork.exceptions import BranchworkError
from branchwork.metadata.artifact_listing import versions_query
from branchwork.metadata.chunking import chunks
from branchwork.metadata.lost import is_lost
from branchwork.metadata.queries import _version
from branchwork.metadata.schema import (
    artifact_version,
    pipeline_run,
    pipeline_run_output,
    pipeline_snapshot,
    step_run,
    step_run_input_artifact,
    step_run_output_artifact,
)
from branchwork.metadata.store import write_transaction
from branchwork.models.responses import ArtifactVersionResponse

_UNFINISHED = ("initializing", "running")
_LINKS = (step_run_output_artifact, step_run_input_artifact, pipeline_run_output)


@dataclass(frozen=True)
class DeletedRun:
    """What `delete_run` removed, and the versions it produced that other runs still use."""

    run_id: str
    run_name: str
    step_runs: int
    deleted_versions: tuple[ArtifactVersionResponse, ...]
    kept_versions: tuple[str, ...]
    child_runs: int  # runs its body called, which stay (each readable, its parent gone)


def delete_run(engine: Engine, id_or_name: str, force: bool = False) -> DeletedRun:
    """Delete a run and its rows, and the artifact versions nothing else uses; see the
    module docstring. An unfinished run is refused unless `force` (its process is gone)."""
    with write_transaction(engine) as conn:
        run = _run_to_delete(conn, id_or_name, force)
        steps = select(step_run.c.id).where(step_run.c.run_id == run.id)
        step_count = conn.execute(select(func.count()).select_from(steps.subquery())).scalar_one()
        children = conn.execute(
            select(func.count()).where(pipeline_run.c.parent_run_id == run.id)
        ).scalar_one()
        produced = _scalars(
            conn,
            select(artifact_version.c.id).where(artifact_version.c.producer_step_run_id.in_(steps)),
        )
        # A version this run only linked may be orphaned too (its producer was deleted before).
        candidates = produced | _scalars(conn, _linked_by_run(run.id, steps))
        conn.execute(delete(pipeline_run).where(pipeline_run.c.id == run.id))  # cascades
        _delete_snapshot_unless_shared(conn, run.snapshot_id)
        still_linked = _still_linked(conn, candidates)
        deleted = _delete_versions(conn, candidates - still_linked)
    return DeletedRun(
        run_id=run.id,
        run_name=run.name,
        step_runs=step_count,
        deleted_versions=tuple(sorted(deleted, key=lambda v: v.created)),
        kept_versions=tuple(sorted(produced & still_linked)),
        child_runs=children,
    )


def _run_to_delete(conn: Connection, id_or_name: str, force: bool) -> Any:
    run = conn.execute(
        select(
            pipeline_run.c.id,
            pipeline_run.c.name,
            pipeline_run.c.status,
            pipeline_run.c.snapshot_id,
            pipeline_run.c.heartbeat,
            pipeline_run.c.heartbeat_seconds,
        ).where(or_(pipeline_run.c.id == id_or_name, pipeline_run.c.name == id_or_name))
    ).one_or_none()
    if run is None:
        raise BranchworkError(f"No pipeline run with id or name {id_or_name!r}.")
    # A lost run reads failed everywhere: its process is gone, nothing to break.
    if run.status in _UNFINISHED and not force and not is_lost(run, time.time()):
        raise BranchworkError(
            f"Run '{run.name}' is {run.status}; deleting it would break its recording. "
            "Wait for it to finish, or force the deletion if its process is gone."
        )
    return run


def _scalars(conn: Connection, query: Any) -> set[str]:
    return {str(value) for value in conn.execute(query).scalars()}


def _linked_by_run(run_id: str, steps: Select[Any]) -> Any:
    """The versions a run links: its outputs and its step runs' inputs and outputs."""
    return union(
        select(pipeline_run_output.c.artifact_version_id).where(
            pipeline_run_output.c.run_id == run_id
        ),
        *(
            select(table.c.artifact_version_id).where(table.c.step_run_id.in_(steps))
            for table in (step_run_output_artifact, step_run_input_artifact)
        ),
    )


def _delete_snapshot_unless_shared(conn: Connection, snapshot_id: str) -> None:
    """Delete a snapshot no run uses any more (its step configurations cascade)."""
    users = select(pipeline_run.c.id).where(pipeline_run.c.snapshot_id == snapshot_id)
    conn.execute(
        delete(pipeline_snapshot).where(pipeline_snapshot.c.id == snapshot_id, ~users.exists())
    )


def _still_linked(conn: Connection, version_ids: set[str]) -> set[str]:
    """Which of `version_ids` something still links."""
    linked: set[str] = set()
    for chunk in chunks(version_ids):
        for table in _LINKS:
            column = table.c.artifact_version_id
            linked |= _scalars(conn, select(column).distinct().where(column.in_(chunk)))
    return linked


def _delete_versions(conn: Connection, version_ids: set[str]) -> list[ArtifactVersionResponse]:
    """Delete artifact versions; what they were, for `purge_files`."""
    deleted: list[ArtifactVersionResponse] = []
    for chunk in chunks(version_ids):
        rows = conn.execute(versions_query().where(artifact_version.c.id.in_(chunk))).all()
        deleted.extend(_version(row) for row in rows)
        conn.execute(delete(artifact_version).where(artifact_version.c.id.in_(chunk)))
    return deleted


def purge_files(
    engine: Engine, versions: Iterable[ArtifactVersionResponse]
) -> tuple[list[str], list[tuple[str, str]]]:
    """Remove the artifact folders of deleted versions that no remaining version points at.

    Returns (removed URIs, [(URI, reason)] for those that could not be removed).
    """
    from branchwork.artifact_stores import artifact_store_for_uri
    from branchwork.artifact_stores.inline import is_inline

    uris = {version.uri for version in versions if not is_inline(version.uri)}  # in the rows
    with engine.connect() as conn:
        for chunk in chunks(uris):
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
        except Exception as error:  # noqa: BLE001 - an object store's own (botocore's) too
            failed.append((uri, f"{type(error).__name__}: {error}"))
    return removed, failed
