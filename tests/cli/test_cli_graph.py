"""Graph files: `branchwork runs graph RUN --format text|mermaid|dot|svg [--output FILE]` and
`branchwork graph TARGET` before running."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from branchwork import Client, pipeline, step
from branchwork.cli.graph import Node, group_nodes
from branchwork.cli.graph_formats import to_dot, to_mermaid, to_text, tree
from branchwork.cli.graph_view import GraphView
from branchwork.cli.svg import to_svg

PARTITIONS = 12
SVG = "{http://www.w3.org/2000/svg}"


@step
def count_partitions(n: int) -> int:
    return n


@step
def process_partition(partition_id: int, total: int) -> int:
    return partition_id * total


@step
def merge_results(results: list) -> int:
    return sum(results)


@pipeline
def cli_graph_fan_out(n: int = PARTITIONS):
    total = count_partitions(n)
    return merge_results([process_partition(i, total) for i in range(total)])


@pytest.fixture
def fan_out_run():
    cli_graph_fan_out()
    return Client().list_pipeline_runs(pipeline="cli_graph_fan_out", limit=1)[0]


def test_mermaid_has_the_grouped_node_and_the_edges(cli, fan_out_run):
    result = cli("runs", "graph", fan_out_run.name, "--format", "mermaid")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert text.startswith(f"---\ntitle: {fan_out_run.name} (dynamic, completed)\n---\n")
    assert "flowchart TD" in text
    assert f'g1["process_partition ×{PARTITIONS}<br/><small>completed</small>"]' in text
    assert 'g0["count_partitions<br/><small>completed</small>"]' in text
    assert "g0 --> g1" in text and "g1 --> g2" in text
    assert "class g0,g1,g2 completed" in text
    assert len(re.findall(r"-->", text)) == 2  # 12 invocations, 3 nodes, 2 edges


def test_dot_has_the_grouped_node_and_the_edges(cli, fan_out_run, tmp_path):
    target = tmp_path / "run.dot"
    result = cli("runs", "graph", fan_out_run.name, "-f", "dot", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"Wrote the dot graph of {fan_out_run.name} (dynamic, completed) to {target}."
    )
    text = target.read_text()
    assert text.startswith("digraph branchwork {")
    assert f'g1 [label="process_partition ×{PARTITIONS}\\ncompleted"' in text
    assert "peripheries=2" in text  # a fan-out is drawn as a stack
    assert "g0 -> g1;" in text and "g1 -> g2;" in text
    assert text.rstrip().endswith("}")


def test_svg_file_is_xml_with_boxes_edges_and_labels(cli, fan_out_run, tmp_path):
    target = tmp_path / "run.svg"
    result = cli("runs", "graph", fan_out_run.name, "-f", "svg", "--output", str(target))
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert text.startswith("<svg")
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg"
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert f"process_partition ×{PARTITIONS}" in texts
    assert "count_partitions" in texts and "merge_results" in texts
    assert texts.count("completed") == 3
    edges = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(edges) == 2
    width, height = float(root.get("width")), float(root.get("height"))
    for rect in root.iter(f"{SVG}rect"):  # every box inside the picture
        assert 0 <= float(rect.get("x", 0)) <= width and 0 <= float(rect.get("y", 0)) <= height


def test_text_format_is_the_tree_and_can_be_written_to_a_file(cli, fan_out_run, tmp_path):
    printed = cli("runs", "graph", fan_out_run.name, "-f", "text").stdout
    assert f"process_partition ×{PARTITIONS}  completed" in printed
    target = tmp_path / "run.txt"
    assert cli("runs", "graph", fan_out_run.name, "--output", str(target)).exit_code == 0
    assert target.read_text() == printed


def test_bad_format_and_unwritable_output(cli, fan_out_run, tmp_path, assert_error):
    assert cli("runs", "graph", fan_out_run.name, "-f", "png").exit_code == 2
    missing = tmp_path / "no" / "such" / "folder" / "g.svg"
    assert_error(
        cli("runs", "graph", fan_out_run.name, "-f", "svg", "--output", str(missing)),
        "Cannot write",
    )


def test_svg_layout_of_a_wider_graph_keeps_boxes_apart():
    nodes = [Node("root", "root", "completed", ())]
    for i in range(4):
        nodes.append(Node(f"a{i}", f"a{i}", "completed", ("root",)))
        nodes.append(Node(f"b{i}", f"b{i}", "failed" if i == 2 else "completed", (f"a{i}",)))
    nodes.append(Node("join", "join", "running", tuple(f"b{i}" for i in range(4)) + ("root",)))
    root = ET.fromstring(to_svg(GraphView("wide", group_nodes(nodes))))
    boxes = [
        (float(r.get("x")), float(r.get("y")), float(r.get("width")))
        for r in root.iter(f"{SVG}rect")
        if r.get("stroke-width") == "1.5"
    ]
    assert len(boxes) == 10
    rows: dict[float, list[tuple[float, float]]] = {}
    for x, y, width in boxes:
        rows.setdefault(y, []).append((x, x + width))
    assert sorted(len(row) for row in rows.values()) == [1, 1, 4, 4]
    for row in rows.values():  # no two boxes of a layer overlap
        row.sort()
        assert all(left[1] < right[0] for left, right in zip(row, row[1:]))
    assert len([p for p in root.iter(f"{SVG}path") if p.get("marker-end")]) == 13
    assert "#dc2626" in ET.tostring(root, encoding="unicode")  # the failed box is red


PIPELINES = """
from branchwork import pipeline, step


