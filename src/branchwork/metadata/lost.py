"""The one rule for a lost run: `running`, with a heartbeat older than the bound.

A loop whose process died stops heartbeating, so its run would stay `running` for ever.
Every reader applies this rule the same way when it reads (`lost_status` in SQL filters,
`lost_view` on a row), without writing; the writers — the next run, a resume, and
`branchwork runs reap` — record it (`reap_lost_runs`). Either way the run reads FAILED with
`OrchestrationLost`, and its attempts that were in flight read failed too.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, and_, case, literal, select

from branchwork.config.heartbeat import stale_after
from branchwork.metadata import schema
from branchwork.metadata.recorder import utc

LOST_TYPE = "OrchestrationLost"


def lost_cutoff() -> float:
    """Heartbeats older than this (epoch seconds) belong to lost runs."""
    return time.time() - stale_after()


def run_lost_message() -> str:
    return (
        f"The orchestration loop stopped heartbeating for over {stale_after():g}s: its "
        "process died. Resume the run to finish it."
    )


def not_resumable_message(run_name: str, status: str) -> str:
    """Why a run cannot be resumed now; for a running one, when it can be if its process is
    gone (a store outage ended it unrecorded, say)."""
    message = (
        f"Run '{run_name}' is {status}: only failed or stopped runs, and paused ones once "
        "answered, can be resumed."
    )
    if status == "running":
        message += (
            f" If its process is gone, it reads failed {stale_after():g}s after its last "
            "heartbeat; resume it then."
        )
    return message


ATTEMPT_LOST_MESSAGE = "Its orchestration was lost (the loop's process died) while it ran."


def is_lost(status: str, heartbeat: float | None, cutoff: float) -> bool:
    return status == "running" and heartbeat is not None and heartbeat < cutoff


def lost_status(cutoff: float) -> Any:
    """The run's status under the rule, as a SQL expression (for filters)."""
    run = schema.pipeline_run.c
    lost = and_(run.status == "running", run.heartbeat < cutoff)
    return case((lost, literal("failed")), else_=run.status)


def reap_lost_runs(conn: Connection, run_id: str | None = None) -> int:
    """Record FAILED the lost runs (or only `run_id`, if lost) and their attempts in
    flight, inside the caller's write transaction; returns how many runs."""
    run = schema.pipeline_run.c
    query = select(run.id, run.heartbeat).where(
        run.status == "running", run.heartbeat < lost_cutoff()
    )
    if run_id is not None:
        query = query.where(run.id == run_id)
    lost = conn.execute(query).all()
    for row in lost:
        conn.execute(
            schema.pipeline_run.update()
            .where(run.id == row.id, run.status == "running")
            .values(
                status="failed",
                end_time=utc(row.heartbeat),
                exception_type=LOST_TYPE,
                exception_message=run_lost_message(),
            )
        )
        close_lost_attempts(conn, row.id, row.heartbeat)
    return len(lost)


def close_lost_attempts(conn: Connection, run_id: str, when: float) -> None:
    """Attempts still recorded running in a run whose loop is gone: failed, lost, ended when
    the loop was last seen, or when they started if that was later (the loop's last
    heartbeat can predate them: their durations read negative)."""
    step = schema.step_run.c
    last_seen = utc(when)
    conn.execute(
        schema.step_run.update()
        .where(step.run_id == run_id, step.status == "running")
        .values(
            status="failed",
            end_time=case((step.start_time > last_seen, step.start_time), else_=last_seen),
            exception_type=LOST_TYPE,
            exception_message=ATTEMPT_LOST_MESSAGE,
        )
    )
