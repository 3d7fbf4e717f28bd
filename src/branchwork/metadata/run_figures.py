"""A run's figures per step name (counts by state, span, duration percentiles), and the row
that keeps them once a big run has ended (`schema.run_summary`).

Computing them walks indexes over every step run of the run (`run_groups`): about half a
second for a million. A finished run's figures no longer change, so a run that recorded many
step runs keeps them when it ends, and every later read (`runs show`, `runs list`, `runs
graph`, the dashboard) is one row. The row names the run's status and end time it was made
at; a run resumed or ended again since does not match it and is read from its step runs,
so a kept row is never read for a run it no longer describes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from branchwork.metadata import schema as s
from branchwork.models.responses import PipelineRunResponse

# A run whose ending session recorded at least this many step runs keeps its figures: below
# it, reading them from the step runs takes milliseconds.
KEPT_FROM = 1_000


@dataclass(frozen=True)
class StepGroup:
    """The invocations of one step in a run: counts by state, when the first started and
    the last ended, and how many ran to an end (completed or failed), which its duration
    figures are made of."""

    step_name: str
    counts: dict[str, int]
    total: int
    first_start: datetime | None
    last_end: datetime | None
    executed: int = 0


@dataclass(frozen=True)
class Durations:
    """Seconds taken by the executed invocations of one step: nearest-rank percentiles and
    the stragglers (invocation, seconds), slowest first."""

    p50: float
    p95: float
    max: float
    stragglers: list[tuple[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class Figures:
    """A run's step groups (in the order `run_groups.step_groups` gives them) and the
    durations of those that executed, by step name."""

    groups: list[StepGroup]
    durations: dict[str, Durations]


def keep(conn: Connection, run: PipelineRunResponse, figures: Figures) -> None:
    """Keep `figures` as those of `run` in its current status and end time (replacing any
    kept before: a resumed run that ended again); `run` has ended."""
    conn.execute(delete(s.run_summary).where(s.run_summary.c.run_id == run.id))
    conn.execute(
        insert(s.run_summary).values(
            run_id=run.id,
            status=run.status.value,
            end_time=run.end_time,
            figures=json.dumps(_encoded(figures), separators=(",", ":")),
        )
    )


def kept(conn: Connection, runs: Sequence[PipelineRunResponse]) -> dict[str, Figures]:
    """Run id -> the figures kept for it, of those of `runs` that have some matching their
    status and end time."""
    ended = {run.id: run for run in runs if run.end_time is not None}
    if not ended:
        return {}
    summary = s.run_summary.c
    rows = conn.execute(
        select(summary.run_id, summary.status, summary.end_time, summary.figures).where(
            summary.run_id.in_(list(ended))
        )
    ).all()
    return {
        row.run_id: _decoded(json.loads(row.figures))
        for row in rows
        if (row.status, row.end_time) == _made_at(ended[row.run_id])
    }


def _made_at(run: PipelineRunResponse) -> tuple[str, datetime | None]:
    """What a kept row names of the run it was made for."""
    return run.status.value, run.end_time


def _encoded(figures: Figures) -> dict[str, Any]:
    return {
        "groups": [
            {
                "step_name": group.step_name,
                "counts": group.counts,
                "total": group.total,
                "first_start": _time(group.first_start),
                "last_end": _time(group.last_end),
                "executed": group.executed,
            }
            for group in figures.groups
        ],
        "durations": {
            name: [spread.p50, spread.p95, spread.max, spread.stragglers]
            for name, spread in figures.durations.items()
        },
    }


def _decoded(data: dict[str, Any]) -> Figures:
    groups = [
        StepGroup(
            group["step_name"],
            group["counts"],
            group["total"],
            _parsed(group["first_start"]),
            _parsed(group["last_end"]),
            group["executed"],
        )
        for group in data["groups"]
    ]
    durations = {
        name: Durations(p50, p95, slowest, [(invocation, seconds) for invocation, seconds in late])
        for name, (p50, p95, slowest, late) in data["durations"].items()
    }
    return Figures(groups, durations)


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parsed(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)
