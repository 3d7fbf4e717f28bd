"""Cheap run listings for the CLI: runs without their step runs, step counts, and where a
cached step run came from."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, distinct, func, select

from branchwork.metadata.chunking import chunks
from branchwork.metadata.lost import lost_cutoff, lost_status
from branchwork.metadata.queries import get_run
from branchwork.metadata.schema import pipeline as pipeline_table
from branchwork.metadata.schema import pipeline_run, step_run
from branchwork.models.responses import PipelineRunResponse


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
        for chunk in chunks(run_ids):
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
        for chunk in chunks(step_run_ids):
            rows = conn.execute(
                select(step_run.c.id, step_run.c.run_id, step_run.c.name, pipeline_run.c.name)
                .join(pipeline_run, pipeline_run.c.id == step_run.c.run_id)
                .where(step_run.c.id.in_(chunk))
            )
            for step_run_id, run_id, invocation_id, run_name in rows:
                origins[step_run_id] = StepRunOrigin(step_run_id, run_id, run_name, invocation_id)
    return origins
