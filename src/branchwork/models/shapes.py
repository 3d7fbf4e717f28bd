"""The JSON shapes of runs, step runs and artifact versions that scripts and pages rely on.

`branchwork runs ... --output json` and the dashboard's API print the same dicts, so they are
made here, once, below both. Times are ISO 8601 with their offset; durations are seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from branchwork.models.responses import (
    ArtifactVersionResponse,
    PipelineRunResponse,
    StepRunResponse,
)

if TYPE_CHECKING:  # a record the store's readers make; only its fields are used here
    from branchwork.metadata.run_listing import StepRunOrigin

VersionShape = Callable[[ArtifactVersionResponse], dict[str, Any]]


def iso(moment: datetime | None) -> str | None:
    """A stored (naive UTC) time as ISO 8601 with its offset, for JSON."""
    return None if moment is None else moment.replace(tzinfo=timezone.utc).isoformat()


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else (end - start).total_seconds()


def run_dict(run: PipelineRunResponse, version_dict: VersionShape) -> dict[str, Any]:
    """A run without its step runs; its outputs shaped by `version_dict`."""
    return {
        "id": run.id,
        "name": run.name,
        "pipeline": run.pipeline_name,
        "status": str(run.status),
        "is_dynamic": run.snapshot.is_dynamic,
        "orchestrator": run.orchestrator,
        "orchestrator_run_id": run.orchestrator_run_id,
        "parameters": run.parameters,
        "created": iso(run.created),
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        "duration_seconds": seconds(run.start_time, run.end_time),
        "failed_step": run.failed_step,
        "exception_type": run.exception_type,
        "exception_message": run.exception_message,
        "outputs": [version_dict(version) for version in run.outputs],
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


def artifact_version_dict(version: ArtifactVersionResponse) -> dict[str, Any]:
    """An artifact version as the dashboard shows it: where it is, what wrote it, and its
    stored preview (never the value: showing an artifact loads nothing).

    The fields `version`, `tags`, `metadata` and `preview` are read when the record has
    them (issue 16 adds them), else null/empty. The keys of `cli.render.version_dict` are
    all here too, so the two can become one function once that one settles.
    """
    return {
        "id": version.id,
        "name": version.name,
        "artifact": version.name,
        "version": getattr(version, "version", None),
        "uri": version.uri,
        "data_type": version.data_type,
        "materializer": version.materializer,
        "content_hash": version.content_hash,
        "producer_step_run_id": version.producer_step_run_id,
        "created": iso(version.created),
        "size": getattr(version, "size", None),
        "tags": list(getattr(version, "tags", None) or ()),
        "metadata": dict(getattr(version, "metadata", None) or {}),
        "preview": preview_dict(getattr(version, "preview", None)),
    }


def preview_dict(stored: Any) -> dict[str, Any] | None:
    """A stored preview ({"text", "metadata", "image_png" base64}) as a dict, whether it
    comes as the stored JSON text, a dict or an object with those fields; None if none."""
    if stored is None or stored == "":
        return None
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            return {"text": stored, "metadata": {}, "image_png": None}
    if not isinstance(stored, Mapping):
        stored = {key: getattr(stored, key, None) for key in ("text", "metadata", "image_png")}
    image = stored.get("image_png")
    if isinstance(image, bytes):
        import base64

        image = base64.b64encode(image).decode()
    return {
        "text": str(stored.get("text") or ""),
        "metadata": dict(stored.get("metadata") or {}),
        "image_png": image or None,
    }
