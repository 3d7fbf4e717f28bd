"""How the API's answers are made from the store's records: the dicts of runs, invocations,
groups and attempts, pages, and the limits that keep every answer small (at most
`MAX_GROUPS` step names; lists in a configuration cut at `MAX_ITEMS_SHOWN`)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from branchwork.metadata.run_figures import StepGroup
from branchwork.metadata.run_listing import StepRunOrigin
from branchwork.metadata.run_pages import counts_of as counts_of  # shared with the CLI
from branchwork.models.responses import PipelineRunResponse, StepRunResponse
from branchwork.models.shapes import durations_dict as durations_dict  # shared with the CLI
from branchwork.models.shapes import group_dict as group_dict
from branchwork.models.shapes import iso, run_dict, seconds
from branchwork.models.shapes import item_dict as item_dict
from branchwork.models.shapes import paged as paged

MAX_GROUPS = 300  # step names drawn in a graph or a timeline; the rest are counted
MAX_ITEMS_SHOWN = 50  # entries of a list or dict in a step's configuration or metadata


def elapsed(run: PipelineRunResponse) -> float | None:
    """Seconds the run was running over its sessions, or has been so far while it runs."""
    return run.duration_seconds(until=datetime.now(timezone.utc).replace(tzinfo=None))


def run_summary(run: PipelineRunResponse, counts: dict[str, int]) -> dict[str, Any]:
    """The CLI's run dict (`runs list -o json`) plus what the runs list shows."""
    return {
        **run_dict(run),
        "step_count": sum(counts.values()) - counts["not_started"],
        "counts": counts,
        "kind": "dynamic" if run.snapshot.is_dynamic else "static",
        "duration_s": elapsed(run),
    }


def shown_groups(groups: list[StepGroup]) -> tuple[list[StepGroup], dict[str, Any]]:
    """The groups a graph or timeline draws, and what says how many it leaves out."""
    hidden = groups[MAX_GROUPS:]
    return groups[:MAX_GROUPS], {
        "truncated": bool(hidden),
        "more": len(hidden),
        "more_invocations": sum(group.total for group in hidden),
    }


def shortened(value: Any, items: int = MAX_ITEMS_SHOWN) -> Any:
    """A JSON value with every list and dict cut to its first `items` entries, and what was
    cut said in a last one: a configuration records every input of a call, which for a
    `merge` of 10,000 outputs is 10,000 references."""
    if isinstance(value, list):
        kept = [shortened(item, items) for item in value[:items]]
        return kept + ([f"... {len(value) - items} more"] if len(value) > items else [])
    if isinstance(value, dict):
        pairs = list(value.items())
        kept_pairs = {key: shortened(item, items) for key, item in pairs[:items]}
        if len(pairs) > items:
            kept_pairs["..."] = f"{len(pairs) - items} more"
        return kept_pairs
    return value


def origin_dict(origin: StepRunOrigin | None) -> dict[str, str] | None:
    return None if origin is None else {"run": origin.run_name, "invocation": origin.invocation_id}


def attempt_dict(attempt: StepRunResponse) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "status": str(attempt.status),
        "start": iso(attempt.start_time),
        "end": iso(attempt.end_time),
        "duration_s": seconds(attempt.start_time, attempt.end_time),
        "exception_type": attempt.exception_type,
        "exception_message": attempt.exception_message,
        "traceback": attempt.traceback,
    }
