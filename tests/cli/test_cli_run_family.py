"""`branchwork runs show` of nested pipelines: a parent lists its tree of child runs, a child
names the run and invocation it was called from, in the table and in the JSON."""

from __future__ import annotations

from branchwork import Client, pipeline, step


@step
def double(x: int) -> int:
    return 2 * x


@pipeline
def leaf(x: int):
    return double(x)


@pipeline
def middle(x: int):
    return leaf(x + 1)


@pipeline
def top(x: int):
    return double(middle(x)), leaf.submit(x, id="side")


def runs_of(name: str):
    return Client().list_pipeline_runs(pipeline=name)


def test_a_parent_shows_its_tree_of_child_runs_and_a_child_its_parent(cli, cli_json):
    assert top(x=1) == (8, 2)
    (parent,) = runs_of("top")
    (child,) = runs_of("middle")
    grandchild, side = sorted(runs_of("leaf"), key=lambda r: r.parent_invocation_id)

    shown = cli_json("runs", "show", parent.name)
    assert shown["parent"] is None
    assert [
        (c["name"], c["invocation"], c["pipeline"], c["status"], c["depth"])
        for c in shown["children"]
    ] == [
        (child.name, "middle", "middle", "completed", 1),
        (grandchild.name, "leaf", "leaf", "completed", 2),
        (side.name, "side", "leaf", "completed", 1),
    ]
    assert cli_json("runs", "show", grandchild.name)["parent"] == {
        "id": child.id,
        "name": child.name,
        "pipeline": "middle",
        "invocation": "leaf",
    }

    table = cli("runs", "show", parent.name)
    assert table.exit_code == 0, table.output
    lines = [" ".join(line.split()) for line in table.output.splitlines()]
    start = lines.index("Child runs: 3")
    assert lines[start + 1 : start + 5] == [
        "RUN INVOCATION PIPELINE STATUS",
        f"{child.name} middle middle completed",
        f"{grandchild.name} leaf leaf completed",
        f"{side.name} side leaf completed",
    ]
    assert f"Child of {child.name} (invocation leaf)" in cli("runs", "show", grandchild.name).output


def test_runs_graph_prints_the_tree_of_runs_under_the_graph(cli):
    top(x=2)
    (parent,) = runs_of("top")
    (child,) = runs_of("middle")
    graph = cli("runs", "graph", parent.name)
    assert graph.exit_code == 0, graph.output
    lines = [" ".join(line.split()) for line in graph.output.splitlines()]
    assert "Child runs: 3" in lines
    assert f"{child.name} middle middle completed" in lines
    child_graph = cli("runs", "graph", child.name).output
    assert f"Child of {parent.name} (invocation middle)" in child_graph
    mermaid = cli("runs", "graph", parent.name, "--format", "mermaid").output
    assert "Child runs" not in mermaid  # a file format stays that format
