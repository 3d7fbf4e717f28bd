"""A grouped DAG (see `cli.graph`) as text, Mermaid, Graphviz DOT or SVG.

Every format draws the same thing: one node per group (`process_partition ×1000` is one
box), one edge per parent group — dashed when the dependency is through a value the pipeline
body read, not through data (see `cli.graph`) — the status summary under the label when the
graph comes from a run, and, for a dynamic pipeline drawn before it runs, a dashed "continues
at run time" node after the step whose value the pipeline needs first. Mermaid and DOT are
text for other tools to draw; SVG is drawn here (`cli.svg`), so no Graphviz is needed.
"""

from __future__ import annotations

import io
from enum import Enum
from pathlib import Path

from rich.console import Console
from rich.text import Text

from branchwork.cli.graph import groups_tree
from branchwork.cli.graph_view import (
    COLORS,
    CONTINUES,
    PLANNED,
    GraphView,
    colors,
    edges,
    status_of,
    summary,
)
from branchwork.exceptions import BranchworkError


class GraphFormat(str, Enum):
    text = "text"
    mermaid = "mermaid"
    dot = "dot"
    svg = "svg"


EXTENSIONS = {
    ".txt": GraphFormat.text,
    ".mmd": GraphFormat.mermaid,
    ".mermaid": GraphFormat.mermaid,
    ".dot": GraphFormat.dot,
    ".gv": GraphFormat.dot,
    ".svg": GraphFormat.svg,
}


def format_for(path: Path) -> GraphFormat:
    """The format a graph file's extension names."""
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise BranchworkError(
            f"Cannot tell the graph format of {path.name} from its extension (known: "
            f"{', '.join(EXTENSIONS)}); rename the file or pass --format text|mermaid|dot|svg."
        )
    return fmt


def render(view: GraphView, fmt: GraphFormat) -> str:
    if fmt is GraphFormat.mermaid:
        return to_mermaid(view)
    if fmt is GraphFormat.dot:
        return to_dot(view)
    if fmt is GraphFormat.svg:
        from branchwork.cli.svg import to_svg  # with its XML imports: only for SVG

        return to_svg(view)
    return to_text(view)


def tree(view: GraphView, width: int = 1000) -> object:
    """The Rich tree of the text format (the dynamic note is printed after it), as deep as
    `width` columns leave room for beside its labels (4 columns a level)."""
    max_depth = max(4, min(24, (width - 40) // 4))
    built = groups_tree(Text(view.title), view.groups, view.continues_after, max_depth)
    if not view.groups:
        built.children.clear()
        built.add(Text(view.empty, style="dim"))
    return built


def to_text(view: GraphView) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=1000, color_system=None, highlight=False).print(tree(view))
    if view.note:
        buffer.write(view.note + "\n")
    return buffer.getvalue()


# ---- Mermaid -------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    for char, entity in (("#", "#35;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, entity)
    return text


def to_mermaid(view: GraphView) -> str:
    lines = ["---", f"title: {_mermaid_text(view.title)}", "---"]
    if view.note:
        lines.append(f"%% {view.note}")
    lines.append("flowchart TD")
    used: dict[str, list[str]] = {}
    for index, group in enumerate(view.groups):
        label = _mermaid_text(group.label)
        if summary(group):
            label += f"<br/><small>{_mermaid_text(summary(group))}</small>"
        lines.append(f'    g{index}["{label}"]')
        used.setdefault(status_of(group) or "planned", []).append(f"g{index}")
    if not view.groups:
        lines.append(f'    empty["{_mermaid_text(view.empty)}"]')
    lines.extend(
        f"    g{parent} {'-.->' if by_value else '-->'} g{child}"
        for parent, child, by_value in edges(view)
    )
    if view.continues_after is not None:
        lines.append(f'    continues(["{CONTINUES}"])')
        lines.append(f"    g{view.continues_after} -.-> continues")
        lines.append("    style continues stroke-dasharray: 5 5")
    for status, nodes in used.items():
        fill, stroke = COLORS.get(status, PLANNED)
        lines.append(f"    classDef {status} fill:{fill},stroke:{stroke},color:#111827")
        lines.append(f"    class {','.join(nodes)} {status}")
    return "\n".join(lines) + "\n"


# ---- DOT -----------------------------------------------------------------------------------


def _dot_label(*lines: str) -> str:
    """A quoted DOT string of `lines`, joined by DOT's own line break."""
    escaped = (line.replace("\\", "\\\\").replace('"', '\\"') for line in lines if line)
    return '"' + "\\n".join(escaped) + '"'


def to_dot(view: GraphView) -> str:
    lines = ["digraph branchwork {"]
    if view.note:
        lines.append(f"    // {view.note}")
    lines += [
        f"    label={_dot_label(view.title, view.note or '')};",
        "    labelloc=t;",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '    edge [color="#6b7280", arrowsize=0.7];',
    ]
    for index, group in enumerate(view.groups):
        fill, stroke = colors(group)
        label = _dot_label(group.label, summary(group))
        extra = ", peripheries=2" if group.size > 1 else ""
        lines.append(f'    g{index} [label={label}, fillcolor="{fill}", color="{stroke}"{extra}];')
    if not view.groups:
        lines.append(f"    empty [label={_dot_label(view.empty)}, style=dashed];")
    lines.extend(
        f"    g{parent} -> g{child}{' [style=dashed]' if by_value else ''};"
        for parent, child, by_value in edges(view)
    )
    if view.continues_after is not None:
        lines.append(f'    continues [label="{CONTINUES}", style="rounded,dashed"];')
        lines.append(f"    g{view.continues_after} -> continues [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"
