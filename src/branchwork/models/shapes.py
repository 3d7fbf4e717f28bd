"""The JSON shapes of runs, step runs and artifact versions that scripts and pages rely on.

`branchwork runs ... --output json` and the dashboard's API print the same dicts, so they are
made here, once, below both. Times are ISO 8601 with their offset; durations are seconds, a
run's summed over its sessions (see `PipelineRunResponse.duration_seconds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from branchwork.models.responses import (
    ArtifactVersionResponse,
    PipelineRunResponse,
    StepRunResponse,
)
from branchwork.models.waits import WaitResponse

if TYPE_CHECKING:  # records the store's readers make; only their fields are used here
    from branchwork.metadata.run_cache import CacheGroup
    from branchwork.metadata.run_figures import Durations, StepGroup
    from branchwork.metadata.run_listing import StepRunOrigin
    from branchwork.metadata.run_pages import InvocationRow, Page


def iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its offset, for JSON."""
    return None if moment is None else moment.replace(tzinfo=timezone.utc).isoformat()


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def run_dict(run: PipelineRunResponse) -> dict[str, Any]:
    """A run without its step runs."""
    return {
        "id": run.id,
        "name": run.name,
        "pipeline": run.pipeline_name,
        "status": str(run.status),
        "is_dynamic": run.snapshot.is_dynamic,
        "orchestrator": run.orchestrator,
        "stack": run.stack,
        "orchestrator_run_id": run.orchestrator_run_id,
        "parameters": run.parameters,
        "created": iso(run.created),
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "duration_seconds": run.duration_seconds(),
        "failed_step": run.failed_step,
        "exception_type": run.exception_type,
        "exception_message": run.exception_message,
        "outputs": [version_dict(version) for version in run.outputs],
        "replay_of": run.replay_of,
        "parent_run_id": run.parent_run_id,  # a child run's parent (see Client.list_child_runs)
        "parent_invocation_id": run.parent_invocation_id,
    }


def step_dict(
    step: StepRunResponse, names: Mapping[str, str], origins: Mapping[str, StepRunOrigin]
) -> dict[str, Any]:
    """One attempt of an invocation; `names` maps step run ids (its parents') to invocation
    ids, `origins` says where a cache hit's step run lives."""
    origin = origins.get(step.original_step_run_id or "")
    return {
        "step_run_id": step.id,
        "invocation_id": step.name,
        "step": step.step_name,
        "status": str(step.status),
        "attempt": step.attempt,
        "start_time": iso(step.start_time),
        "end_time": iso(step.end_time),
        "duration_seconds": seconds(step.start_time, step.end_time),
        "cache_key": step.cache_key,
        "cache_verdict": step.cache_verdict,
        "cache_reason": step.cache_reason,
        "cached_from": step.original_step_run_id,
        "cached_from_run": origin.run_name if origin else None,
        "parents": [names.get(parent, parent) for parent in step.parent_step_run_ids],
        "outputs": {name: version.id for name, version in step.outputs.items()},
        "exception_type": step.exception_type,
        "exception_message": step.exception_message,
        "traceback": step.traceback,
        "run_metadata": step.run_metadata,
    }


def version_dict(version: ArtifactVersionResponse) -> dict[str, Any]:
    """An artifact version: where it is, what wrote it, its number, tags, logged metadata and
    stored preview (never the value: showing an artifact loads nothing)."""
    return {
        "id": version.id,
        "artifact": version.name,
        "version": version.version,
        "tags": list(version.tags),
        "metadata": version.metadata,
        "uri": version.uri,
        "data_type": version.data_type,
        "materializer": version.materializer,
        "content_hash": version.content_hash,
        "item_count": version.item_count,
        "producer_step_run_id": version.producer_step_run_id,
        "created": iso(version.created),
        "preview": version.preview,
    }


def wait_dict(wait: WaitResponse) -> dict[str, Any]:
    """A question a run asked (`branchwork.wait`) and its answer, if it has one."""
    return {
        "wait_id": wait.wait_id,
        "question": wait.question,
        "schema": wait.schema,
        "timeout_seconds": wait.timeout,
        "has_default": wait.has_default,
        "default": wait.default,
        "asked": iso(wait.asked),
        "deadline": iso(wait.deadline),
        "answer": wait.answer,
        "answered": iso(wait.answered),
        "answered_by": wait.answered_by,
    }


def paged(page: Page[Any], items: list[Any]) -> dict[str, Any]:
    """One page of a list: its items, which page, and how long the whole list is."""
    return {"items": items, "page": page.page, "page_size": page.page_size, "total": page.total}


def item_dict(row: InvocationRow) -> dict[str, Any]:
    """An invocation in a list (its latest attempt), with the first line of its error."""
    lines = (row.exception_message or "").strip().splitlines()
    return {
        "invocation": row.invocation,
        "step_name": row.step_name,
        "status": row.status,
        "attempt": row.attempt,
        "start": iso(row.start),
        "end": iso(row.end),
        "duration_s": seconds(row.start, row.end),
        "cache_verdict": row.cache_verdict,
        "exception_type": row.exception_type,
        "error": lines[0] if lines else None,
    }


def group_dict(group: StepGroup) -> dict[str, Any]:
    """The invocations of one step name: counts by state, when the first started and the
    last ended."""
    return {
        "step_name": group.step_name,
        "counts": group.counts,
        "total": group.total,
        "start": iso(group.first_start),
        "end": iso(group.last_end),
    }


def cache_group_dict(group: CacheGroup) -> dict[str, Any]:
    """The invocations of one step name given one cache verdict, and the first one's
    decision (reasons name their invocation)."""
    return {
        "step_name": group.step_name,
        "verdict": group.verdict,
        "invocations": group.invocations,
        "first": {"invocation_id": group.example.invocation_id, "reason": group.example.reason},
    }


def durations_dict(found: Durations | None) -> dict[str, Any]:
    """Nearest-rank p50, p95 and max seconds of a step name's executed invocations."""
    if found is None:
        return {"p50": None, "p95": None, "max": None}
    return {"p50": round(found.p50, 6), "p95": round(found.p95, 6), "max": round(found.max, 6)}
