"""Where step runs live: the run and invocation of a step run (a cache hit's origin, an
artifact's producer). Runs are listed, without their step runs, by `run_pages`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, select

from branchwork.metadata.chunking import chunks
from branchwork.metadata.schema import pipeline_run, step_run


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
