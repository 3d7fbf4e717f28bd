"""The step names of a run and the edges between them, as the dashboard's graph and the
graph of a big run draw them (`metadata.run_groups`)."""

from __future__ import annotations

from branchwork import pipeline, step
from branchwork.metadata.run_groups import group_edges
from branchwork.metadata.run_pages import find_run
from branchwork.metadata.store import get_engine


@step
def seed(n: int) -> int:
    return n


@step
def part(i: int) -> int:
    return i


@step
def add(values: list) -> int:
    return sum(values)


@pipeline
def looped_sum(n: int):
    parts = [part(i) for i in range(seed(n))]  # seed -> part, through the value read
    add([n])  # seed -> add, through the same read
    total = add(parts)  # part -> add, through data
    return part(int(total), id="again")  # add -> part, through the value read: a loop


def test_value_edges_that_imply_each_other_through_a_loop_are_not_both_dropped():
    assert looped_sum(n=3) == 3
    run = find_run(get_engine(), looped_sum.last_run.id)
    # seed -> add is implied by seed -> part -> add; with it gone, seed -> part is needed
    assert group_edges(get_engine(), run) == {
        ("seed", "part", "value"),
        ("part", "add", "data"),
        ("add", "part", "value"),
    }
