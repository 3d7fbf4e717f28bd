"""The DAG of a run as it ran, as a text tree, with fan-outs and loops folded into one line.

Edges are the recorded `parent_step_run_ids`, and the steps a sidecar was to start with
(`start_after` in its configuration). Invocations are grouped bottom-up in
topological order: two invocations of the same step whose parents fall in the same groups
share a group, so `[process(data, i) for i in range(1000)]` is one line
`process ×1000`, and the 1000 `postprocess(p)` calls that each take one of those outputs are
one line too. A sequential loop (`for _ in range(n): model = refine(model)`), where each
invocation depends on the previous one (and on nothing its predecessor did not), folds into
`refine ×n in sequence`, so the tree does not grow one level per iteration.

Each group is drawn under its last parent in topological order; its other parents are named
in an "also after" note, which keeps every edge visible without drawing a node twice.

A run of more than a thousand invocations is drawn grouped by step name instead
(`step_name_groups`): one node per step name with its counts by state, and the edges between
step names, from the aggregate queries the dashboard's graph uses; reading every invocation
to group it by its parents would take longer than the run is worth looking at. An edge from
a step name to one that first started before it (a loop between steps) is left out of the
tree.

A dynamic run also records, per invocation, the invocations whose values the pipeline body
read last before it made the call (`value_inputs` in its configuration; the other calls after
the same reads name the first one recorded instead, `value_inputs_of`): in
`n = count(); [process(i) for i in range(n)]` every `process` call depends on `count`
through a value, not through data. Those are edges too, marked "(value)" here and drawn
dashed in every format. Only the nearest reads are recorded (in
`for i in ...: if check(i): process(i)`, each `process` and the next `check` come after
the `check` just read), and a value edge that another path already implies (a read
value also passed as an input) is not drawn.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.text import Text
from rich.tree import Tree

from branchwork.cli.render import STATUS_STYLES
from branchwork.models import PipelineRunResponse

if TYPE_CHECKING:
    from branchwork.metadata.run_figures import StepGroup

VALUE_MARK = "(value)"  # an edge by value in the text tree


@dataclass(frozen=True)
class Node:
    """One invocation to draw: its id, step, status (None before a run), the invocations
    whose outputs it takes, and those it depends on only through a value."""

    name: str
    step_name: str
    status: str | None
    parents: tuple[str, ...]
    value_parents: tuple[str, ...] = ()


@dataclass
class Group:
    """Invocations drawn as one node: `members`, or for a big run's step name only their
    counts by status (`counted`)."""

    step_name: str
    members: list[Node]
    parents: list[int]  # every parent group, in topological order
    children: list[int] = field(default_factory=list)
    sequential: bool = False
    value_parents: list[int] = field(default_factory=list)  # the parents reached by value only
    counted: dict[str, int] | None = None

    @property
    def size(self) -> int:
        return len(self.members) if self.counted is None else sum(self.counted.values())

    @property
    def label(self) -> str:
        if self.size == 1:
            return self.members[0].name if self.members else self.step_name
        suffix = " in sequence" if self.sequential else ""
        return f"{self.step_name} ×{self.size}{suffix}"

    def status_counts(self) -> list[tuple[str, int]]:
        """(status, count), most common first; empty before a run."""
        if self.counted is not None:
            return Counter({s: n for s, n in self.counted.items() if n}).most_common()
        counts = Counter(m.status for m in self.members if m.status is not None)
        return counts.most_common()


def _topological(nodes: list[Node]) -> list[Node]:
    """Kahn's algorithm, ties broken by recorded order (start time)."""
    position = {node.name: index for index, node in enumerate(nodes)}
    waiting = {node.name: len(node.parents) + len(node.value_parents) for node in nodes}
    children: dict[str, list[str]] = {node.name: [] for node in nodes}
    for node in nodes:
        for parent in node.parents + node.value_parents:
            children[parent].append(node.name)
    ready = [position[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[Node] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        ordered.append(node)
        for child in children[node.name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, position[child])
    done = {node.name for node in ordered}
    return ordered + [node for node in nodes if node.name not in done]  # only if corrupt


def run_nodes(run: PipelineRunResponse) -> list[Node]:
    """A run's invocations (latest attempts) with their recorded parents, by data and by
    value."""
    invocation_of = {attempt.id: attempt.name for attempt in run.attempts}
    configs = {
        name: step.configuration.config if step.configuration else {}
        for name, step in run.steps.items()
    }
    nodes = []
    for step in run.steps.values():
        config = configs[step.name]
        recorded = (invocation_of.get(parent) for parent in step.parent_step_run_ids)
        started_with = config.get("start_after", ())  # a sidecar: drawn under its step
        names = itertools.chain(recorded, started_with)
        parents = tuple(dict.fromkeys(n for n in names if n in run.steps))
        values = _values_read(configs, step.name)
        nodes.append(Node(step.name, step.step_name, str(step.status), parents, values))
    return nodes


def _values_read(configs: dict[str, dict[str, Any]], name: str) -> tuple[str, ...]:
    """An invocation's `value_inputs`, following `value_inputs_of` to the configuration that
    lists them (through more than one when the one named was recorded again, retried or
    resumed, after another call of the same reads)."""
    seen: set[str] = set()
    while name not in seen:
        seen.add(name)
        config = configs.get(name, {})
        if "value_inputs_of" not in config:
            return tuple(dict.fromkeys(config.get("value_inputs", ())))
        name = config["value_inputs_of"]
    return ()


def group_steps(run: PipelineRunResponse) -> list[Group]:
    """The run's invocations (latest attempts) folded into groups, in topological order."""
    return group_nodes(run_nodes(run))


def step_name_groups(groups: list[StepGroup], edges: set[tuple[str, str, str]]) -> list[Group]:
    """A big run's step names as groups, in the order they first started, with the
    (from, to, "data" | "value") edges between them that go forward in that order."""
    index = {group.step_name: position for position, group in enumerate(groups)}
    drawn = [Group(g.step_name, [], [], counted=dict(g.counts)) for g in groups]
    by_data = {(a, b) for a, b, edge in edges if edge == "data"}
    for a, b, edge in sorted(edges):
        if a not in index or b not in index or index[a] >= index[b]:
            continue
        parent, child = index[a], drawn[index[b]]
        if parent not in child.parents:
            child.parents.append(parent)
            drawn[parent].children.append(index[b])
        if edge == "value" and (a, b) not in by_data:
            child.value_parents.append(parent)
    for group in drawn:
        group.parents.sort()
        group.children.sort()
    return drawn


def group_nodes(nodes: list[Node]) -> list[Group]:
    """Invocations folded into groups, in topological order; see the module docstring."""
    known = {node.name for node in nodes}
    nodes = [
        Node(
            n.name,
            n.step_name,
            n.status,
            tuple(p for p in n.parents if p in known),
            tuple(v for v in n.value_parents if v in known and v not in n.parents),
        )
        for n in nodes
    ]
    groups: list[Group] = []
    group_of: dict[str, int] = {}
    by_key: dict[tuple[str, frozenset[int], frozenset[int]], int] = {}
    for node in _without_implied_values(_topological(nodes)):
        data_groups = frozenset(group_of[name] for name in node.parents)
        value_groups = frozenset(group_of[name] for name in node.value_parents) - data_groups
        key = (node.step_name, data_groups, value_groups)
        index = by_key.get(key)
        if index is None:
            index = by_key[key] = len(groups)
            parent_groups = data_groups | value_groups
            groups.append(
                Group(node.step_name, [], sorted(parent_groups), value_parents=sorted(value_groups))
            )
            for parent in parent_groups:
                groups[parent].children.append(index)
        groups[index].members.append(node)
        group_of[node.name] = index
    return _fold_sequences(groups)


def _without_implied_values(ordered: list[Node]) -> list[Node]:
    """Nodes (in topological order) without the value parents another of their parents
    already descends from. What a node descends from is kept as one bit per invocation whose
    value was read, so memory grows with those, not with the square of the run's size."""
    sources = dict.fromkeys(v for node in ordered for v in node.value_parents)
    bit = {v: 1 << i for i, v in enumerate(sources)}
    reach: dict[str, int] = {}  # node -> bits of the value parents it descends from

    def through(parent: str) -> int:
        return reach.get(parent, 0) | bit.get(parent, 0)

    reduced = []
    for node in ordered:
        by_data = 0
        for parent in node.parents:
            by_data |= through(parent)
        by_value = {v: through(v) for v in node.value_parents}
        kept = tuple(
            v
            for v in node.value_parents
            if not bit[v] & (by_data | _union(m for u, m in by_value.items() if u != v))
        )
        reach[node.name] = by_data | _union(by_value.values())
        reduced.append(Node(node.name, node.step_name, node.status, node.parents, kept))
    return reduced


def _union(masks: Iterable[int]) -> int:
    total = 0
    for mask in masks:
        total |= mask
    return total


def _renumber(group: Group, new_index: Callable[[int], int]) -> None:
    """Point a group's parents at `new_index(parent)`; an edge that is by data as well as by
    value after the merge counts as by data."""
    by_data = {new_index(p) for p in group.parents if p not in group.value_parents}
    group.value_parents = sorted({new_index(p) for p in group.value_parents} - by_data)
    group.parents = sorted(by_data | set(group.value_parents))


def _fold_sequences(groups: list[Group]) -> list[Group]:
    """Merge a lone invocation into its predecessor's group when it continues a loop."""
    head = list(range(len(groups)))  # group index -> the group it was merged into
    for index, group in enumerate(groups):
        _renumber(group, head.__getitem__)
        previous = [
            p
            for p in group.parents
            if groups[p].step_name == group.step_name and groups[p].children == [index]
        ]
        if len(group.members) != 1 or not previous:
            continue
        target_index = previous[-1]
        target = groups[target_index]
        if not target.sequential and len(target.members) != 1:
            continue  # a fan-out group is not a loop
        if set(group.parents) - {target_index} - set(target.parents):
            continue  # it depends on something new: not a plain continuation
        target.members.extend(group.members)
        target.sequential = True
        target.children = group.children
        head[index] = target_index
        for parent in group.parents:  # exactly the groups that list `index` as a child
            if parent != target_index:
                renamed = (target_index if c == index else c for c in groups[parent].children)
                groups[parent].children = list(dict.fromkeys(renamed))
    kept = [index for index in range(len(groups)) if head[index] == index]
    renumber = {old: new for new, old in enumerate(kept)}
    result = []
    for old in kept:
        group = groups[old]
        _renumber(group, lambda p: renumber[head[p]])
        group.children = sorted({renumber[head[c]] for c in group.children})
        result.append(group)
    return result


def _summary(group: Group) -> Text:
    counts = group.status_counts()
    text = Text()
    for position, (status, count) in enumerate(counts):
        if position:
            text.append(", ")
        label = status if len(counts) == 1 else f"{status} {count}"
        text.append(label, style=STATUS_STYLES.get(status, ""))
    return text


def groups_tree(
    title: Text, groups: list[Group], continues_after: int | None = None, max_depth: int = 24
) -> Tree:
    """Groups as a Rich tree under `title`; `continues_after` marks the group whose value a
    dynamic pipeline needs before its graph can go on. A group deeper than `max_depth` is
    drawn beside its parent, after it, and names it (a long chain of different steps, which
    does not fold, went off the right edge: half of a 450-step chain was lost)."""
    root = Tree(title)
    nodes: list[Tree] = []
    holders: list[Tree] = []  # the node each group's node was added to
    depths: list[int] = []
    for index, group in enumerate(groups):
        label = Text(group.label, style="bold")
        summary = _summary(group)
        if summary:
            label.append("  ")
            label.append_text(summary)
        last = group.parents[-1] if group.parents else None
        beside = last is not None and depths[last] >= max_depth
        named = group.parents if beside else group.parents[:-1]
        if not beside and last is not None and last in group.value_parents:
            label.append(f"  {VALUE_MARK}", style="dim")
        if named:
            others = ", ".join(
                groups[p].label + (f" {VALUE_MARK}" if p in group.value_parents else "")
                for p in named
            )
            label.append(f"  ({'after' if beside else 'also after'}: {others})", style="dim")
        if last is None:
            holder, depth = root, 1
        elif beside:
            holder, depth = holders[last], depths[last]
        else:
            holder, depth = nodes[last], depths[last] + 1
        nodes.append(holder.add(label))
        holders.append(holder)
        depths.append(depth)
        if index == continues_after:
            nodes[-1].add(Text("… continues at run time", style="dim italic"))
    if not groups:
        root.add(Text("(no steps recorded)", style="dim"))
    return root
