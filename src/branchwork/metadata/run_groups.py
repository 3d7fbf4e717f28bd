"""A run's invocations grouped by step name, for the dashboard's graph and timeline and the
CLI's `runs show` and `runs graph` of a big run: counts by state, the edges between step
names, and duration percentiles with stragglers.

Counts are one GROUP BY over an index, which reads its entries and never the rows (a fifth
of a second for a million step runs on a small machine); when a step name first started and
last ended, and its duration percentiles, maximum and stragglers, are read by walking indexes
(`schema`, `seconds`) a few rows at a time. The edges between step names are rows of their
own that the recorder writes once each (`schema.step_edge`): a few per run, whatever its size.
See `run_pages` for the reading rules (latest attempts, superseded ones taken away; running
reads failed in a finished run). A big run keeps its counts, spans and durations when it ends
(`keep_figures`, `run_figures`): reading them is then one row.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    exists,
    func,
    literal_column,
    or_,
    select,
    union_all,
)

from branchwork.metadata import schema as s
from branchwork.metadata.run_figures import Durations, Figures, StepGroup, keep, kept
from branchwork.metadata.run_pages import (
    find_run,
    is_finished,
    latest_counts,
    settle_counts,
    superseded_attempts,
)
from branchwork.metadata.seconds import seconds_between
from branchwork.metadata.store import write_transaction
from branchwork.models.responses import PipelineRunResponse

EXECUTED = ("completed", "failed")  # what duration figures are made of (cache hits take ~0)
STRAGGLER_FACTOR = 1.5  # an invocation slower than p95 times this is a straggler
STRAGGLERS = 10  # at most this many per step name
SECONDS: Any = literal_column("seconds")  # the seconds a union of `_executed` selects


def step_groups(engine: Engine, run: PipelineRunResponse) -> list[StepGroup]:
    """One group per step name of the run, in the order they first started (a static run's
    planned steps that have not started come last)."""
    figures = _kept(engine, run)
    return _step_groups(engine, run) if figures is None else figures.groups


def _kept(engine: Engine, run: PipelineRunResponse) -> Figures | None:
    with engine.connect() as conn:
        return kept(conn, [run]).get(run.id)


def _step_groups(engine: Engine, run: PipelineRunResponse) -> list[StepGroup]:
    step = s.step_run.c
    with engine.connect() as conn:
        attempts = conn.execute(  # in the order of the index on (run, status, step name)
            select(
                step.step_name,
                step.status,
                func.count(),
                func.count(seconds_between(step.start_time, step.end_time)),
            )
            .where(step.run_id == run.id)
            .group_by(step.status, step.step_name)
        ).all()
        superseded = superseded_attempts(conn, [run.id])
        counts = latest_counts(
            [row[:3] for row in attempts], [(row.step_name, row.status) for row in superseded]
        )
        executed = _executed_counts(attempts, superseded)
        spans = {name: _span(conn, run.id, name, superseded) for name in counts}
        planned = _planned_by_step(conn, run)
    groups = []
    for step_name in counts.keys() | planned.keys():
        group_counts = counts[step_name]
        settle_counts(group_counts, run, planned.get(step_name, 0))
        total = sum(group_counts.values())
        if total:  # none: every attempt of this step name was superseded (by another step)
            first, last = spans.get(step_name, (None, None))
            groups.append(
                StepGroup(step_name, group_counts, total, first, last, executed[step_name])
            )
    return sorted(groups, key=lambda g: (g.first_start or datetime.max, g.step_name))


def _executed_counts(attempts: Sequence[Any], superseded: Sequence[Any]) -> dict[str, int]:
    """Step name -> latest attempts recorded completed or failed, with both times: from
    (step name, status, attempts, timed attempts) rows, less the superseded ones."""
    executed: dict[str, int] = defaultdict(int)
    for step_name, status, _, timed in attempts:
        executed[step_name] += timed if status in EXECUTED else 0
    for row in _timed_executed(superseded):
        executed[row.step_name] -= 1
    return executed


def _timed_executed(superseded: Sequence[Any]) -> list[Any]:
    return [row for row in superseded if row.status in EXECUTED and row.seconds is not None]


def _span(
    conn: Connection, run_id: str, step_name: str, superseded: Sequence[Any]
) -> tuple[datetime | None, datetime | None]:
    """When the first latest attempt of a step name started and the last one ended: the first
    rows of the indexes on start and end time, past the superseded attempts among them."""
    skipped = {(row.name, row.attempt) for row in superseded if row.step_name == step_name}
    step = s.step_run.c

    def first(column: Any, descending: bool = False) -> datetime | None:
        rows = conn.execute(
            select(step.name, step.attempt, column)
            .where(step.run_id == run_id, step.step_name == step_name, column.is_not(None))
            .order_by(column.desc() if descending else column)
            .limit(len(skipped) + 1)
        ).all()
        return next((row[2] for row in rows if (row.name, row.attempt) not in skipped), None)

    return first(step.start_time), first(step.end_time, descending=True)


def _planned_by_step(conn: Connection, run: PipelineRunResponse) -> dict[str, int]:
    """Step name -> invocations of it a static run planned (none for a dynamic one)."""
    if run.snapshot.is_dynamic:
        return {}
    config = s.step_configuration.c
    rows = conn.execute(
        select(config.step_name, func.count())
        .where(config.snapshot_id == run.snapshot.id)
        .group_by(config.step_name)
    ).all()
    return {step_name: count for step_name, count in rows}


def group_edges(engine: Engine, run: PipelineRunResponse) -> set[tuple[str, str, str]]:
    """(from step name, to step name, "data" | "value") between the run's step names, as the
    recorder wrote them (`schema.step_edge`): data edges from recorded parents, value edges
    from the values a dynamic pipeline read last before a call (`value_inputs`). A value edge is
    dropped where another path already leads from one step name to the other, so only the
    nearest reads are drawn (as `cli.graph` does)."""
    edge = s.step_edge.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(edge.from_name, edge.to_name, edge.kind).where(edge.run_id == run.id)
        ).all()
    edges = {(a, b, kind) for a, b, kind in rows}
    # One at a time: with a loop between step names, two value edges can imply each other.
    for start, goal, kind in sorted(edges):
        if kind == "value" and _reached(edges, start, goal):
            edges.discard((start, goal, kind))
    return edges


def _reached(edges: set[tuple[str, str, str]], start: str, goal: str) -> bool:
    """Whether `goal` is reachable from `start` through edges other than the direct value
    edge between them."""
    children: dict[str, set[str]] = defaultdict(set)
    for a, b, kind in edges:
        if (a, b, kind) != (start, goal, "value") and a != b:
            children[a].add(b)
    seen, todo = {start}, [start]
    while todo:
        for child in children[todo.pop()] - seen:
            if child == goal:
                return True
            seen.add(child)
            todo.append(child)
    return False


def group_durations(
    engine: Engine, run: PipelineRunResponse, groups: Sequence[StepGroup] | None = None
) -> dict[str, Durations]:
    """Step name -> p50, p95, max and stragglers of its executed invocations (latest
    attempts), each read from a few rows of the index on seconds; `groups`: the run's
    `step_groups`, when already read."""
    figures = _kept(engine, run)
    if figures is not None:
        return figures.durations
    return _group_durations(engine, run, _step_groups(engine, run) if groups is None else groups)


def _group_durations(
    engine: Engine, run: PipelineRunResponse, groups: Sequence[StepGroup]
) -> dict[str, Durations]:
    with engine.connect() as conn:
        superseded = _timed_executed(superseded_attempts(conn, [run.id]))
        return {
            group.step_name: _durations(
                conn,
                _executed(run.id, group.step_name),
                group.executed,
                [row for row in superseded if row.step_name == group.step_name],
            )
            for group in groups
            if group.executed
        }


def _executed(run_id: str, step_name: str) -> Any:
    """A function of the columns to select -> the executed, timed step runs of a step name
    with those columns, as a union whose arms each walk the index on seconds."""
    step = s.step_run.c
    seconds = seconds_between(step.start_time, step.end_time)

    def selecting(*columns: Any) -> CompoundSelect[Any]:
        return union_all(
            *(
                select(seconds.label("seconds"), *columns).where(
                    step.run_id == run_id,
                    step.status == status,
                    step.step_name == step_name,
                    seconds.is_not(None),
                )
                for status in EXECUTED
            )
        )

    return selecting


def _durations(conn: Connection, executed: Any, kept: int, taken_out: Sequence[Any]) -> Durations:
    """Nearest-rank percentiles and stragglers of the `kept` executed latest attempts of a
    step name, among which the index also holds the superseded ones `taken_out`."""
    count = kept + len(taken_out)
    excluded = sorted(float(row.seconds) for row in taken_out)

    def nth(rank: int) -> float:
        window = _window(conn, executed, rank - 1, len(excluded) + 1, count)
        return _nth_kept(window, rank - 1, excluded, rank)

    p95 = nth((kept * 95 + 99) // 100)
    skipped = {(row.name, row.attempt) for row in taken_out}
    slowest = conn.execute(
        executed(s.step_run.c.name, s.step_run.c.attempt)
        .order_by(SECONDS.desc())
        .limit(STRAGGLERS + len(skipped))
    ).all()
    # Times are to the microsecond: compared there, SQLite's and PostgreSQL's float errors
    # in the seconds agree.
    slower_than = round(p95 * STRAGGLER_FACTOR, 6)
    stragglers = [
        (row.name, float(row.seconds))
        for row in slowest
        if (row.name, row.attempt) not in skipped and round(float(row.seconds), 6) > slower_than
    ]
    return Durations(nth((kept * 50 + 99) // 100), p95, nth(kept), stragglers[:STRAGGLERS])


def _window(conn: Connection, executed: Any, offset: int, size: int, count: int) -> list[float]:
    """Seconds [offset, offset + size) of the `count` executed step runs in ascending order,
    walking the index from the nearer end."""
    if offset <= count // 2:
        query = executed().order_by(SECONDS).offset(offset).limit(size)
        return [float(value) for value in conn.execute(query).scalars()]
    end = min(offset + size, count)
    query = executed().order_by(SECONDS.desc()).offset(count - end).limit(end - offset)
    return [float(value) for value in reversed(conn.execute(query).scalars().all())]


def _nth_kept(window: list[float], before: int, excluded: list[float], rank: int) -> float:
    """The `rank`-th smallest value once the `excluded` values are taken out, from a window
    of the ascending values that starts after `before` of them and holds len(excluded) + 1:
    enough, as at most that many of the values from the `rank`-th on are taken out."""
    for value in window:
        if before + bisect_right(window, value) - bisect_right(excluded, value) >= rank:
            return value
    return window[-1]


def keep_figures(engine: Engine, run_id: str) -> None:
    """Compute the figures of the run `run_id`, which has ended, and keep them
    (`run_figures`). The run is read first: if it changes while they are computed (a resume),
    they are kept for the run as it was, which it no longer matches. Not retried: they only
    save reads, and nothing should wait for them."""
    run = find_run(engine, run_id)
    if not is_finished(run) or run.end_time is None:
        return
    groups = _step_groups(engine, run)
    figures = Figures(groups, _group_durations(engine, run, groups))
    with write_transaction(engine) as conn:
        keep(conn, run, figures)


def has_step_name(engine: Engine, run: PipelineRunResponse, step_name: str) -> bool:
    """Whether the run recorded (or, static, planned) an invocation of this step."""
    recorded = select(s.step_run.c.id).where(
        s.step_run.c.run_id == run.id, s.step_run.c.step_name == step_name
    )
    planned = select(s.step_configuration.c.id).where(
        s.step_configuration.c.snapshot_id == run.snapshot.id,
        s.step_configuration.c.step_name == step_name,
    )
    with engine.connect() as conn:
        return bool(conn.execute(select(or_(exists(recorded), exists(planned)))).scalar())
