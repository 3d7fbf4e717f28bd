"""What a run's invocations were called with, as a replay checks its overrides against them:
each invocation's step and the names of its arguments, from its configuration (a static
run's are in its snapshot, a dynamic run's on its step runs: the latest attempt's). Read one
step name or one invocation at a time, a batch of rows at a time, never the whole run: a
replay of a million-step run read every step run whole (about 15 KB each)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, NamedTuple

from sqlalchemy import Engine, func, select, union

from branchwork.metadata import schema as s
from branchwork.models.responses import PipelineRunResponse

BATCH = 2_000  # configurations fetched at a time


class RecordedCall(NamedTuple):
    invocation_id: str
    step_name: str
    arguments: frozenset[str]


def step_names(engine: Engine, run: PipelineRunResponse) -> set[str]:
    """The names of the steps the run planned or recorded."""
    step, config = s.step_run.c, s.step_configuration.c
    query = union(
        select(step.step_name).where(step.run_id == run.id),
        select(config.step_name).where(config.snapshot_id == run.snapshot.id),
    )
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def calls_of_step(
    engine: Engine, run: PipelineRunResponse, step_name: str
) -> Iterator[RecordedCall]:
    """Every invocation of `step_name` the run planned or recorded."""
    return _calls(engine, run, s.step_configuration.c.step_name == step_name)


def call_of(engine: Engine, run: PipelineRunResponse, invocation_id: str) -> RecordedCall | None:
    """The invocation `invocation_id` of the run, if it planned or recorded it."""
    return next(_calls(engine, run, s.step_configuration.c.name == invocation_id), None)


def some_invocations(engine: Engine, run: PipelineRunResponse, limit: int) -> tuple[list[str], int]:
    """The run's first `limit` invocation ids in order, and how many it has in all."""
    step, config = s.step_run.c, s.step_configuration.c
    names = union(
        select(step.name.label("name")).where(step.run_id == run.id),
        select(config.name.label("name")).where(config.snapshot_id == run.snapshot.id),
    ).subquery()
    with engine.connect() as conn:
        first = conn.execute(select(names.c.name).order_by(names.c.name).limit(limit))
        total = conn.execute(select(func.count()).select_from(names)).scalar_one()
        return list(first.scalars()), int(total)


def _calls(engine: Engine, run: PipelineRunResponse, where: Any) -> Iterator[RecordedCall]:
    """The planned and the recorded (latest attempts') configurations of the run that match
    `where`, as calls. A run has one or the other: static runs' step runs carry none."""
    config, step = s.step_configuration.c, s.step_run.c
    later = s.step_run.alias("later").c
    latest = (
        select(func.max(later.attempt))
        .where(later.run_id == step.run_id, later.name == step.name)
        .scalar_subquery()
    )
    planned = select(config.name, config.step_name, config.config).where(
        config.snapshot_id == run.snapshot.id, where
    )
    recorded = (
        select(step.name, config.step_name, config.config)
        .join(s.step_run, step.id == config.step_run_id)
        .where(step.run_id == run.id, step.attempt == latest, where)
    )
    with engine.connect() as conn:
        for query in (planned, recorded):
            for name, step_name, text in conn.execution_options(yield_per=BATCH).execute(query):
                inputs = json.loads(text).get("inputs") or {}
                yield RecordedCall(name, step_name, frozenset(inputs))
