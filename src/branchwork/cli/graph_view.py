"""What a graph drawing shows, whatever its format: the groups of a grouped DAG (see
`cli.graph`), their edges, status summaries and colours (`cli.graph_formats` writes text,
Mermaid and DOT from it, `cli.svg` draws it)."""

from __future__ import annotations

from dataclasses import dataclass

from branchwork.cli.graph import Group

CONTINUES = "… continues at run time"

# Fill and stroke per status; a group of mixed statuses takes the first of SEVERITY it has.
COLORS = {
    "failed": ("#fee2e2", "#dc2626"),
    "stopped": ("#f3e8ff", "#9333ea"),
    "paused": ("#dbeafe", "#1d4ed8"),  # its child run waits for an answer
    "running": ("#fef9c3", "#ca8a04"),
    "initializing": ("#f3f4f6", "#6b7280"),
    "retried": ("#ffedd5", "#ea580c"),
    "completed": ("#dcfce7", "#16a34a"),
    "cached": ("#cffafe", "#0891b2"),
}
PLANNED = ("#eef2ff", "#4f46e5")  # before a run: no status yet
SEVERITY = tuple(COLORS)


@dataclass
class GraphView:
    """What to draw: a title, the groups, and for a partly known graph where it goes on."""

    title: str
    groups: list[Group]
    note: str | None = None
    continues_after: int | None = None
    empty: str = "(no steps recorded)"


def summary(group: Group) -> str:
    """`completed`, or `completed 998, failed 2` for mixed statuses; "" before a run."""
    counts = group.status_counts()
    if len(counts) == 1:
        return counts[0][0]
    return ", ".join(f"{status} {count}" for status, count in counts)


def status_of(group: Group) -> str | None:
    """The status that colours a group: the most severe one among its members."""
    present = {status for status, _ in group.status_counts()}
    return next((status for status in SEVERITY if status in present), None)


def colors(group: Group) -> tuple[str, str]:
    status = status_of(group)
    return COLORS.get(status, PLANNED) if status else PLANNED


def edges(view: GraphView) -> list[tuple[int, int, bool]]:
    """(parent, child, through a value) for every edge between groups."""
    return [
        (parent, index, parent in group.value_parents)
        for index, group in enumerate(view.groups)
        for parent in group.parents
    ]
