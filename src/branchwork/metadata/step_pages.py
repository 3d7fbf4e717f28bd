"""One invocation of a run, for the dashboard's step page: its attempts, its inputs a page at
a time with the step runs that made them, the step runs (of any run) that took its outputs,
and its logs a slice at a time.

Reads only that invocation's rows, and pages what can be large: a `merge` of a 10,000-item
fan-out has 10,000 inputs and parents, of which a page is read. Never writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, or_, select

from branchwork.exceptions import BranchworkError
from branchwork.metadata import schema as s
from branchwork.metadata.queries import (
    _VERSION_COLUMNS,
    _configuration,
    _lost_attempt,
    _version,
    labels_of,
    step_run_response,
)
from branchwork.metadata.run_listing import StepRunOrigin
from branchwork.metadata.run_pages import Page, is_finished, latest_attempt, page_offset
from branchwork.models.responses import (
    ArtifactVersionResponse,
    PipelineRunResponse,
    StepRunResponse,
)

SIMILAR = 10  # invocation ids an error about a missing one suggests
PARENTS_READ = 50  # parents of the latest attempt read with it (their count is told apart)


@dataclass(frozen=True)
class LogSlice:
    """Characters [offset, offset + len(text)) of a step run's log, which has `total`."""

    text: str
    offset: int
    total: int


@dataclass(frozen=True)
class Attempts:
    """Every attempt of an invocation, first to latest, with outputs and configuration (not
    inputs: `input_page`); the latest with its first `PARENTS_READ` parents, of `parents`."""

    attempts: list[StepRunResponse]
    parents: int

    @property
    def latest(self) -> StepRunResponse:
        return self.attempts[-1]


def invocation_attempts(engine: Engine, run: PipelineRunResponse, invocation: str) -> Attempts:
    """The attempts of `invocation` in `run`; a BranchworkError naming similar invocations
    (the CLI's message) if it has none."""
    step = s.step_run.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(s.step_run)
            .where(step.run_id == run.id, step.name == invocation)
            .order_by(step.attempt)
        ).all()
        if not rows:
            raise _missing(conn, run, invocation)
        ids = [row.id for row in rows]
        outputs = _outputs(conn, ids)
        configs = _configurations(conn, run, invocation, ids)
        parents, parent_count = _parents(conn, ids[-1])
    attempts = [
        _attempt(row, outputs.get(row.id, {}), parents if row.id == ids[-1] else (), configs)
        for row in rows
    ]
    if is_finished(run):
        attempts = [
            _lost_attempt(a, run.end_time) if a.status == "running" else a for a in attempts
        ]
    return Attempts(attempts, parent_count)


def require_invocation(engine: Engine, run: PipelineRunResponse, invocation: str) -> None:
    """A BranchworkError naming similar invocations (the CLI's message) if `run` has no
    `invocation`."""
    step = s.step_run.c
    with engine.connect() as conn:
        found = conn.execute(
            select(step.id).where(step.run_id == run.id, step.name == invocation).limit(1)
        ).first()
        if found is None:
            raise _missing(conn, run, invocation)


def _missing(conn: Connection, run: PipelineRunResponse, invocation: str) -> BranchworkError:
    """Why `run` has no step run of `invocation`: a static run planned it, but it has not
    started; or the run has no such invocation (the CLI's message)."""
    config = s.step_configuration.c
    planned = conn.execute(
        select(config.id).where(
            config.snapshot_id == run.snapshot.id,
            config.step_run_id.is_(None),
            config.name == invocation,
        )
    ).first()
    if planned is None:
        return BranchworkError(
            no_invocation_message(run.name, invocation, _similar(conn, run, invocation))
        )
    if not is_finished(run):
        return BranchworkError(
            f"Invocation '{invocation}' of run '{run.name}' has not started yet."
        )
    return BranchworkError(
        f"Invocation '{invocation}' of run '{run.name}' never started: the run ended first "
        "(a step it depends on failed, or the run was stopped)."
    )


def _similar(conn: Connection, run: PipelineRunResponse, invocation: str) -> list[str]:
    step = s.step_run.c
    return list(
        conn.execute(
            select(step.name)
            .distinct()
            .where(step.run_id == run.id, step.name.startswith(invocation, autoescape=True))
            .order_by(step.name)
            .limit(SIMILAR)
        ).scalars()
    )


def no_invocation_message(run_name: str, invocation: str, similar: list[str]) -> str:
    """The CLI's words for an invocation a run does not have."""
    hint = f"; invocations like it: {', '.join(similar)}" if similar else ""
    return (
        f"Run '{run_name}' has no invocation '{invocation}'{hint} (`branchwork runs show "
        f"{run_name}` lists them)."
    )


