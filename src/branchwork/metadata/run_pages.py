"""Paged and aggregated reads of runs and their step runs, for the dashboard and the CLI.

Built for runs of a million steps: every list is paged in SQL (LIMIT/OFFSET) and counted
with COUNT, every figure per state or per step name is a GROUP BY over an index (`schema`);
nothing here reads all the step runs of a run into Python, and nothing writes.

An invocation's state is that of its latest attempt. Counts of latest attempts are counts of
every attempt less those of the superseded ones (`superseded_attempts`: an attempt a later
attempt of its invocation followed), which are few and found by index: asking, step run by
step run, whether a later attempt exists costs a lookup each, seconds for a million. In a run
that has finished (or is lost, see `metadata.lost`), an attempt still recorded running reads
failed, as in every reader.
Runs are read without their snapshot's step configurations (`run_records`), which a static
run of 10,000 steps has 10,000 of; `queries.get_run` reads them all.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
)

from branchwork.metadata import schema as s
from branchwork.metadata.lost import (
    ATTEMPT_LOST_MESSAGE,
    LOST_TYPE,
    is_lost,
    lost_status,
)
from branchwork.metadata.queries import _VERSION_COLUMNS, _version, labels_of, run_response
from branchwork.metadata.run_figures import StepGroup, kept
from branchwork.metadata.run_refs import resolve_run
from branchwork.metadata.seconds import seconds_between
from branchwork.models.responses import (
    ExecutionStatus,
    PipelineRunResponse,
    PipelineSnapshotResponse,
    loads,
)

T = TypeVar("T")

NOT_STARTED = "not_started"  # invocations a static run planned that have no step run yet
COUNT_KEYS = (NOT_STARTED, *(status.value for status in ExecutionStatus))


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, and how long the whole list is."""

    items: list[T]
    page: int
    page_size: int
    total: int


@dataclass(frozen=True)
class RunFilter:
    """Which runs a list shows: of a pipeline, in some statuses, created in [since, until),
    whose name, id or pipeline contains `text` (ignoring case)."""

    pipeline: str | None = None
    statuses: tuple[str, ...] = ()
    since: datetime | None = None  # naive UTC, as stored
    until: datetime | None = None
    text: str | None = None


@dataclass(frozen=True)
class InvocationRow:
    """An invocation's latest attempt, as the lists show it."""

    invocation: str
    step_name: str
    status: str
    attempt: int | None  # None: not started
    start: datetime | None
    end: datetime | None
    cache_verdict: str | None
    exception_type: str | None
    exception_message: str | None


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNT_KEYS, 0)


def page_offset(page: int, page_size: int) -> int:
    return (page - 1) * page_size


# ---- runs ----------------------------------------------------------------------------------


def find_run(engine: Engine, ref: str) -> PipelineRunResponse:
    """The run `ref` names (as the CLI takes it: name, id, unique prefix, latest), without its
    step runs; a BranchworkError with the CLI's message if none."""
    run_id = resolve_run(engine, ref)
    with engine.connect() as conn:
        return run_records(conn, [run_id])[0]


def run_records(conn: Connection, run_ids: Sequence[str]) -> list[PipelineRunResponse]:
    """These runs (in this order), with their outputs but no step runs nor step
    configurations; a lost run reads as `metadata.lost` says."""
    run, snap = s.pipeline_run, s.pipeline_snapshot
    rows = conn.execute(
        select(
            run,
            s.pipeline.c.name.label("pipeline_name"),
            snap.c.is_dynamic,
            snap.c.source,
            snap.c.source_file,
            snap.c.parameters.label("snapshot_parameters"),
            snap.c.spec,
            snap.c.created.label("snapshot_created"),
            snap.c.import_path,
            snap.c.working_dir,
            snap.c.argv,
        )
        .join(s.pipeline, s.pipeline.c.id == run.c.pipeline_id)
        .join(snap, snap.c.id == run.c.snapshot_id)
        .where(run.c.id.in_(run_ids))
    ).all()
    outputs = _run_outputs(conn, run_ids)
    now = time.time()
    by_id = {row.id: _run_record(row, outputs.get(row.id, []), now) for row in rows}
    return [by_id[run_id] for run_id in run_ids if run_id in by_id]


