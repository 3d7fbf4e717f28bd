"""A grouped DAG drawn as SVG by a small layered (Sugiyama-style) layout, without Graphviz.

1. Layers: a group sits one layer below its lowest parent (longest path from the roots).
2. An edge that skips layers gets a dummy point in every layer it crosses, so it bends
   around the boxes in between instead of running through them.
3. Order within a layer: a few sweeps of the barycenter heuristic (down by parents, up by
   children), which removes most crossings of a pipeline-shaped DAG.
4. Position: each box wants to sit at the mean x of its neighbours in the layer swept from;
   a left-to-right pass keeps the gaps, then the layer shifts back by its mean displacement.
5. Draw: rounded boxes coloured by status (a fan-out group as a stack of cards), edges as
   vertical cubic curves through their dummy points with an arrowhead, dashed when they are
   through a value (and into the "continues at run time" node).

Text widths are estimated from character counts with a monospace font, which is what makes
the boxes fit their labels without measuring fonts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from branchwork.cli.graph_view import CONTINUES, PLANNED, GraphView, colors, edges, summary

FONT = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"
LABEL_SIZE = 13
STATUS_SIZE = 11
CHAR = 0.61  # width of a monospace character, in font sizes
BOX_HEIGHT = 46
LAYER_GAP = 56
NODE_GAP = 28
DUMMY_WIDTH = 8
MARGIN = 24
SWEEPS = 4


@dataclass
class _Vertex:
    key: int  # group index, or negative for dummies and the continuation node
    layer: int
    width: float
    label: str = ""
    status: str = ""
    dummy: bool = False
    stacked: bool = False
    dashed: bool = False
    fill: tuple[str, str] = PLANNED
    parents: list[int] = field(default_factory=list)  # vertex indices
    children: list[int] = field(default_factory=list)
    x: float = 0.0  # centre


def _text_width(text: str, size: float) -> float:
    return len(text) * size * CHAR


def _box_width(label: str, status: str) -> float:
    return max(_text_width(label, LABEL_SIZE), _text_width(status, STATUS_SIZE), 40) + 28


def _vertices(view: GraphView) -> tuple[list[_Vertex], list[tuple[list[int], bool]]]:
    """Vertices (groups, continuation, dummies) and every original edge as a vertex chain,
    with whether it is drawn dashed."""
    vertices: list[_Vertex] = []
    for index, group in enumerate(view.groups):
        layer = 1 + max((vertices[p].layer for p in group.parents), default=-1)
        status = summary(group)
        vertices.append(
            _Vertex(
                index,
                layer,
                _box_width(group.label, status),
                group.label,
                status,
                stacked=group.size > 1,
                fill=colors(group),
            )
        )
    drawn = edges(view)
    if view.continues_after is not None:
        source = vertices[view.continues_after]
        vertices.append(
            _Vertex(-1, source.layer + 1, _box_width(CONTINUES, ""), CONTINUES, dashed=True)
        )
        drawn.append((view.continues_after, len(vertices) - 1, True))
    if not view.groups:
        vertices.append(_Vertex(-1, 0, _box_width(view.empty, ""), view.empty, dashed=True))
    chains: list[tuple[list[int], bool]] = []
    for parent, child, dashed in drawn:
        chain = [parent]
        for layer in range(vertices[parent].layer + 1, vertices[child].layer):
            vertices.append(_Vertex(-2, layer, DUMMY_WIDTH, dummy=True))
            chain.append(len(vertices) - 1)
        chain.append(child)
        for upper, lower in zip(chain, chain[1:]):
            vertices[upper].children.append(lower)
            vertices[lower].parents.append(upper)
        chains.append((chain, dashed))
    return vertices, chains


def _order(vertices: list[_Vertex]) -> list[list[int]]:
    """Vertex indices per layer, ordered by barycenter sweeps."""
    depth = 1 + max((v.layer for v in vertices), default=0)
    layers: list[list[int]] = [[] for _ in range(depth)]
    for index, vertex in enumerate(vertices):
        layers[vertex.layer].append(index)
    position = {index: rank for layer in layers for rank, index in enumerate(layer)}

    def sweep(layer: list[int], neighbours: str) -> None:
        def barycenter(index: int) -> float:
            linked = getattr(vertices[index], neighbours)
            if not linked:
                return float(position[index])
            return sum(position[n] for n in linked) / len(linked)

        layer.sort(key=lambda index: (barycenter(index), position[index]))
        for rank, index in enumerate(layer):
            position[index] = rank

    for _ in range(SWEEPS):
        for layer in layers[1:]:
            sweep(layer, "parents")
        for layer in reversed(layers[:-1]):
            sweep(layer, "children")
    return layers


def _place(vertices: list[_Vertex], layers: list[list[int]]) -> None:
    """Centre x of every vertex; see the module docstring (step 4)."""
    for layer in layers:  # start packed, each layer centred on 0
        total = sum(vertices[i].width for i in layer) + NODE_GAP * (len(layer) - 1)
        left = -total / 2
        for index in layer:
            vertices[index].x = left + vertices[index].width / 2
            left += vertices[index].width + NODE_GAP

    def settle(layer: list[int], neighbours: str) -> None:
        wanted = []
        for index in layer:
            linked = getattr(vertices[index], neighbours)
            own = vertices[index].x
            wanted.append(sum(vertices[n].x for n in linked) / len(linked) if linked else own)
        placed: list[float] = []
        for rank, index in enumerate(layer):
            x = wanted[rank]
            if placed:
                previous = vertices[layer[rank - 1]]
                gap = (previous.width + vertices[index].width) / 2 + NODE_GAP
                x = max(x, placed[-1] + gap)
            placed.append(x)
        shift = sum(w - p for w, p in zip(wanted, placed)) / len(layer)
        for index, x in zip(layer, placed):
            vertices[index].x = x + shift

    for _ in range(SWEEPS):
        for layer in layers[1:]:
            settle(layer, "parents")
        for layer in reversed(layers[:-1]):
            settle(layer, "children")


def _curve(points: list[tuple[float, float]]) -> str:
    """A path of vertical cubic curves through `points`."""
    x0, y0 = points[0]
    path = [f"M{x0:.1f},{y0:.1f}"]
    for (xa, ya), (xb, yb) in zip(points, points[1:]):
        if abs(xa - xb) < 0.5:
            path.append(f"L{xb:.1f},{yb:.1f}")
            continue
        middle = (ya + yb) / 2
        path.append(f"C{xa:.1f},{middle:.1f} {xb:.1f},{middle:.1f} {xb:.1f},{yb:.1f}")
    return " ".join(path)


def to_svg(view: GraphView) -> str:
    vertices, chains = _vertices(view)
    layers = _order(vertices)
    _place(vertices, layers)

    header = [view.title] + ([view.note] if view.note else [])
    top = MARGIN + 22 * len(header) + 8
    lefts = [v.x - v.width / 2 for v in vertices] or [0.0]
    rights = [v.x + v.width / 2 + (6 if v.stacked else 0) for v in vertices] or [0.0]
    title_width = max(  # the title is bold (wider), the note smaller
        _text_width(line, 15 * 1.1 if number == 0 else 12) for number, line in enumerate(header)
    )
    graph_width = max(rights) - min(lefts)
    width = max(graph_width, title_width) + 2 * MARGIN
    offset = (width - graph_width) / 2 - min(lefts)  # the graph centred under the title
    height = top + len(layers) * (BOX_HEIGHT + LAYER_GAP) - LAYER_GAP + MARGIN + 6

    def top_of(vertex: _Vertex) -> float:
        return top + vertex.layer * (BOX_HEIGHT + LAYER_GAP)

    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f"font-family={quoteattr(FONT)}>",
        f"<title>{escape(view.title)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#6b7280"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>',
    ]
    for line_number, line in enumerate(header):
        style = (
            'font-size="15" font-weight="bold"'
            if line_number == 0
            else ('font-size="12" font-style="italic" fill="#4b5563"')
        )
        baseline = MARGIN + 14 + 22 * line_number
        out.append(f'<text x="{MARGIN}" y="{baseline}" {style}>{escape(line)}</text>')

    out.append('<g fill="none" stroke="#6b7280" stroke-width="1.4">')
    for chain, dashed in chains:
        points: list[tuple[float, float]] = []
        for position, index in enumerate(chain):
            vertex = vertices[index]
            x = vertex.x + offset
            if position == 0:
                points.append((x, top_of(vertex) + BOX_HEIGHT + (4 if vertex.stacked else 0)))
            elif position == len(chain) - 1:
                points.append((x, top_of(vertex)))
            else:
                points += [(x, top_of(vertex)), (x, top_of(vertex) + BOX_HEIGHT)]
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        out.append(f'<path d="{_curve(points)}" marker-end="url(#arrow)"{dash}/>')
    out.append("</g>")

    for vertex in vertices:
        if vertex.dummy:
            continue
        x = vertex.x + offset - vertex.width / 2
        y = top_of(vertex)
        fill, stroke = vertex.fill
        box = f'width="{vertex.width:.1f}" height="{BOX_HEIGHT}" rx="7"'
        if vertex.stacked:
            for shift in (6, 3):
                out.append(
                    f'<rect x="{x + shift:.1f}" y="{y + shift:.1f}" {box} fill="{fill}" '
                    f'stroke="{stroke}" stroke-width="1"/>'
                )
        dash = ' stroke-dasharray="5,4"' if vertex.dashed else ""
        background = "#ffffff" if vertex.dashed else fill
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" {box} fill="{background}" stroke="{stroke}" '
            f'stroke-width="1.5"{dash}/>'
        )
        centre = vertex.x + offset
        label_y = y + (19 if vertex.status else BOX_HEIGHT / 2 + 4.5)
        weight = "normal" if vertex.dashed else "bold"
        out.append(
            f'<text x="{centre:.1f}" y="{label_y:.1f}" text-anchor="middle" '
            f'font-size="{LABEL_SIZE}" font-weight="{weight}" fill="#111827">'
            f"{escape(vertex.label)}</text>"
        )
        if vertex.status:
            out.append(
                f'<text x="{centre:.1f}" y="{y + 36:.1f}" text-anchor="middle" '
                f'font-size="{STATUS_SIZE}" fill="#374151">{escape(vertex.status)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"
