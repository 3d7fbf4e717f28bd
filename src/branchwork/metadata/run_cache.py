"""Why a run's invocations were cache hits or misses, read without the rest of the run: each
invocation's recorded verdict and reason (its latest attempt's), or, for a big run, how many
of each step had each verdict, with one example reason. Never writes."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Engine, func, select

from branchwork.metadata import schema as s
from branchwork.metadata.run_pages import latest_attempt
from branchwork.models.responses import CacheDecision, PipelineRunResponse


class CacheGroup(NamedTuple):
    """The invocations of one step that had one verdict, and the reason the first of them
    (to start) was given; reasons name their invocation, so they differ within a group."""

    step_name: str
    verdict: str | None
    invocations: int
    example: CacheDecision


def cache_decisions(engine: Engine, run: PipelineRunResponse) -> list[CacheDecision]:
    """Every invocation's decision, in the order the invocations (first) started."""
    step = s.step_run.c
    query = (
        select(step.name, step.step_name, step.cache_verdict, step.cache_reason)
        .where(step.run_id == run.id)
        .order_by(step.start_time, step.attempt)
    )
    decisions: dict[str, CacheDecision] = {}
    with engine.connect() as conn:
        for row in conn.execute(query):  # a later attempt's replaces an earlier one's
            decisions[row.name] = CacheDecision(*row)
    return list(decisions.values())


def cache_groups(engine: Engine, run: PipelineRunResponse) -> list[CacheGroup]:
    """The run's decisions counted per step name and verdict (latest attempts), the biggest
    group first."""
    step = s.step_run.c
    counted = (
        select(step.step_name, step.cache_verdict, func.count().label("invocations"))
        .where(step.run_id == run.id, latest_attempt())
        .group_by(step.step_name, step.cache_verdict)
        .order_by(func.count().desc(), step.step_name, step.cache_verdict)
    )
    with engine.connect() as conn:
        groups = conn.execute(counted).all()
        examples = [
            conn.execute(
                select(step.name, step.step_name, step.cache_verdict, step.cache_reason)
                .where(
                    step.run_id == run.id,
                    step.step_name == group.step_name,
                    step.cache_verdict.is_(None)
                    if group.cache_verdict is None
                    else step.cache_verdict == group.cache_verdict,
                    latest_attempt(),
                )
                .order_by(step.start_time, step.name)
                .limit(1)
            ).one()
            for group in groups
        ]
    return [
        CacheGroup(group.step_name, group.cache_verdict, group.invocations, CacheDecision(*row))
        for group, row in zip(groups, examples, strict=True)
    ]
