"""What a run's steps printed and logged, read without the rest of the run: only the rows of
the step runs that logged something. Never writes."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Engine, select

from branchwork.metadata import schema as s
from branchwork.metadata.run_pages import latest_attempt, status_in
from branchwork.models.responses import PipelineRunResponse


class StepLog(NamedTuple):
    """What the latest attempt of an invocation printed and logged."""

    invocation: str
    status: str
    text: str


def step_logs(
    engine: Engine, run: PipelineRunResponse, invocation: str | None = None
) -> list[StepLog]:
    """The logs of the latest attempt of each of the run's invocations (or of `invocation`)
    that printed or logged anything, in the order they started."""
    step = s.step_run.c
    query = (
        select(step.name, step.status, s.step_log.c.text)
        .select_from(s.step_log)
        .join(s.step_run, step.id == s.step_log.c.step_run_id)
        .where(step.run_id == run.id, latest_attempt())
        .order_by(step.start_time, step.name)
    )
    if invocation is not None:
        query = query.where(step.name == invocation)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [StepLog(row.name, status_in(run, row.status), row.text) for row in rows]