def _run_outputs(conn: Connection, run_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Run id -> the artifact versions it returned, in order."""
    link = s.pipeline_run_output
    rows = conn.execute(
        select(link.c.run_id, *_VERSION_COLUMNS)
        .join(s.artifact_version, s.artifact_version.c.id == link.c.artifact_version_id)
        .join(s.artifact, s.artifact.c.id == s.artifact_version.c.artifact_id)
        .where(link.c.run_id.in_(run_ids))
        .order_by(link.c.run_id, link.c.position)
    ).all()
    if not rows:
        return {}
    labels = labels_of(conn, select(link.c.artifact_version_id).where(link.c.run_id.in_(run_ids)))
    outputs: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        outputs[row.run_id].append(_version(row, labels))
    return outputs


def _run_record(row: Any, outputs: list[Any], now: float) -> PipelineRunResponse:
    lost = is_lost(row, now)
    snapshot = PipelineSnapshotResponse(
        id=row.snapshot_id,
        pipeline_name=row.pipeline_name,
        is_dynamic=row.is_dynamic,
        source=row.source,
        source_file=row.source_file,
        parameters=loads(row.snapshot_parameters, {}),
        spec=loads(row.spec, {}),
        created=row.snapshot_created,
        import_path=tuple(loads(row.import_path, ())),
        working_dir=row.working_dir,
        argv=tuple(loads(row.argv, ())),
    )
    return run_response(row, snapshot, lost, [], tuple(outputs))


def run_page(engine: Engine, where: RunFilter, page: int, page_size: int) -> Page[Any]:
    """Runs newest first (PipelineRunResponse, without step runs), one page of them."""
    run = s.pipeline_run
    conditions = _run_conditions(where)
    joined = run.join(s.pipeline, s.pipeline.c.id == run.c.pipeline_id)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(joined).where(*conditions)).scalar()
        run_ids = conn.execute(
            select(run.c.id)
            .select_from(joined)
            .where(*conditions)
            .order_by(run.c.created.desc(), run.c.id)
            .limit(page_size)
            .offset(page_offset(page, page_size))
        ).scalars()
        items = run_records(conn, list(run_ids))
    return Page(items, page, page_size, int(total or 0))


def _run_conditions(where: RunFilter) -> list[Any]:
    run = s.pipeline_run.c
    conditions: list[Any] = []
    if where.pipeline:
        conditions.append(s.pipeline.c.name == where.pipeline)
    if where.statuses:
        conditions.append(lost_status(time.time()).in_(sorted(where.statuses)))
    if where.since is not None:
        conditions.append(run.created >= where.since)
    if where.until is not None:
        conditions.append(run.created < where.until)
    if where.text:
        needle = where.text.lower()
        conditions.append(
            or_(
                func.lower(run.name).contains(needle, autoescape=True),
                func.lower(s.pipeline.c.name).contains(needle, autoescape=True),
                run.id.startswith(needle, autoescape=True),
            )
        )
    return conditions


# ---- counts and groups ---------------------------------------------------------------------


def invocation_names(engine: Engine, run: PipelineRunResponse) -> list[str]:
    """Every invocation of the run, in the order they (first) started."""
    step = s.step_run.c
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(step.name)
                .where(step.run_id == run.id)
                .group_by(step.name)
                .order_by(func.min(step.start_time), step.name)
            ).scalars()
        )


def latest_attempt() -> Any:
    """The step run is its invocation's latest attempt (no later one exists): for a page of
    rows; to count, see `superseded_attempts`."""
    later = s.step_run.alias("later")
    step = s.step_run.c
    return ~exists().where(
        later.c.run_id == step.run_id, later.c.name == step.name, later.c.attempt > step.attempt
    )


def is_finished(run: PipelineRunResponse) -> bool:
    return ExecutionStatus(run.status).is_finished


def read_status(run: PipelineRunResponse) -> Any:
    """A step run's status as read in `run`: running reads failed once the run finished."""
    step = s.step_run.c
    if not is_finished(run):
        return step.status
    return case((step.status == "running", literal("failed")), else_=step.status)


def status_read_as(run: PipelineRunResponse, status: str) -> Any:
    """`read_status(run) == status`, written so that the index on status serves it."""
    step = s.step_run.c
    if not is_finished(run):
        return step.status == status
    if status == "failed":
        return step.status.in_(("failed", "running"))
    return false() if status == "running" else step.status == status


def status_in(run: PipelineRunResponse, stored: str) -> str:
    """What a step run recorded `stored` reads as in `run` (`read_status`, in Python)."""
    return "failed" if stored == "running" and is_finished(run) else stored


def superseded_attempts(conn: Connection, run_ids: Sequence[str]) -> list[Any]:
    """The attempts of these runs that a later attempt of the same invocation followed: rows
    of (run_id, name, attempt, step_name, status, seconds). Few (retries, resumed failures)
    and found from the later attempts, whose attempt is above 1, by index."""
    step, later = s.step_run, s.step_run.alias("later")
    return list(
        conn.execute(
            select(
                step.c.run_id,
                step.c.name,
                step.c.attempt,
                step.c.step_name,
                step.c.status,
                seconds_between(step.c.start_time, step.c.end_time).label("seconds"),
            )
            .distinct()
            .select_from(later)
            .join(
                step,
                and_(
                    step.c.run_id == later.c.run_id,
                    step.c.name == later.c.name,
                    step.c.attempt < later.c.attempt,
                ),
            )
            .where(later.c.run_id.in_(run_ids), later.c.attempt > 1)
        ).all()
    )


def latest_counts(
    attempts: Sequence[Any], superseded: Sequence[tuple[str, str]]
) -> dict[str, dict[str, int]]:
    """Key -> status -> how many latest attempts: `attempts` counts every attempt as (key,
    status, count) rows, `superseded` names the (key, status) of each superseded one."""
    counts: dict[str, dict[str, int]] = defaultdict(empty_counts)
    for key, status, count in attempts:
        counts[key][status] = counts[key].get(status, 0) + count
    for key, status in superseded:
        counts[key][status] -= 1
    return counts


def run_counts(engine: Engine, runs: Sequence[PipelineRunResponse]) -> dict[str, dict[str, int]]:
    """Run id -> how many of its invocations are in each state (every key of COUNT_KEYS):
    summed from a run's kept figures (`run_figures`), or counted."""
    step = s.step_run.c
    with engine.connect() as conn:
        counts = {run_id: counts_of(figures.groups) for run_id, figures in kept(conn, runs).items()}
        counted = [run for run in runs if run.id not in counts]
        if not counted:
            return counts
        ids = [run.id for run in counted]
        rows = conn.execute(
            select(step.run_id, step.status, func.count())
            .where(step.run_id.in_(ids))
            .group_by(step.run_id, step.status)
        ).all()
        superseded = superseded_attempts(conn, ids)
        planned = _planned(
            conn, [run.snapshot.id for run in counted if not run.snapshot.is_dynamic]
        )
    found = latest_counts(rows, [(row.run_id, row.status) for row in superseded])
    for run in counted:
        counts[run.id] = found[run.id]
        settle_counts(counts[run.id], run, planned.get(run.snapshot.id, 0))
    return counts


def counts_of(groups: Sequence[StepGroup]) -> dict[str, int]:
    """A run's counts by state: its step names' summed (saves reading them again)."""
    counts = empty_counts()
    for group in groups:
        for state, count in group.counts.items():
            counts[state] += count
    return counts


def _planned(conn: Connection, snapshot_ids: list[str]) -> dict[str, int]:
    """Snapshot id -> invocations the static snapshot planned."""
    if not snapshot_ids:
        return {}
    config = s.step_configuration.c
    rows = conn.execute(
        select(config.snapshot_id, func.count())
        .where(config.snapshot_id.in_(snapshot_ids))
        .group_by(config.snapshot_id)
    ).all()
    return {snapshot_id: count for snapshot_id, count in rows}


def recorded(counts: dict[str, int]) -> int:
    """How many invocations these counts (by state) hold that have a step run."""
    return sum(counts.values()) - counts[NOT_STARTED]


def settle_counts(counts: dict[str, int], run: PipelineRunResponse, planned: int) -> None:
    """Running reads failed in a finished run; planned invocations not yet recorded count
    as not started."""
    if is_finished(run):
        counts["failed"] += counts["running"]
        counts["running"] = 0
    counts[NOT_STARTED] = max(planned - recorded(counts), 0)


# ---- invocations ---------------------------------------------------------------------------


def invocation_page(
    engine: Engine,
    run: PipelineRunResponse,
    page: int,
    page_size: int,
    step_name: str | None = None,
    status: str | None = None,
) -> Page[InvocationRow]:
    """The run's invocations (latest attempts) in the order they started, then those a static
    run planned that have not started (in the DAG's order), optionally of one step name or in
    one state; one page of them."""
    offset = page_offset(page, page_size)
    with engine.connect() as conn:
        rows: list[InvocationRow] = []
        total = 0
        if status != NOT_STARTED:
            rows, total = _started(conn, run, offset, page_size, step_name, status)
        if status in (None, NOT_STARTED) and not run.snapshot.is_dynamic:
            waiting = _not_started(run, step_name)
            room = page_size - len(rows)
            skip = max(offset - total, 0)
            rows += [_waiting_row(row) for row in conn.execute(waiting.offset(skip).limit(room))]
            total += conn.execute(select(func.count()).select_from(waiting.subquery())).scalar_one()
    return Page(rows, page, page_size, total)


def _not_started(run: PipelineRunResponse, step_name: str | None) -> Any:
    """The invocations a static run planned that have no step run (yet), in the DAG's order."""
    config, step = s.step_configuration.c, s.step_run.c
    query = select(config.name, config.step_name).where(
        config.snapshot_id == run.snapshot.id,
        config.step_run_id.is_(None),
        ~exists().where(step.run_id == run.id, step.name == config.name),
    )
    if step_name is not None:
        query = query.where(config.step_name == step_name)
    return query.order_by(config.id)


def _started(
    conn: Connection,
    run: PipelineRunResponse,
    offset: int,
    page_size: int,
    step_name: str | None,
    status: str | None,
) -> tuple[list[InvocationRow], int]:
    """`page_size` of the invocations that have a step run, from `offset`, and how many
    there are."""
    step = s.step_run.c
    status_read = read_status(run)
    conditions = [step.run_id == run.id]
    if step_name is not None:
        conditions.append(step.step_name == step_name)
    if status is not None:
        conditions.append(status_read_as(run, status))
    total = _latest_total(conn, run, conditions, step_name, status)
    rows = conn.execute(
        select(
            step.name,
            step.step_name,
            status_read.label("read_status"),
            step.status,
            step.attempt,
            step.start_time,
            step.end_time,
            step.cache_verdict,
            step.exception_type,
            step.exception_message,
        )
        .where(*conditions, latest_attempt())
        .order_by(step.start_time.is_(None), step.start_time, step.name)
        .limit(page_size)
        .offset(offset)
    ).all()
    return [_invocation_row(row) for row in rows], total


def _latest_total(
    conn: Connection,
    run: PipelineRunResponse,
    conditions: list[Any],
    step_name: str | None,
    status: str | None,
) -> int:
    """How many latest attempts meet `conditions` (of this step name, in this state)."""
    every = conn.execute(select(func.count()).where(*conditions)).scalar()
    superseded = [
        row
        for row in superseded_attempts(conn, [run.id])
        if step_name in (None, row.step_name) and status in (None, status_in(run, row.status))
    ]
    return int(every or 0) - len(superseded)


def _waiting_row(row: Any) -> InvocationRow:
    return InvocationRow(row.name, row.step_name, NOT_STARTED, None, None, None, None, None, None)


def _invocation_row(row: Any) -> InvocationRow:
    lost = row.status == "running" and row.read_status == "failed"
    return InvocationRow(
        invocation=row.name,
        step_name=row.step_name,
        status=row.read_status,
        attempt=row.attempt,
        start=row.start_time,
        end=row.end_time,
        cache_verdict=row.cache_verdict,
        exception_type=LOST_TYPE if lost else row.exception_type,
        exception_message=ATTEMPT_LOST_MESSAGE if lost else row.exception_message,
    )
