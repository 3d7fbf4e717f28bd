"""The runs around a run (see `pipelines.nesting`): the run a child run was called from, and
the tree of child runs a run's pipeline called, as `runs show` and `runs graph` print them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text

from branchwork.cli import render
from branchwork.exceptions import BranchworkError, StoreUnavailableError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.models import PipelineRunResponse


@dataclass(frozen=True)
class Descendant:
    """A child run (depth 1), a child of one (depth 2) ..."""

    depth: int
    run: PipelineRunResponse


def descendants(engine: Engine, run_id: str, depth: int = 1) -> list[Descendant]:
    """The child runs of run `run_id`, each followed by its own, oldest first."""
    from branchwork.metadata.queries import child_run_ids, get_run

    found: list[Descendant] = []
    for child_id in child_run_ids(engine, run_id):
        found.append(Descendant(depth, get_run(engine, child_id, include_steps=False)))
        found.extend(descendants(engine, child_id, depth + 1))
    return found


def family_dict(engine: Engine, run: PipelineRunResponse) -> dict[str, Any]:
    """The "parent" (null for a top-level run; its "name" and "pipeline" null once it was
    deleted) and "children" (the whole tree, with depths) of the JSON of `runs show`."""
    from branchwork.metadata.queries import get_run

    parent = None
    if run.parent_run_id is not None:
        parent = {
            "id": run.parent_run_id,
            "name": None,
            "pipeline": None,
            "invocation": run.parent_invocation_id,
        }
        try:
            parent_run = get_run(engine, run.parent_run_id, include_steps=False)
        except StoreUnavailableError:
            raise  # an outage, not a deleted parent
        except BranchworkError:  # deleted since
            pass
        else:
            parent.update(name=parent_run.name, pipeline=parent_run.pipeline_name)
    children = [
        {
            "id": child.run.id,
            "name": child.run.name,
            "pipeline": child.run.pipeline_name,
            "status": str(child.run.status),
            "invocation": child.run.parent_invocation_id,
            "depth": child.depth,
        }
        for child in descendants(engine, run.id)
    ]
    return {"parent": parent, "children": children}


def show_family(engine: Engine, run: PipelineRunResponse) -> None:
    """The run a child run was called from, and the tree of its own child runs."""
    family = family_dict(engine, run)
    out = render.console()
    parent = family["parent"]
    if parent is not None:
        out.print()
        invocation = f"invocation {parent['invocation']}"
        if parent["name"] is None:
            out.print(Text(f"Child of a deleted run (id {parent['id']}, {invocation})"))
        else:
            out.print(Text(f"Child of {parent['name']} ({invocation})"))
    if family["children"]:
        out.print()
        title = f"Child runs: {len(family['children'])}"
        table = render.new_table("RUN", "INVOCATION", "PIPELINE", "STATUS", title=title)
        for child in family["children"]:
            indent = "  " * (child["depth"] - 1)
            table.add_row(
                Text(indent + child["name"]),
                Text(child["invocation"] or ""),
                Text(child["pipeline"]),
                render.status_text(child["status"]),
            )
        out.print(table)
