"""Artifacts and their versions for the CLI and the Client: names with version counts,
versions filtered by name, tag, pipeline and logged metadata, one version by name (and
number) or id, and the runs that use a version. Artifacts without versions (their runs were
deleted) are left out.

`find_artifact_version(engine, name, version=None)` is the lookup by name: the latest
version, or version n, with an error listing the versions there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, union
from sqlalchemy.sql import Select

from branchwork.exceptions import BranchworkError

# Same-package helpers: one definition of how a version row becomes a response.
from branchwork.metadata.queries import _VERSION_COLUMNS, _version
from branchwork.metadata.recorder import metadata_value
from branchwork.metadata.schema import (
    artifact,
    artifact_version,
    artifact_version_metadata,
    artifact_version_tag,
    pipeline,
    pipeline_run,
    pipeline_run_output,
    step_run,
    step_run_input_artifact,
    step_run_output_artifact,
)
from branchwork.metadata.version_labels import labels_of
from branchwork.models.responses import ArtifactVersionResponse

_LIST_HINT = "`branchwork artifacts list` shows the names"
_RANGES_SHOWN = 10


@dataclass(frozen=True)
class ArtifactSummary:
    """An artifact name with how many versions it has, its latest version's number, and
    when the newest was made."""

    id: str
    name: str
    version_count: int
    latest: datetime
    latest_version: int


def list_artifacts(engine: Engine) -> list[ArtifactSummary]:
    """Artifacts that have versions, by name."""
    query = (
        select(
            artifact.c.id,
            artifact.c.name,
            func.count(artifact_version.c.id),
            func.max(artifact_version.c.created),
            func.max(artifact_version.c.version),
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


def _responses(conn: Connection, query: Select[Any]) -> list[ArtifactVersionResponse]:
    """The versions `query` selects, with their tags and metadata (one more query)."""
    rows = conn.execute(query).all()
    if not rows:
        return []
    # Same rows: the ordering stays, as a LIMIT picks by it.
    labels = labels_of(conn, query.with_only_columns(artifact_version.c.id))
    return [_version(row, labels) for row in rows]


def list_artifact_versions(
    engine: Engine,
    name: str | None = None,
    tag: str | None = None,
    pipeline_name: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> list[ArtifactVersionResponse]:
    """Versions newest first: of the artifact `name`, tagged `tag`, made by a run of
    pipeline `pipeline_name`, with logged metadata equal to each of `metadata`'s values (as
    JSON); each filter given narrows the list."""
    query = versions_query().order_by(
        artifact_version.c.created.desc(), artifact_version.c.version.desc()
    )
    if name is not None:
        query = query.where(artifact.c.name == name)
    if tag is not None:
        tagged = select(artifact_version_tag.c.artifact_version_id).where(
            artifact_version_tag.c.tag == tag
        )
        query = query.where(artifact_version.c.id.in_(tagged))
    if pipeline_name is not None:
        query = query.where(artifact_version.c.producer_step_run_id.in_(_steps_of(pipeline_name)))
    for key, value in (metadata or {}).items():
        meta = artifact_version_metadata.c
        matching = select(meta.artifact_version_id).where(
            meta.key == key, meta.value == metadata_value(value)
        )
        query = query.where(artifact_version.c.id.in_(matching))
    with engine.connect() as conn:
        return _responses(conn, query)


def _steps_of(pipeline_name: str) -> Select[Any]:
    return (
        select(step_run.c.id)
        .join(pipeline_run, pipeline_run.c.id == step_run.c.run_id)
        .join(pipeline, pipeline.c.id == pipeline_run.c.pipeline_id)
        .where(pipeline.c.name == pipeline_name)
    )


def find_artifact_version(
    engine: Engine, name: str, version: int | None = None
) -> ArtifactVersionResponse:
    """Version `version` of the artifact called `name`, or its latest (highest number)."""
    query = versions_query().where(artifact.c.name == name)
    if version is None:
        query = query.order_by(artifact_version.c.version.desc()).limit(1)
    else:
        query = query.where(artifact_version.c.version == version)
    with engine.connect() as conn:
        found = _responses(conn, query)
        if found:
            return found[0]
        numbers = list(
            conn.execute(
                select(artifact_version.c.version)
                .join(artifact, artifact.c.id == artifact_version.c.artifact_id)
                .where(artifact.c.name == name)
                .order_by(artifact_version.c.version)
            ).scalars()
        )
    if not numbers:
        raise BranchworkError(f"No artifact named {name!r} (or it has no versions); {_LIST_HINT}.")
    raise BranchworkError(
        f"Artifact {name!r} has no version {version}; its versions: {version_ranges(numbers)}."
    )


def version_ranges(numbers: list[int]) -> str:
    """Sorted version numbers as ranges, "1-3, 5", the first few when there are many."""
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    texts = [str(a) if a == b else f"{a}-{b}" for a, b in ranges]
    if len(texts) > _RANGES_SHOWN:
        texts = [*texts[:_RANGES_SHOWN], f"... ({len(numbers)} versions)"]
    return ", ".join(texts)


def _by_id(engine: Engine, version_id: str) -> ArtifactVersionResponse | None:
    with engine.connect() as conn:
        found = _responses(conn, versions_query().where(artifact_version.c.id == version_id))
    return found[0] if found else None


def get_artifact_version(engine: Engine, version_id: str) -> ArtifactVersionResponse:
    """One artifact version by id."""
    found = _by_id(engine, version_id)
    if found is None:
        raise BranchworkError(f"No artifact version with id {version_id!r}.")
    return found


def artifact_version_by_name_or_id(
    engine: Engine, name_or_id: str, version: int | None = None
) -> ArtifactVersionResponse:
    """A version by id, or by artifact name (the latest, or number `version`)."""
    if version is not None:
        return find_artifact_version(engine, name_or_id, version)
    found = _by_id(engine, name_or_id)
    if found is not None:
        return found
    try:
        return find_artifact_version(engine, name_or_id)
    except BranchworkError:  # no such name either
        raise BranchworkError(
            f"No artifact named {name_or_id!r} and no artifact version with that id; {_LIST_HINT}."
        ) from None


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