@step
def load(n: int) -> list:
    return list(range(n))


@step
def process(data: list, i: int) -> int:
    return data[i]


@step
def combine(parts: list) -> int:
    return sum(parts)


@step
def count_partitions(data: list) -> int:
    return len(data)


@pipeline
def static_fan(n: int = 3):
    data = load(n)
    return combine([process(data, i) for i in range(n)])


@pipeline
def dynamic_fan(n: int = 3):
    data = load(n)
    total = count_partitions(data)
    return combine([process(data, i) for i in range(total)])
"""


def test_graph_of_a_static_pipeline_before_running(cli, pipeline_file):
    target = pipeline_file("graphs", PIPELINES)
    result = cli("graph", f"{target}:static_fan", "--param", "n=50")
    assert result.exit_code == 0, result.output
    lines = [line.strip("│ ") for line in result.stdout.splitlines()]
    assert lines == [
        "static_fan (static, before running)",
        "└── load",
        "└── process ×50",
        "└── combine",
    ]
    mermaid = cli("graph", f"{target}:static_fan", "-f", "mermaid").stdout
    assert 'g1["process ×3"]' in mermaid and "g0 --> g1" in mermaid and "g1 --> g2" in mermaid
    assert Client().list_pipeline_runs() == []  # nothing ran


def test_graph_of_a_dynamic_pipeline_shows_the_known_part(cli, pipeline_file, tmp_path):
    target = pipeline_file("graphs", PIPELINES)
    result = cli("graph", f"{target}:dynamic_fan")
    assert result.exit_code == 0, result.output
    lines = [line.strip("│ ") for line in result.stdout.splitlines()]
    assert lines[:4] == [
        "dynamic_fan (dynamic, before running)",
        "└── load",
        "└── count_partitions",
        "└── … continues at run time",
    ]
    assert lines[4].startswith(
        "dynamic: the graph continues at run time (it uses the output of step "
        f"'count_partitions' as a value at {target}:"
    )
    assert lines[4].endswith(")")

    dot = cli("graph", f"{target}:dynamic_fan", "-f", "dot")
    assert "g0 -> g1;" in dot.stdout and "g1 -> continues [style=dashed];" in dot.stdout
    assert "dynamic: the graph continues at run time" in dot.stderr
    svg_file = tmp_path / "dynamic.svg"
    written = cli("graph", f"{target}:dynamic_fan", "-f", "svg", "--output", str(svg_file))
    assert written.exit_code == 0, written.output
    assert "dynamic: the graph continues at run time" in written.stdout
    texts = [e.text for e in ET.fromstring(svg_file.read_text()).iter(f"{SVG}text")]
    assert "… continues at run time" in texts and "load" in texts
    assert Client().list_pipeline_runs() == []


def test_graph_errors_are_one_line(cli, pipeline_file, assert_error):
    target = pipeline_file("graphs", PIPELINES)
    assert_error(cli("graph", f"{target}:nope"), "has no pipeline 'nope'")
    assert_error(cli("graph", f"{target}:static_fan", "-p", "m=1"), "static_fan", "'m'")


# ---- the format from the file's extension --------------------------------------------------


@pytest.mark.parametrize(
    ("file_name", "fmt", "start"),
    [
        ("run.svg", "svg", "<svg"),
        ("run.SVG", "svg", "<svg"),
        ("run.dot", "dot", "digraph branchwork {"),
        ("run.gv", "dot", "digraph branchwork {"),
        ("run.mmd", "mermaid", "---\ntitle: "),
        ("run.mermaid", "mermaid", "---\ntitle: "),
    ],
)
def test_the_output_files_extension_picks_the_format(
    cli, fan_out_run, tmp_path, file_name, fmt, start
):
    target = tmp_path / file_name
    result = cli("runs", "graph", fan_out_run.name, "--output", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Wrote the {fmt} graph of {fan_out_run.name} ")
    assert target.read_text().startswith(start)


def test_an_explicit_format_wins_over_the_extension(cli, fan_out_run, tmp_path):
    target = tmp_path / "run.svg"
    result = cli("runs", "graph", fan_out_run.name, "-f", "mermaid", "--output", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("---\ntitle: ")
    assert (
        cli("runs", "graph", "latest", "-f", "dot", "--output", str(tmp_path / "g.png")).exit_code
        == 0
    )


def test_an_unknown_extension_without_format_is_an_error(cli, fan_out_run, tmp_path, assert_error):
    target = tmp_path / "run.png"
    error = assert_error(cli("runs", "graph", fan_out_run.name, "--output", str(target)))
    assert error == (
        "Error: Cannot tell the graph format of run.png from its extension (known: .txt, .mmd, "
        ".mermaid, .dot, .gv, .svg); rename the file or pass --format text|mermaid|dot|svg."
    )
    assert not target.exists()


def test_graph_before_running_infers_the_format_too(cli, pipeline_file, tmp_path):
    target = pipeline_file("graphs", PIPELINES)
    written = tmp_path / "static.gv"
    result = cli("graph", f"{target}:static_fan", "--output", str(written))
    assert result.exit_code == 0, result.output
    text = written.read_text()
    assert text.startswith("digraph branchwork {") and "g0 -> g1;" in text


# ---- dependencies through a value ----------------------------------------------------------


def value_fan_out_nodes() -> list[Node]:
    """`n = count(); merge([process(i) for i in range(n)])`, as a dynamic run records it:
    every later call was made after the body read count's value."""
    processes = [f"process_{i}" if i > 1 else "process" for i in range(1, 4)]
    return [
        Node("count", "count", "completed", ()),
        *(Node(name, "process", "completed", (), ("count",)) for name in processes),
        Node("merge", "merge", "completed", tuple(processes), ("count",)),
    ]


