"""`branchwork graph TARGET`: a pipeline's graph before it runs, from tracing its body.

`graph.tracing.trace` decides static or dynamic exactly as a run will. A static pipeline's
trace is its whole graph; a dynamic one's is the part made before the body first needed a
step's value (`Compiled.discovered`, `Compiled.waited_on`).
"""

from __future__ import annotations

from typing import Any

from branchwork.cli.graph import Node, group_nodes
from branchwork.cli.graph_view import GraphView
from branchwork.graph.invocation import Invocation
from branchwork.graph.tracing import trace
from branchwork.pipelines.calls import bind_parameters
from branchwork.pipelines.pipeline import Pipeline


def _nodes(invocations: list[Invocation]) -> list[Node]:
    return [
        Node(inv.id, inv.step.name, None, inv.dependencies + inv.start_after) for inv in invocations
    ]


def pipeline_view(pipeline: Pipeline[Any, Any], params: dict[str, Any]) -> GraphView:
    """The graph of `pipeline(**params)` as far as it is known before running."""
    bound = bind_parameters(pipeline, (), params)
    compiled = trace(pipeline.func, bound, pipeline.name, True, pipeline.step_options)
    if not compiled.is_dynamic:
        note = None
        if pipeline.dynamic is True:
            note = "declared dynamic=True: it runs as a dynamic pipeline; this is its traced graph"
        return GraphView(
            f"{pipeline.name} (static, before running)",
            group_nodes(_nodes(compiled.invocations)),
            note,
            empty="(no steps)",
        )
    groups = group_nodes(_nodes(compiled.discovered))
    continues_after = None
    if compiled.waited_on is not None:
        continues_after = next(
            (
                index
                for index, group in enumerate(groups)
                if any(member.name == compiled.waited_on for member in group.members)
            ),
            None,
        )
    note = f"dynamic: the graph continues at run time ({compiled.reason})"
    if pipeline.dynamic is False:
        note = f"declared dynamic=False, but {compiled.reason}: running it fails there"
    return GraphView(
        f"{pipeline.name} (dynamic, before running)",
        groups,
        note,
        continues_after,
        empty="(no steps before the first value is needed)",
    )
