"""Paged and aggregated reads of runs and their step runs, for the dashboard.

Built for runs of 10,000 steps and more: every list is paged in SQL (LIMIT/OFFSET) and
counted with COUNT, every figure per state or per step name is a GROUP BY, and duration
percentiles come from window functions; nothing here reads all the step runs of a run into
Python, and nothing writes.

An invocation's state is that of its latest attempt. In a run that has finished (or is lost,
see `metadata.lost`), an attempt still recorded running reads failed, as in every reader.
Runs are read without their snapshot's step configurations (`run_records`), which a static
run of 10,000 steps has 10,000 of; `queries.get_run` reads them all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    Connection,
    Engine,
    case,
    exists,
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
    lost_cutoff,
    lost_status,
)
from branchwork.metadata.queries import _VERSION_COLUMNS, _version, labels_of, run_response
from branchwork.metadata.run_refs import resolve_run
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
    attempt: int
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
        )
        .join(s.pipeline, s.pipeline.c.id == run.c.pipeline_id)
        .join(snap, snap.c.id == run.c.snapshot_id)
        .where(run.c.id.in_(run_ids))
    ).all()
    outputs = _run_outputs(conn, run_ids)
    cutoff = lost_cutoff()
    by_id = {row.id: _run_record(row, outputs.get(row.id, []), cutoff) for row in rows}
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
        outputs[row.run_id].append(_version(row, row.artifact_name, labels))
    return outputs


def _run_record(row: Any, outputs: list[Any], cutoff: float) -> PipelineRunResponse:
    lost = is_lost(row.status, row.heartbeat, cutoff)
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
        conditions.append(lost_status(lost_cutoff()).in_(sorted(where.statuses)))
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


def latest_attempt() -> Any:
    """The step run is its invocation's latest attempt (no later one exists)."""
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


def run_counts(engine: Engine, runs: Sequence[PipelineRunResponse]) -> dict[str, dict[str, int]]:
    """Run id -> how many of its invocations are in each state (every key of COUNT_KEYS)."""
    step = s.step_run.c
    ids = [run.id for run in runs]
    counts = {run_id: empty_counts() for run_id in ids}
    with engine.connect() as conn:
        rows = conn.execute(
            select(step.run_id, step.status, func.count())
            .where(step.run_id.in_(ids), latest_attempt())
            .group_by(step.run_id, step.status)
        ).all()
        planned = _planned(conn, [run.snapshot.id for run in runs if not run.snapshot.is_dynamic])
    for run_id, status, count in rows:
        counts[run_id][status] = counts[run_id].get(status, 0) + count
    for run in runs:
        settle_counts(counts[run.id], run, planned.get(run.snapshot.id, 0))
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


def settle_counts(counts: dict[str, int], run: PipelineRunResponse, planned: int) -> None:
    """Running reads failed in a finished run; planned invocations not yet recorded count
    as not started."""
    if is_finished(run):
        counts["failed"] += counts["running"]
        counts["running"] = 0
    recorded = sum(counts.values()) - counts[NOT_STARTED]
    counts[NOT_STARTED] = max(planned - recorded, 0)


# ---- invocations ---------------------------------------------------------------------------


def invocation_page(
    engine: Engine,
    run: PipelineRunResponse,
    page: int,
    page_size: int,
    step_name: str | None = None,
    status: str | None = None,
) -> Page[InvocationRow]:
    """The run's invocations (latest attempts) in the order they started, optionally of one
    step name or in one state; one page of them."""
    step = s.step_run.c
    status_read = read_status(run)
    conditions = [step.run_id == run.id, latest_attempt()]
    if step_name is not None:
        conditions.append(step.step_name == step_name)
    if status is not None:
        conditions.append(status_read == status)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).where(*conditions)).scalar()
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
            .where(*conditions)
            .order_by(step.start_time.is_(None), step.start_time, step.name)
            .limit(page_size)
            .offset(page_offset(page, page_size))
        ).all()
    return Page([_invocation_row(row) for row in rows], page, page_size, int(total or 0))


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