def test_a_value_edge_into_a_fan_out_is_one_dashed_edge_in_every_format():
    view = GraphView("values", group_nodes(value_fan_out_nodes()))
    assert [group.label for group in view.groups] == ["count", "process ×3", "merge"]

    assert to_text(view).splitlines() == [
        "values",
        "└── count  completed",
        "    └── process ×3  completed  (value)",
        "        └── merge  completed",
    ]
    mermaid = to_mermaid(view)
    assert re.findall(r"g\d+ -\.?-> g\d+", mermaid) == ["g0 -.-> g1", "g1 --> g2"]
    dot = to_dot(view)
    assert re.findall(r"g\d+ -> g\d+[^;]*;", dot) == ["g0 -> g1 [style=dashed];", "g1 -> g2;"]
    edges = [p for p in ET.fromstring(to_svg(view)).iter(f"{SVG}path") if p.get("marker-end")]
    assert [edge.get("stroke-dasharray") for edge in edges] == ["5,4", None]


def test_a_value_parent_that_is_not_the_tree_parent_is_marked_in_also_after():
    nodes = [
        Node("root", "root", "completed", ()),
        Node("left", "left", "completed", ("root",)),
        Node("right", "right", "completed", ("root",)),
        Node("combine", "combine", "failed", ("right",), ("left",)),
    ]
    view = GraphView("join", group_nodes(nodes))
    assert "combine  failed  (also after: left (value))" in to_text(view)
    assert "g1 -.-> g3" in to_mermaid(view) and "g2 --> g3" in to_mermaid(view)


def test_a_long_chain_of_different_steps_is_drawn_whole_beside_its_parents():
    """450 alternating steps do not fold into a loop: the tree grew a level each, and half
    of them went off the right edge of a file (and of a terminal, sooner)."""
    names = [f"{'fa' if i % 2 else 'fb'}_{i}" for i in range(450)]
    nodes = [
        Node(name, name.split("_")[0], "completed", (names[i - 1],) if i else ())
        for i, name in enumerate(names)
    ]
    view = GraphView("chain", group_nodes(nodes))
    lines = to_text(view).splitlines()
    assert len(lines) == 451 and all(name in text for name, text in zip(names, lines[1:]))
    assert lines[23] == " " * 88 + "└── fb_22  completed"
    assert lines[24] == " " * 92 + "├── fa_23  completed"  # the deepest level: 24
    assert lines[25] == " " * 92 + "├── fb_24  completed  (after: fa_23)"
    assert lines[-1] == " " * 92 + "└── fa_449  completed  (after: fb_448)"
    narrow = Console(file=io.StringIO(), width=80, color_system=None)
    narrow.print(tree(view, 80))
    printed = narrow.file.getvalue().splitlines()
    assert len(printed) == 451 and max(len(line) for line in printed) <= 80
    assert printed[-1] == " " * 36 + "└── fa_449  completed  (after: fb_448)"  # 10 levels


