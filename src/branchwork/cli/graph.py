"""The DAG of a run as it ran, as a text tree, with fan-outs and loops folded into one line.

Edges are the recorded `parent_step_run_ids`. Invocations are grouped bottom-up in
topological order: two invocations of the same step whose parents fall in the same groups
share a group, so `[process(data, i) for i in range(1000)]` is one line
`process ×1000`, and the 1000 `postprocess(p)` calls that each take one of those outputs are
one line too. A sequential loop (`for _ in range(n): model = refine(model)`), where each
invocation depends on the previous one (and on nothing its predecessor did not), folds into
`refine ×n in sequence`, so the tree does not grow one level per iteration.

Each group is drawn under its last parent in topological order; its other parents are named
in an "also after" note, which keeps every edge visible without drawing a node twice.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from rich.text import Text
from rich.tree import Tree

from branchwork.cli.render import STATUS_STYLES, kind
from branchwork.models import PipelineRunResponse, StepRunResponse


@dataclass
class Group:
    step_name: str
    members: list[StepRunResponse]
    parents: list[int]
    children: list[int] = field(default_factory=list)
    sequential: bool = False

    @property
    def label(self) -> str:
        if len(self.members) == 1:
            return self.members[0].name
        suffix = " in sequence" if self.sequential else ""
        return f"{self.step_name} ×{len(self.members)}{suffix}"


def _topological(
    steps: list[StepRunResponse], parents: dict[str, list[str]]
) -> list[StepRunResponse]:
    """Kahn's algorithm, ties broken by recorded order (start time)."""
    position = {step.name: index for index, step in enumerate(steps)}
    waiting = {step.name: len(parents[step.name]) for step in steps}
    children: dict[str, list[str]] = {step.name: [] for step in steps}
    for step in steps:
        for parent in parents[step.name]:
            children[parent].append(step.name)
    ready = [position[name] for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[StepRunResponse] = []
    while ready:
        step = steps[heapq.heappop(ready)]
        ordered.append(step)
        for child in children[step.name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, position[child])
    done = {step.name for step in ordered}
    return ordered + [step for step in steps if step.name not in done]  # only if corrupt


def group_steps(run: PipelineRunResponse) -> list[Group]:
    """The run's invocations (latest attempts) folded into groups, in topological order."""
    steps = list(run.steps.values())
    invocation_of = {attempt.id: attempt.name for attempt in run.attempts}
    parents: dict[str, list[str]] = {}
    for step in steps:
        names = (invocation_of.get(parent) for parent in step.parent_step_run_ids)
        parents[step.name] = list(dict.fromkeys(n for n in names if n in run.steps))

    groups: list[Group] = []
    group_of: dict[str, int] = {}
    by_key: dict[tuple[str, frozenset[int]], int] = {}
    for step in _topological(steps, parents):
        parent_groups = frozenset(group_of[name] for name in parents[step.name])
        key = (step.step_name, parent_groups)
        index = by_key.get(key)
        if index is None:
            index = by_key[key] = len(groups)
            groups.append(Group(step.step_name, [], sorted(parent_groups)))
            for parent in parent_groups:
                groups[parent].children.append(index)
        groups[index].members.append(step)
        group_of[step.name] = index
    return _fold_sequences(groups)


def _fold_sequences(groups: list[Group]) -> list[Group]:
    """Merge a lone invocation into its predecessor's group when it continues a loop."""
    head = list(range(len(groups)))  # group index -> the group it was merged into
    for index, group in enumerate(groups):
        group.parents = sorted({head[p] for p in group.parents})
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
        group.parents = sorted({renumber[head[p]] for p in group.parents})
        group.children = sorted({renumber[head[c]] for c in group.children})
        result.append(group)
    return result


def _summary(group: Group) -> Text:
    counts = Counter(str(member.status) for member in group.members)
    text = Text()
    for position, (status, count) in enumerate(counts.most_common()):
        if position:
            text.append(", ")
        label = status if len(counts) == 1 else f"{status} {count}"
        text.append(label, style=STATUS_STYLES.get(status, ""))
    return text


def graph_tree(run: PipelineRunResponse) -> Tree:
    """The run as a Rich tree; see the module docstring."""
    groups = group_steps(run)
    root = Tree(Text(f"{run.name} ({kind(run)}, {run.status})"))
    nodes: list[Tree] = []
    for group in groups:
        label = Text(group.label, style="bold")
        label.append("  ")
        label.append_text(_summary(group))
        if len(group.parents) > 1:
            others = ", ".join(groups[p].label for p in group.parents[:-1])
            label.append(f"  (also after: {others})", style="dim")
        parent = nodes[group.parents[-1]] if group.parents else root
        nodes.append(parent.add(label))
    if not groups:
        root.add(Text("(no steps recorded)", style="dim"))
    return root
