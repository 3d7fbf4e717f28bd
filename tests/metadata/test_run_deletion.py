"""Deleting runs through `branchwork runs delete` leaves no row behind in any table, on SQLite
and on PostgreSQL, while versions another run links (through the cache) stay."""

from __future__ import annotations

from collections import deque

from sqlalchemy import func, select
from typer.testing import CliRunner

from branchwork import pipeline, step
from branchwork.cli.app import app
from branchwork.metadata import schema
from branchwork.metadata.store import get_engine


@step
def seed() -> int:
    print("seeding")
    return 3


@step
def part(i: int, salt: int) -> int:
    print(f"part {i}")
    return i + salt


@step
def total(values: list) -> int:
    return sum(values)


@pipeline
def salted(salt: int):
    n = seed()  # a value the body reads: a dynamic run, with parent edges and logs
    return total([part(i, salt) for i in range(n)])


def row_counts() -> dict[str, int]:
    """Rows in every table of the schema."""
    with get_engine().connect() as conn:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in schema.metadata.sorted_tables
        }


def delete(run_name: str) -> str:
    result = CliRunner().invoke(app, ["runs", "delete", run_name, "--yes"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_deleting_runs_leaves_no_orphan_rows(store_url):
    empty = row_counts()
    assert salted(salt=1) == 6
    first = salted.last_run
    after_first = row_counts()
    assert salted(salt=2) == 9
    second = salted.last_run
    assert second.steps["seed"].status == "cached"
    assert second.steps["seed"].output.id == first.steps["seed"].output.id
    with_both = row_counts()
    grown = {name for name in with_both if with_both[name] > after_first[name]}
    assert grown == {
        "pipeline_snapshot",
        "pipeline_run",
        "step_run",
        "step_configuration",
        "artifact_version",
        "step_run_input_artifact",
        "step_run_output_artifact",
        "step_run_parent",
        "step_edge",
        "pipeline_run_output",
        "step_log",
    }
    assert with_both["step_edge"] == 2 * after_first["step_edge"] == 4  # seed -> part -> total

    out = delete(second.name)
    assert f"Deleted run '{second.name}': 5 step runs, 4 artifact versions." in out
    assert row_counts() == after_first  # the cached seed version stays: the first run links it

    out = delete(first.name)
    assert f"Deleted run '{first.name}': 5 step runs, 5 artifact versions." in out
    # Pipeline and artifact rows are name identities, code fingerprints content identities
    # (what a code digest is made of): they stay; every other table is as new.
    assert row_counts() == {
        **empty,
        "pipeline": 1,
        "artifact": after_first["artifact"],
        "code_fingerprint": after_first["code_fingerprint"],
    }


COMPUTED: deque[int] = deque()  # not a list: see CALLS in tests/test_caching.py


@step
def expensive(x: int) -> int:
    COMPUTED.append(x)
    return x * 10


@pipeline
def costly(x: int = 4):
    return expensive(x)


def test_deleting_the_run_a_cache_hit_reused_keeps_the_cache(store_url):
    """A later run reused the deleted run's result: that result stays served (it recomputed,
    saying the earlier run 'recorded no key'), until it is invalidated."""
    from branchwork import Client

    COMPUTED.clear()
    assert costly() == 40
    first = costly.last_run
    assert costly() == 40
    second = costly.last_run
    assert "Kept 1 artifact versions it produced that other runs use." in delete(first.name)
    assert costly() == 40
    third = costly.last_run.steps["expensive"]
    assert list(COMPUTED) == [4]
    assert (third.status, third.cache_reason) == (
        "cached",
        f"reused invocation 'expensive' of run '{second.name}'",
    )
    assert Client().invalidate_cache("expensive") == 1
    assert costly() == 40
    assert list(COMPUTED) == [4, 4]


def test_an_invalidated_result_stays_invalidated_when_the_run_that_made_it_is_deleted(
    store_url,
):
    """The later run's cache hit was not marked, and served once the original was gone."""
    from branchwork import Client

    COMPUTED.clear()
    costly(x=5)
    first = costly.last_run
    costly(x=5)
    assert Client().invalidate_cache("expensive") == 1
    delete(first.name)
    costly(x=5)
    assert list(COMPUTED) == [5, 5]
    assert costly.last_run.steps["expensive"].cache_reason == (
        "a result with this key was cached, then invalidated (branchwork cache invalidate)"
    )
