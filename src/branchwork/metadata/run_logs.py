"""What a run's steps printed and logged, read without the rest of the run: only the rows of
the step runs that logged something. Never writes."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, Engine, func, select

from branchwork.exceptions import BranchworkError
from branchwork.metadata import schema as s
from branchwork.metadata.chunking import chunks
from branchwork.metadata.run_pages import status_in
from branchwork.models.responses import PipelineRunResponse


class StepLog(NamedTuple):
    """What the latest attempt of an invocation printed and logged."""

    invocation: str
    status: str
    text: str


def step_logs(
    engine: Engine,
    run: PipelineRunResponse,
    invocation: str | None = None,
    attempt: int | None = None,
) -> list[StepLog]:
    """The logs of the latest attempt of each of the run's invocations (or of `invocation`,
    its attempt `attempt` if given: a BranchworkError if it has no such attempt) that printed
    or logged anything, in the order they started.

    The logged attempts are read first, by the run id their logs carry, and the superseded
    ones dropped after: walking the run's step runs to look each one's log up, or to check it
    for a later attempt, took SQLite seconds for a million step runs."""
    step, log = s.step_run.c, s.step_log.c
    query = (
        select(step.name, step.attempt, step.status, log.text)
        .select_from(s.step_log)
        .join(s.step_run, step.id == log.step_run_id)
        .where(log.run_id == run.id)
        .order_by(step.start_time, step.name)
    )
    if invocation is not None:
        query = query.where(step.name == invocation)
    with engine.connect() as conn:
        if attempt is not None:
            assert invocation is not None, "an attempt is one invocation's"
            count = _latest_attempt_numbers(conn, run, [invocation]).get(invocation, 0)
            if not 1 <= attempt <= count:
                raise BranchworkError(no_attempt_message(run.name, invocation, attempt, count))
            latest = {invocation: attempt}
            query = query.where(step.attempt == attempt)
        rows = conn.execute(query).all()
        if attempt is None:
            latest = _latest_attempt_numbers(conn, run, [row.name for row in rows])
    return [
        StepLog(row.name, status_in(run, row.status), row.text)
        for row in rows
        if row.attempt == latest[row.name]
    ]


def no_attempt_message(run_name: str, invocation: str, attempt: int, count: int) -> str:
    return (
        f"Invocation '{invocation}' of run '{run_name}' has no attempt {attempt} (it has {count})."
    )


def _latest_attempt_numbers(
    conn: Connection, run: PipelineRunResponse, names: list[str]
) -> dict[str, int]:
    """The number of the latest attempt of each of these invocations of the run."""
    step = s.step_run.c
    latest: dict[str, int] = {}
    for chunk in chunks(names):
        query = (
            select(step.name, func.max(step.attempt))
            .where(step.run_id == run.id, step.name.in_(chunk))
            .group_by(step.name)
        )
        latest.update((name, attempt) for name, attempt in conn.execute(query))
    return latest