def test_value_edges_that_other_edges_imply_are_not_drawn():
    # for i in 1..3: if check(i): process(i) -- the recording lists every value read so far
    nodes, read = [], []
    for i in (1, 2, 3):
        suffix = "" if i == 1 else f"_{i}"
        nodes.append(Node(f"check{suffix}", "check", "completed", (), tuple(read)))
        read.append(f"check{suffix}")
        nodes.append(Node(f"process{suffix}", "process", "completed", (), tuple(read)))
    view = GraphView("loop", group_nodes(nodes))
    members = [[member.name for member in group.members] for group in view.groups]
    edges = {
        (members[parent][0], members[child][0])
        for child, group in enumerate(view.groups)
        for parent in group.value_parents
    }
    assert edges == {
        ("check", "process"),
        ("check", "check_2"),
        ("check_2", "process_2"),
        ("check_2", "check_3"),
        ("check_3", "process_3"),
    }
    assert all(group.value_parents == group.parents for group in view.groups)


VALUE_PIPELINE = """
from branchwork import pipeline, step


@step
def count(n: int) -> int:
    return n


@step
def square(i: int) -> int:
    return i * i


@step
def add_up(values: list) -> int:
    return sum(values)


@pipeline
def value_fan_out(n: int = 4):
    total = count(n)
    return add_up([square(i) for i in range(total)])
"""


def run_value_fan_out(cli, pipeline_file):
    target = pipeline_file("values", VALUE_PIPELINE)
    result = cli("run", f"{target}:value_fan_out", "--no-progress")
    assert result.exit_code == 0, result.output
    return Client().get_pipeline_run("latest:value_fan_out")


def record_value_inputs(run, value_inputs: dict[str, list[str] | str]) -> None:
    """Write `value_inputs` (a list) or `value_inputs_of` (an invocation id) into the step-run
    configurations of `run`'s invocations, as the orchestration loop records them."""
    from sqlalchemy import update

    from branchwork.metadata import schema
    from branchwork.metadata.store import get_engine

    with get_engine().begin() as conn:
        for invocation, recorded in value_inputs.items():
            configuration = run.steps[invocation].configuration
            config = dict(configuration.config)
            config.pop("value_inputs", None)
            config.pop("value_inputs_of", None)
            key = "value_inputs_of" if isinstance(recorded, str) else "value_inputs"
            config[key] = recorded
            conn.execute(
                update(schema.step_configuration)
                .where(schema.step_configuration.c.id == configuration.id)
                .values(config=json.dumps(config))
            )


def test_runs_graph_draws_stored_value_inputs_without_implied_ones(cli, pipeline_file):
    run = run_value_fan_out(cli, pipeline_file)
    squares = ["square", "square_2", "square_3", "square_4"]
    # add_up also after count: already implied by the squares, so not drawn
    record_value_inputs(run, {**{s: ["count"] for s in squares}, "add_up": ["count"]})

    lines = cli("runs", "graph", run.name).stdout.splitlines()
    assert lines[1:] == [
        "└── count  completed",
        "    └── square ×4  completed  (value)",
        "        └── add_up  completed",
    ]
    mermaid = cli("runs", "graph", run.name, "-f", "mermaid").stdout
    assert re.findall(r"g\d+ -\.?-> g\d+", mermaid) == ["g0 -.-> g1", "g1 --> g2"]


def test_runs_graph_follows_value_inputs_of_to_the_configuration_that_lists_them(
    cli, pipeline_file
):
    run = run_value_fan_out(cli, pipeline_file)
    # `square` retried after `square_3` had been recorded first with the reads in a new
    # session: `square_2` names `square`, which names `square_3`
    record_value_inputs(
        run,
        {"square_3": ["count"], "square": "square_3", "square_2": "square", "square_4": "square"},
    )
    lines = cli("runs", "graph", run.name).stdout.splitlines()
    assert lines[1:] == [
        "└── count  completed",
        "    └── square ×4  completed  (value)",
        "        └── add_up  completed",
    ]


def test_a_dynamic_run_records_dependencies_through_values(cli, pipeline_file):
    run = run_value_fan_out(cli, pipeline_file)
    mermaid = cli("runs", "graph", run.name, "-f", "mermaid").stdout
    assert re.findall(r"g\d+ -\.?-> g\d+", mermaid) == ["g0 -.-> g1", "g1 --> g2"]
    assert 'g1["square ×4<br/><small>completed</small>"]' in mermaid
