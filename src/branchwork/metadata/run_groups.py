"""A run's invocations grouped by step name, for the dashboard's graph and timeline: counts
by state, the edges between step names, and duration percentiles with stragglers.

Each figure is one aggregate query (GROUP BY, window functions), so a fan-out of 10,000
invocations costs a few rows here, whatever its size; see `run_pages` for the reading rules
(latest attempts; running reads failed in a finished run).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Float, cast, exists, func, or_, select, text

from branchwork.metadata import schema as s
from branchwork.metadata.run_pages import empty_counts, latest_attempt, settle_counts
from branchwork.models.responses import PipelineRunResponse

EXECUTED = ("completed", "failed")  # what duration figures are made of (cache hits take ~0)
STRAGGLER_FACTOR = 1.5  # an invocation slower than p95 times this is a straggler
STRAGGLERS = 10  # at most this many per step name


@dataclass(frozen=True)
class StepGroup:
    """The invocations of one step in a run: counts by state, when the first started and
    the last ended."""

    step_name: str
    counts: dict[str, int]
    total: int
    first_start: datetime | None
    last_end: datetime | None


@dataclass(frozen=True)
class Durations:
    """Seconds taken by the executed invocations of one step: nearest-rank percentiles and
    the stragglers (invocation, seconds), slowest first."""

    p50: float
    p95: float
    max: float
    stragglers: list[tuple[str, float]] = field(default_factory=list)


def step_groups(engine: Engine, run: PipelineRunResponse) -> list[StepGroup]:
    """One group per step name of the run, in the order they first started (a static run's
    planned steps that have not started come last)."""
    step = s.step_run.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                step.step_name,
                step.status,
                func.count(),
                func.min(step.start_time),
                func.max(step.end_time),
            )
            .where(step.run_id == run.id, latest_attempt())
            .group_by(step.step_name, step.status)
        ).all()
        planned = _planned_by_step(conn, run)
    counts: dict[str, dict[str, int]] = defaultdict(empty_counts)
    starts: dict[str, list[datetime]] = defaultdict(list)
    ends: dict[str, list[datetime]] = defaultdict(list)
    for step_name, status, count, first, last in rows:
        counts[step_name][status] = counts[step_name].get(status, 0) + count
        starts[step_name] += [first] if first is not None else []
        ends[step_name] += [last] if last is not None else []
    for step_name in planned:  # a planned step with no step run yet has a group too
        counts.setdefault(step_name, empty_counts())
    groups = []
    for step_name, group_counts in counts.items():
        settle_counts(group_counts, run, planned.get(step_name, 0))
        groups.append(
            StepGroup(
                step_name,
                group_counts,
                sum(group_counts.values()),
                min(starts[step_name], default=None),
                max(ends[step_name], default=None),
            )
        )
    return sorted(groups, key=lambda g: (g.first_start or datetime.max, g.step_name))


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
    """(from step name, to step name, "data" | "value") between the run's step names: data
    edges from recorded parents, value edges from the values a dynamic pipeline read before
    a call (`value_inputs`). A value edge is dropped where another path already leads from
    one step name to the other, so only the nearest reads are drawn (as `cli.graph` does)."""
    child, parent = s.step_run.alias("child"), s.step_run.alias("parent")
    link = s.step_run_parent
    with engine.connect() as conn:
        data = conn.execute(
            select(parent.c.step_name, child.c.step_name)
            .distinct()
            .select_from(link)
            .join(child, child.c.id == link.c.child_id)
            .join(parent, parent.c.id == link.c.parent_id)
            .where(child.c.run_id == run.id)
        ).all()
        value = _value_edges(conn, run.id) if run.snapshot.is_dynamic else []
    edges = {(a, b, "data") for a, b in data} | {(a, b, "value") for a, b in value}
    implied = {(a, b, kind) for a, b, kind in edges if kind == "value" and _reached(edges, a, b)}
    return edges - implied


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


# The JSON array `value_inputs` of each dynamic step configuration, unnested, reduced to
# distinct (reading step name, read invocation) pairs before the read invocations are looked
# up: a fan-out of 10,000 that read one value is one pair, not 10,000 lookups.
_READS = {
    "sqlite": "JOIN json_each(config.config, '$.value_inputs') AS value_input",
    "postgresql": "CROSS JOIN LATERAL json_array_elements_text("
    "CAST(config.config AS json) -> 'value_inputs') AS value_input(value)",
}
_VALUE_EDGES = """
    WITH reads AS MATERIALIZED (
        SELECT DISTINCT child.step_name AS reader, value_input.value AS read_name
        FROM step_run AS child
        JOIN step_configuration AS config ON config.step_run_id = child.id
        {unnest}
        WHERE child.run_id = :run_id
    )
    SELECT DISTINCT parent.step_name, reads.reader
    FROM reads
    JOIN step_run AS parent ON parent.run_id = :run_id AND parent.name = reads.read_name"""


def _value_edges(conn: Connection, run_id: str) -> list[Any]:
    unnest = _READS.get(conn.dialect.name)
    if unnest is None:  # a database without these JSON functions: no value edges drawn
        return []
    query = text(_VALUE_EDGES.format(unnest=unnest))
    return list(conn.execute(query, {"run_id": run_id}).all())


def _seconds(conn: Connection, start: Any, end: Any) -> Any:
    """`end - start` in seconds, to the microsecond, in this database's SQL. SQLite keeps
    times as text ('YYYY-MM-DD HH:MM:SS.ffffff') and its date functions round to the
    millisecond: whole seconds come from them, the fraction from the text."""
    if conn.dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    whole = func.julianday(func.substr(end, 1, 19)) - func.julianday(func.substr(start, 1, 19))
    fraction = cast(func.substr(end, 20), Float) - cast(func.substr(start, 20), Float)
    return func.round(whole * 86400.0) + fraction


def group_durations(engine: Engine, run: PipelineRunResponse) -> dict[str, Durations]:
    """Step name -> p50, p95, max and stragglers of its executed invocations, from window
    functions: at most a dozen rows per step name come back."""
    step = s.step_run.c
    with engine.connect() as conn:
        timed = (
            select(
                step.step_name,
                step.name,
                _seconds(conn, step.start_time, step.end_time).label("seconds"),
            )
            .where(
                step.run_id == run.id,
                step.status.in_(EXECUTED),
                step.start_time.is_not(None),
                step.end_time.is_not(None),
                latest_attempt(),
            )
            .subquery()
        )
        group = timed.c.step_name
        ranked = select(
            *timed.c,
            func.row_number()
            .over(partition_by=group, order_by=(timed.c.seconds, timed.c.name))
            .label("up"),
            func.count().over(partition_by=group).label("n"),
        ).subquery()
        rows = conn.execute(
            select(ranked).where(
                or_(
                    ranked.c.up > ranked.c.n - STRAGGLERS,
                    ranked.c.up == (ranked.c.n * 50 + 99) // 100,
                    ranked.c.up == (ranked.c.n * 95 + 99) // 100,
                )
            )
        ).all()
    return _durations(rows)


def _durations(rows: Sequence[Any]) -> dict[str, Durations]:
    """Percentiles and stragglers from the ranked rows `group_durations` selects."""
    by_step: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_step[row.step_name].append(row)
    found = {}
    for step_name, ranked in by_step.items():
        n = ranked[0].n
        at = {row.up: float(row.seconds) for row in ranked}
        p95 = at[(n * 95 + 99) // 100]
        slowest = sorted(ranked, key=lambda row: -row.up)[:STRAGGLERS]
        stragglers = [
            (row.name, float(row.seconds))
            for row in slowest
            if float(row.seconds) > p95 * STRAGGLER_FACTOR
        ]
        found[step_name] = Durations(at[(n * 50 + 99) // 100], p95, at[n], stragglers)
    return found


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
