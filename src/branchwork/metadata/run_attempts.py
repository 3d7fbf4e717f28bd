"""Every attempt of a run, a chunk at a time, for `branchwork runs show RUN --all` of a run
too large to hold in memory (`queries.get_run` reads a run whole: a million step runs take
gigabytes as responses).

One query reads the run's step runs in the order `get_run` gives them (start time, attempt)
and hands them over as they come; each chunk's outputs and parents (with the invocation ids
of those parents) are read with it, when asked for. Inputs and configurations are not read
(the CLI prints neither). As in `run_pages`, an attempt still recorded running reads failed
in a finished run. Never writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from branchwork.metadata import schema as s
from branchwork.metadata.chunking import chunks
from branchwork.metadata.queries import _links, _lost_attempt, step_run_response
from branchwork.metadata.run_pages import is_finished
from branchwork.models.responses import PipelineRunResponse, StepRunResponse

CHUNK = 2_000  # step runs read and printed at a time


@dataclass(frozen=True)
class AttemptChunk:
    """Some of a run's attempts, in order; `names`: the invocation id of each parent they
    name (parents are step run ids)."""

    attempts: list[StepRunResponse]
    names: dict[str, str]


def attempt_chunks(
    engine: Engine, run: PipelineRunResponse, links: bool = True, size: int = CHUNK
) -> Iterator[AttemptChunk]:
    """The run's attempts, `size` at a time; with `links`, with their outputs and parents."""
    step = s.step_run.c
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=size).execute(
            select(s.step_run).where(step.run_id == run.id).order_by(step.start_time, step.attempt)
        )
        for partition in rows.partitions():
            yield _chunk(conn, run, partition, links)


def _chunk(
    conn: Connection, run: PipelineRunResponse, rows: Sequence[Any], links: bool
) -> AttemptChunk:
    ids = [row.id for row in rows]
    outputs = _links(conn, s.step_run_output_artifact, ids, {}) if links else {}
    parents, names = parents_of(conn, ids) if links else ({}, {})
    attempts = [
        step_run_response(row, {}, outputs.get(row.id, {}), tuple(parents.get(row.id, ())), None)
        for row in rows
    ]
    if is_finished(run):
        attempts = [
            _lost_attempt(a, run.end_time) if a.status == "running" else a for a in attempts
        ]
    return AttemptChunk(attempts, names)


def parents_of(
    conn: Connection, step_run_ids: list[str]
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Child step run id -> its parents' step run ids; parent id -> its invocation id."""
    link, parent = s.step_run_parent.c, s.step_run.c
    parents: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    for chunk in chunks(step_run_ids):
        for child_id, parent_id, name in conn.execute(
            select(link.child_id, link.parent_id, parent.name)
            .join(s.step_run, parent.id == link.parent_id)
            .where(link.child_id.in_(chunk))
            .order_by(link.child_id, link.parent_id)
        ):
            parents[child_id].append(parent_id)
            names[parent_id] = name
    return parents, names


def name_widths(engine: Engine, run: PipelineRunResponse) -> tuple[int, int]:
    """The longest invocation id and step name of the run (0, 0 without step runs): what a
    table printed a chunk at a time pads its first columns to."""
    step = s.step_run.c
    with engine.connect() as conn:
        longest = conn.execute(
            select(func.max(func.length(step.name)), func.max(func.length(step.step_name))).where(
                step.run_id == run.id
            )
        ).one()
    return int(longest[0] or 0), int(longest[1] or 0)
