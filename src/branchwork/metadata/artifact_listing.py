"""Artifacts and their versions for the CLI: names with version counts, one artifact's
versions, one version, and the runs that use a version. Artifacts without versions (their
runs were deleted) are left out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, union
from sqlalchemy.sql import Select

from branchwork.exceptions import BranchworkError

# Same-package helpers: one definition of how a version row becomes a response.
from branchwork.metadata.queries import _VERSION_COLUMNS, _version
from branchwork.metadata.schema import (
    artifact,
    artifact_version,
    pipeline_run,
    pipeline_run_output,
    step_run,
    step_run_input_artifact,
    step_run_output_artifact,
)
from branchwork.models.responses import ArtifactVersionResponse


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


def versions_query() -> Select[Any]:
    """Version rows with their artifact's name, ready for `queries._version`."""
    return select(*_VERSION_COLUMNS).join(artifact, artifact.c.id == artifact_version.c.artifact_id)


def list_artifact_versions(engine: Engine, name: str) -> list[ArtifactVersionResponse]:
    """The versions of the artifact called `name`, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            versions_query()
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
            versions_query().where(artifact_version.c.id == version_id)
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
