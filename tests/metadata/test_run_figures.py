"""A big run keeps its figures per step name when it ends (`metadata.run_figures`): what
`runs show`, `runs list`, `runs graph` and the dashboard read of it is then one row, and the
same as counting its step runs; a row the run no longer matches is never read."""

from __future__ import annotations

import json
import logging
from collections import deque

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError

from branchwork import Client, pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.metadata import schema
from branchwork.metadata.run_deletion import delete_run
from branchwork.metadata.run_figures import KEPT_FROM
from branchwork.metadata.run_groups import group_durations, step_groups
from branchwork.metadata.run_pages import find_run, run_counts
from branchwork.metadata.store import get_engine

# A deque, which enters the step's key by its type: a set the step adds to would be hashed by
# its items, and the resumed run's `work` would diverge from the first's (docs/caching.md).
failed_once: deque[int] = deque()
total_fails = {"now": False}


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def work(i: int) -> int:
    if i % 250 == 7 and i not in failed_once:  # four invocations take a second attempt
        failed_once.append(i)
        raise ValueError(f"flaky work {i}")
    return i


@step
def total(values: list[int]) -> int:
    if total_fails["now"]:
        raise RuntimeError("total told to fail")
    return sum(values)


@pipeline
def fan(n: int) -> int:
    return total([work(i) for i in range(n)])


@pytest.fixture(autouse=True)
def fresh_flags():
    failed_once.clear()
    total_fails["now"] = False


def kept_rows(run_id: str) -> list[tuple[str, object]]:
    summary = schema.run_summary.c
    with get_engine().connect() as conn:
        return [
            (row.status, row.end_time)
            for row in conn.execute(
                select(summary.status, summary.end_time).where(summary.run_id == run_id)
            )
        ]


def figures(run_id: str) -> tuple[object, ...]:
    """What the readers read of the run: its step groups, durations and counts."""
    engine = get_engine()
    run = find_run(engine, run_id)
    groups = step_groups(engine, run)
    return groups, group_durations(engine, run, groups), run_counts(engine, [run])[run.id]


def counted(run_id: str) -> tuple[object, ...]:
    """The same, counted from the step runs: the kept row forgotten first."""
    with get_engine().begin() as conn:
        conn.execute(delete(schema.run_summary).where(schema.run_summary.c.run_id == run_id))
    return figures(run_id)


def by_step(groups) -> dict[str, dict[str, int]]:
    return {group.step_name: {k: v for k, v in group.counts.items() if v} for group in groups}


def test_a_big_run_keeps_figures_that_read_as_its_step_runs_count(store_url):
    assert fan(n=KEPT_FROM) == sum(range(KEPT_FROM))
    run = Client().get_pipeline_run(fan.last_run.id, include_steps=False)
    assert len(fan.last_run.attempts) == KEPT_FROM + 5  # 1 000 works, 4 retried, total
    assert kept_rows(run.id) == [("completed", run.end_time)]

    kept = figures(run.id)
    groups, durations, counts = kept
    assert by_step(groups) == {"work": {"completed": KEPT_FROM}, "total": {"completed": 1}}
    assert [group.executed for group in groups] == [KEPT_FROM, 1]
    assert set(durations) == {"work", "total"}
    assert counts["completed"] == KEPT_FROM + 1 and sum(counts.values()) == KEPT_FROM + 1
    assert counted(run.id) == kept
    assert kept_rows(run.id) == []


def test_readers_read_the_kept_row_not_the_step_runs():
    """A row edited in place is what every reader returns: they read it, not the step runs
    (whose counts equal it, so the test above alone could not tell)."""
    fan(n=KEPT_FROM)
    run_id = fan.last_run.id
    summary = schema.run_summary.c
    with get_engine().begin() as conn:
        kept = json.loads(
            conn.execute(select(summary.figures).where(summary.run_id == run_id)).scalar_one()
        )
        kept["groups"][0]["counts"]["completed"] = 7
        kept["durations"]["work"][0] = 123.0
        conn.execute(
            update(schema.run_summary)
            .where(summary.run_id == run_id)
            .values(figures=json.dumps(kept))
        )
    groups, durations, counts = figures(run_id)
    assert by_step(groups)["work"] == {"completed": 7}
    assert durations["work"].p50 == 123.0
    assert counts["completed"] == 8


def test_a_small_run_keeps_no_figures():
    assert fan(n=10) == 45
    assert kept_rows(fan.last_run.id) == []


def test_a_resumed_run_keeps_the_figures_of_its_new_end(store_url):
    total_fails["now"] = True
    with pytest.raises(Exception, match="total told to fail"):
        fan(n=KEPT_FROM)
    failed = Client().get_pipeline_run(fan.last_run.id, include_steps=False)
    assert kept_rows(failed.id) == [("failed", failed.end_time)]
    assert by_step(figures(failed.id)[0])["total"] == {"failed": 1}

    total_fails["now"] = False  # the resumed session records one step run: total, again
    assert Client().resume_run(failed.id) == sum(range(KEPT_FROM))
    resumed = Client().get_pipeline_run(failed.id, include_steps=False)
    assert kept_rows(failed.id) == [("completed", resumed.end_time)]
    kept = figures(failed.id)
    assert by_step(kept[0]) == {"work": {"completed": KEPT_FROM}, "total": {"completed": 1}}
    assert counted(failed.id) == kept


def test_figures_the_run_no_longer_matches_are_not_read(monkeypatch, caplog):
    total_fails["now"] = True
    with pytest.raises(Exception, match="total told to fail"):
        fan(n=KEPT_FROM)
    run_id = fan.last_run.id
    assert [status for status, _ in kept_rows(run_id)] == ["failed"]

    def refused(engine, run_id):
        raise OperationalError("INSERT INTO run_summary", {}, Exception("disk I/O error"))

    monkeypatch.setattr("branchwork.runtime.runner.keep_figures", refused)
    total_fails["now"] = False
    with caplog.at_level(logging.WARNING, "branchwork"):
        assert Client().resume_run(run_id) == sum(range(KEPT_FROM))  # ended, as recorded
    warnings = [r.getMessage() for r in caplog.records if "Could not keep the figures" in r.msg]
    assert len(warnings) == 1 and run_id in warnings[0] and "disk I/O error" in warnings[0]

    assert [status for status, _ in kept_rows(run_id)] == ["failed"]  # the first end's
    groups, _, counts = figures(run_id)
    assert by_step(groups)["total"] == {"completed": 1}  # counted: the row is not read
    assert counts["failed"] == 0 and counts["completed"] == KEPT_FROM + 1


def test_deleting_a_run_deletes_its_figures():
    fan(n=KEPT_FROM)
    run_id = fan.last_run.id
    assert len(kept_rows(run_id)) == 1
    delete_run(get_engine(), run_id)
    assert kept_rows(run_id) == []
