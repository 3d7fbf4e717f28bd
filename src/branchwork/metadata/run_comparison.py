"""What `branchwork runs diff` compares of each invocation of a run, read a chunk at a time in
the order of invocation ids, so that two runs are compared side by side without holding
either (reading them whole took about 8 KB per step run: two million-step runs ran out of
memory).

The order is the ids' code points: SQLite's binary collation, PostgreSQL's "C" collation (its
default one sorts by language rules, which a merge in Python could not follow). Of each
invocation, its latest attempt; its inputs as its configuration records them (the step
run's, or a static run's snapshot's, read whole once: a static run's graph is in memory
when it runs anyway); its parents as invocation ids. Never writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, select

from branchwork.exceptions import BranchworkError
from branchwork.metadata import schema as s
from branchwork.metadata.chunking import chunks
from branchwork.metadata.run_attempts import CHUNK, parents_of
from branchwork.models.responses import PipelineRunResponse, loads


class Compared(NamedTuple):
    """An invocation's latest attempt, as `runs diff` compares it."""

    name: str
    step_name: str
    first_start: datetime | None  # its first attempt's: the order runs are shown in
    code_hash: str
    cache_key: str | None
    inputs: dict[str, Any]
    parents: list[str]  # invocation ids, sorted


def compared_invocations(
    engine: Engine, run: PipelineRunResponse, size: int = CHUNK
) -> Iterator[Compared]:
    """Each invocation of `run`, in the order of their ids; see the module docstring."""
    step = s.step_run.c
    name = step.name if engine.dialect.name == "sqlite" else step.name.collate("C")
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=size).execute(
            select(
                step.id, step.name, step.step_name, step.start_time, step.code_hash, step.cache_key
            )
            .where(step.run_id == run.id)
            .order_by(name, step.attempt)
        )
        # The latest attempts read so far, with their first attempts' start times: all but
        # the last invocation's complete.
        latest: list[tuple[Any, datetime | None]] = []
        planned: dict[str, dict[str, Any]] = {}  # a static run's, read when first needed
        for row in rows:
            if latest and latest[-1][0].name == row.name:
                latest[-1] = (row, latest[-1][1])  # a later attempt
                continue
            if latest and row.name < latest[-1][0].name:  # a merge would go wrong silently
                raise BranchworkError(
                    f"Run '{run.name}': the store returned invocation '{row.name}' after "
                    f"'{latest[-1][0].name}', out of code point order; cannot compare it."
                )
            if len(latest) > size:
                yield from _compared(conn, run, latest[:-1], planned)
                latest = latest[-1:]
            latest.append((row, row.start_time))
        yield from _compared(conn, run, latest, planned)


def _compared(
    conn: Connection,
    run: PipelineRunResponse,
    latest: Sequence[tuple[Any, datetime | None]],
    planned: dict[str, dict[str, Any]],
) -> list[Compared]:
    rows = [row for row, _ in latest]
    parents, names = parents_of(conn, [row.id for row in rows])
    inputs = _recorded(conn, [row.id for row in rows])
    if len(inputs) < len(rows) and not planned:
        planned.update(_planned(conn, run))
    return [
        Compared(
            row.name,
            row.step_name,
            first_start,
            row.code_hash,
            row.cache_key,
            inputs[row.id] if row.id in inputs else planned.get(row.name, {}),
            sorted({names.get(parent, parent) for parent in parents.get(row.id, ())}),
        )
        for row, first_start in latest
    ]


def _recorded(conn: Connection, step_run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Step run id -> the inputs its own configuration records (a dynamic run's)."""
    config = s.step_configuration.c
    found: dict[str, dict[str, Any]] = {}
    for chunk in chunks(step_run_ids):
        for step_run_id, text in conn.execute(
            select(config.step_run_id, config.config).where(config.step_run_id.in_(chunk))
        ):
            found[step_run_id] = _recorded_inputs(text)
    return found


def _planned(conn: Connection, run: PipelineRunResponse) -> dict[str, dict[str, Any]]:
    """Invocation id -> the inputs the snapshot of a static run plans for it, all at once
    (looked up a chunk of names at a time, each lookup read the whole snapshot's)."""
    config = s.step_configuration.c
    rows = conn.execute(
        select(config.name, config.config).where(config.snapshot_id == run.snapshot.id)
    )
    return {name: _recorded_inputs(text) for name, text in rows}


def _recorded_inputs(text: str | None) -> dict[str, Any]:
    config = loads(text, {})
    inputs = config.get("inputs") if isinstance(config, dict) else None
    return inputs if isinstance(inputs, dict) else {}
