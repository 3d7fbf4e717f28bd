"""Invalidating cached results: a step's on request (`branchwork cache invalidate`), and
those that made an artifact whose files are gone (`files_lost`).

Invalidating marks the step runs of a step (of one pipeline, or of every pipeline) that a
cache hit could reuse (`queries.servable`) `cache_invalidated`, with every other result of
their keys; `queries.find_cached` never serves those again, so the step's next run
computes anew. Nothing is deleted: the runs,
their outputs and their history stay readable.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Connection, Engine, and_, or_, select, update

from branchwork.exceptions import BranchworkError, MissingArtifactError
from branchwork.metadata import schema as s
from branchwork.metadata.queries import servable
from branchwork.metadata.retries import retrying
from branchwork.metadata.store import write_transaction


@retrying("invalidating cached results")
def invalidate_step(engine: Engine, step_name: str, pipeline_name: str | None = None) -> int:
    """Mark the step's cached results invalidated; how many were still served. With a
    pipeline, its runs' results and every other result of their keys (made by another
    pipeline, which then computes them anew too). Raises when no run of the pipeline (or of
    any pipeline) ever ran a step of that name."""
    in_pipeline = (
        select(s.pipeline_run.c.id)
        .join(s.pipeline, s.pipeline.c.id == s.pipeline_run.c.pipeline_id)
        .where(s.pipeline.c.name == pipeline_name)
    )
    step = s.step_run.c
    scope = [step.step_name == step_name]
    if pipeline_name is not None:
        scope.append(step.run_id.in_(in_pipeline))
    # Every result of the scope's keys, whichever pipeline made it: a key is shared across
    # pipelines, and another's result (one a hit was served, or an older one) would be served.
    keys = select(step.cache_key).where(*scope, step.cache_key.is_not(None))
    with engine.begin() as conn:
        if conn.execute(select(step.id).where(*scope).limit(1)).first() is None:
            raise BranchworkError(_unknown_step(conn, step_name, pipeline_name))
        result = conn.execute(
            update(s.step_run)
            .where(
                or_(and_(*scope), step.cache_key.in_(keys)),
                servable(),
                step.cache_invalidated.is_(False),
            )
            .values(cache_invalidated=True)
        )
        conn.execute(  # the cache hits too: one serves once its original's run is deleted
            update(s.step_run)
            .where(
                *scope,
                s.step_run.c.status == "cached",
                s.step_run.c.cache_invalidated.is_(False),
            )
            .values(cache_invalidated=True)
        )
    return int(result.rowcount)


def files_lost(
    engine: Engine, version_ids: Collection[str], error: MissingArtifactError
) -> MissingArtifactError:
    """A run could not load these artifact versions (`error`): the step runs that made them,
    and the cache hits that reused them, are no longer served (a hit would hand every later
    run the missing files), so the next run computes them again; the error, saying so."""
    _invalidate_producers(engine, version_ids)
    return MissingArtifactError(
        f"{str(error).rstrip('.')}. The cached results that made it are no longer served: the "
        "next run computes them again.",
        error.uri,
    )


@retrying("invalidating cached results")
def _invalidate_producers(engine: Engine, version_ids: Collection[str]) -> None:
    """The step runs that output these versions, and every other result of their keys (a
    hit would serve the next of them, whose files may be gone too)."""
    link, step = s.step_run_output_artifact.c, s.step_run.c
    producers = select(link.step_run_id).where(link.artifact_version_id.in_(list(version_ids)))
    keys = select(step.cache_key).where(step.id.in_(producers), step.cache_key.is_not(None))
    with write_transaction(engine) as conn:
        conn.execute(
            update(s.step_run)
            .where(
                or_(step.id.in_(producers), step.cache_key.in_(keys)),
                step.cache_invalidated.is_(False),
            )
            .values(cache_invalidated=True)
        )


def _unknown_step(conn: Connection, step_name: str, pipeline_name: str | None) -> str:
    names = select(s.step_run.c.step_name).distinct()
    where = "any pipeline"
    if pipeline_name is not None:
        known_pipeline = conn.execute(
            select(s.pipeline.c.id).where(s.pipeline.c.name == pipeline_name)
        ).first()
        if known_pipeline is None:
            return f"No pipeline named '{pipeline_name}' has run in this store."
        names = names.join(s.pipeline_run, s.pipeline_run.c.id == s.step_run.c.run_id).where(
            s.pipeline_run.c.pipeline_id == known_pipeline.id
        )
        where = f"pipeline '{pipeline_name}'"
    known = sorted(conn.execute(names).scalars())
    return (
        f"No step named '{step_name}' has run in {where}; steps that have: "
        f"{', '.join(known) or 'none'}."
    )
