"""The one rule for a lost run: `running` or `initializing`, with a heartbeat older than
the bound.

A loop whose process died stops heartbeating, so its run would stay `running` for ever; so
would a run `initializing` whose process died before any loop took it over (an orchestration
process importing a slow module, a driver waiting for Ray): the process that submitted it
heartbeats it until then. The bound is `config.heartbeat.stale_after`: six heartbeats of
the interval the run's loop recorded (`heartbeat_seconds`), so a loop that heartbeats seldom
is not taken for dead by a reader that heartbeats often, and never less than the store's
retry window and two heartbeats more, so a loop riding out an outage is not taken for dead
as the store returns.
Every reader applies this rule the same way when it reads (`lost_status` in SQL filters,
`lost_view` on a row), without writing; the writers — the next run, a resume, and
`branchwork runs reap` — record it (`reap_lost_runs`). Either way the run reads FAILED with
`OrchestrationLost`, and its attempts that were in flight read failed too.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, case, func, literal, select

from branchwork.config.heartbeat import (
    AFTER_RETRIES,
    MISSED_HEARTBEATS,
    heartbeat_interval,
    retry_window,
    stale_after,
)
from branchwork.metadata import schema
from branchwork.metadata.recorder import utc

if TYPE_CHECKING:
    from branchwork.models.responses import PipelineRunResponse

LOST_TYPE = "OrchestrationLost"
LIVE = ("running", "initializing")  # the statuses a heartbeat keeps


def run_lost_message(interval: float | None) -> str:
    """Why a run whose loop heartbeated every `interval` seconds reads failed."""
    return (
        f"The orchestration loop stopped heartbeating for over {stale_after(interval):g}s: "
        "its process (or, before a loop took the run over, the one that started it) died. "
        "Resume the run to finish it."
    )


def not_resumable_message(run: PipelineRunResponse) -> str:
    """Why a run cannot be resumed now; for a running one, when it can be if its process is
    gone (a store outage ended it unrecorded, say): `stale_after` its loop's last heartbeat."""
    message = (
        f"Run '{run.name}' is {run.status}: only failed or stopped runs, and paused ones once "
        "answered, can be resumed."
    )
    if run.status in LIVE:
        after = stale_after(run.heartbeat_seconds)
        message += (
            f" If its process is gone, it reads failed {after:g}s after its last heartbeat; "
            "resume it then."
        )
    return message


ATTEMPT_LOST_MESSAGE = "Its orchestration was lost (the loop's process died) while it ran."


def is_lost(run: Any, now: float) -> bool:
    """Whether a pipeline_run row (status, heartbeat, heartbeat_seconds) is lost at `now`."""
    return (
        run.status in LIVE
        and run.heartbeat is not None
        and run.heartbeat < now - stale_after(run.heartbeat_seconds)
    )


def _lost(now: float) -> Any:
    """`is_lost` as a SQL condition (`stale_after`'s larger bound: both are passed)."""
    run = schema.pipeline_run.c
    interval = func.coalesce(run.heartbeat_seconds, heartbeat_interval())
    return and_(
        run.status.in_(LIVE),
        run.heartbeat + MISSED_HEARTBEATS * interval < now,
        run.heartbeat + retry_window() + AFTER_RETRIES * interval < now,
    )


def lost_status(now: float) -> Any:
    """The run's status under the rule at `now`, as a SQL expression (for filters)."""
    return case((_lost(now), literal("failed")), else_=schema.pipeline_run.c.status)


def reap_lost_runs(conn: Connection, run_id: str | None = None) -> int:
    """Record FAILED the lost runs (or only `run_id`, if lost) and their attempts in
    flight, inside the caller's write transaction; returns how many runs."""
    run = schema.pipeline_run.c
    query = select(run.id, run.heartbeat, run.heartbeat_seconds).where(_lost(time.time()))
    if run_id is not None:
        query = query.where(run.id == run_id)
    lost = conn.execute(query).all()
    for row in lost:
        conn.execute(
            schema.pipeline_run.update()
            .where(run.id == row.id, run.status.in_(LIVE))
            .values(
                status="failed",
                end_time=utc(row.heartbeat),
                exception_type=LOST_TYPE,
                exception_message=run_lost_message(row.heartbeat_seconds),
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
