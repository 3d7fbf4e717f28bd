"""Graph files: `branchwork runs graph RUN --format text|mermaid|dot|svg [--output FILE]` and
`branchwork graph TARGET` before running."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from branchwork import Client, pipeline, step
from branchwork.cli.graph import Node, group_nodes
from branchwork.cli.graph_formats import GraphView
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
