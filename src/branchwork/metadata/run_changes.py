"""A cheap mark of how far a run's step runs have got, for pages that follow a run as it goes.

`step_run_tally` counts a run's step runs by stored status: one pass over the entries of the
index on (run, status, ...) that never reads the rows, so asking it every second of a
10,000-step run costs a few milliseconds. Every step run recorded, started, ended or retried
changes a status or adds a row, so changes the tally; what the counts mean (latest attempts,
planned steps, durations) is `run_groups`' to read, once the tally has changed.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select

from branchwork.metadata import schema as s


def step_run_tally(engine: Engine, run_id: str) -> list[tuple[str, int]]:
    """(stored status, step runs) for each status the run's step runs have, by status."""
    step = s.step_run.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(step.status, func.count())
            .where(step.run_id == run_id)
            .group_by(step.status)
            .order_by(step.status)
        ).all()
    return [(str(status), int(count)) for status, count in rows]