def _outputs(conn: Connection, step_run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Step run id -> output name -> artifact version."""
    link = s.step_run_output_artifact
    rows = conn.execute(_linked_versions(link, link.c.step_run_id.in_(step_run_ids))).all()
    labels = _labels(conn, rows)
    found: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        found[row.step_run_id][row.link_name] = _version(row, labels)
    return found


def _linked_versions(link: Any, where: Any) -> Select[Any]:
    """The artifact versions of the link rows `where` selects, with the link's name."""
    return (
        select(link.c.step_run_id, link.c.name.label("link_name"), *_VERSION_COLUMNS)
        .join(s.artifact_version, s.artifact_version.c.id == link.c.artifact_version_id)
        .join(s.artifact, s.artifact.c.id == s.artifact_version.c.artifact_id)
        .where(where)
    )


def _labels(conn: Connection, rows: Sequence[Any]) -> Any:
    ids = sorted({row.id for row in rows})
    return labels_of(conn, select(s.artifact_version.c.id).where(s.artifact_version.c.id.in_(ids)))


def _configurations(
    conn: Connection, run: PipelineRunResponse, invocation: str, step_run_ids: list[str]
) -> dict[str | None, Any]:
    """Step run id -> its configuration (dynamic); None -> the snapshot's (static)."""
    config = s.step_configuration.c
    rows = conn.execute(
        select(s.step_configuration).where(
            or_(
                config.step_run_id.in_(step_run_ids),
                (config.snapshot_id == run.snapshot.id) & (config.name == invocation),
            )
        )
    ).all()
    return {row.step_run_id: _configuration(row) for row in rows}


def _parents(conn: Connection, step_run_id: str) -> tuple[tuple[str, ...], int]:
    """The first PARENTS_READ parents of a step run (in the order they started), and how many
    it has."""
    link, parent = s.step_run_parent.c, s.step_run.c
    where = link.child_id == step_run_id
    count = conn.execute(select(func.count()).select_from(s.step_run_parent).where(where))
    first = conn.execute(
        select(link.parent_id)
        .join(s.step_run, parent.id == link.parent_id)
        .where(where)
        .order_by(parent.start_time, parent.name)
        .limit(PARENTS_READ)
    ).scalars()
    return tuple(first), int(count.scalar() or 0)


def _attempt(
    row: Any, outputs: dict[str, Any], parents: tuple[str, ...], configs: dict[str | None, Any]
) -> StepRunResponse:
    return step_run_response(row, {}, outputs, parents, configs.get(row.id) or configs.get(None))


def input_page(
    engine: Engine, step_run_id: str, page: int, page_size: int
) -> Page[tuple[str, ArtifactVersionResponse]]:
    """(input name, artifact version) of a step run, by name; one page of them."""
    link = s.step_run_input_artifact
    where = link.c.step_run_id == step_run_id
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(link).where(where)).scalar()
        rows = conn.execute(
            _linked_versions(link, where)
            .order_by(func.length(link.c.name), link.c.name)  # values[2] before values[10]
            .limit(page_size)
            .offset(page_offset(page, page_size))
        ).all()
        labels = _labels(conn, rows)
    items = [(row.link_name, _version(row, labels)) for row in rows]
    return Page(items, page, page_size, int(total or 0))


def consumer_page(
    engine: Engine, version_id: str, page: int, page_size: int
) -> Page[StepRunOrigin]:
    """The invocations (latest attempts, of any run) that took this artifact version as an
    input, oldest run first; one page of them. A BranchworkError if there is no such
    version."""
    step, link, run = s.step_run.c, s.step_run_input_artifact.c, s.pipeline_run.c
    joined = s.step_run_input_artifact.join(s.step_run, step.id == link.step_run_id).join(
        s.pipeline_run, run.id == step.run_id
    )
    conditions = (link.artifact_version_id == version_id, latest_attempt())
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(joined).where(*conditions)).scalar()
        version = s.artifact_version.c
        known = select(version.id).where(version.id == version_id)
        if not total and conn.execute(known).first() is None:
            raise BranchworkError(f"No artifact version with id {version_id!r}.")
        rows = conn.execute(
            select(step.id, step.run_id, run.name, step.name)
            .select_from(joined)
            .where(*conditions)
            .order_by(run.created, step.start_time, step.name)
            .limit(page_size)
            .offset(page_offset(page, page_size))
        ).all()
    return Page([StepRunOrigin(*row) for row in rows], page, page_size, int(total or 0))


def log_slice(engine: Engine, step_run_id: str, offset: int, limit: int) -> LogSlice:
    """`limit` characters of what a step run printed and logged, from `offset`; cut in SQL,
    so a log of megabytes is never read whole."""
    log = s.step_log.c
    with engine.connect() as conn:
        row = conn.execute(
            select(func.length(log.text), func.substr(log.text, offset + 1, limit)).where(
                log.step_run_id == step_run_id
            )
        ).one_or_none()
    if row is None:
        return LogSlice("", 0, 0)
    total, text = row
    return LogSlice(text or "", min(offset, total), total)
