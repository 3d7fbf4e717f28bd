"""Response records: snapshots of what the metadata store holds, detached from any session."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any

from branchwork.exceptions import BranchworkError, ChildRunPaused
from branchwork.values import Leaf, decode


class ExecutionStatus(str, Enum):
    """Statuses of runs and step runs (plain strings in the store)."""

    INITIALIZING = "initializing"
    RUNNING = "running"
    COMPLETED = "completed"
    CACHED = "cached"
    FAILED = "failed"
    RETRIED = "retried"
    STOPPED = "stopped"
    # A run waiting for an answer (`branchwork.wait`): no loop runs it until it is answered.
    # Finished as far as readers go (nothing changes meanwhile); resumable by an answer.
    PAUSED = "paused"

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        return self not in (ExecutionStatus.INITIALIZING, ExecutionStatus.RUNNING)


# The statuses a run can have: cached and retried are step runs' only.
RUN_STATUSES = tuple(
    status.value
    for status in ExecutionStatus
    if status not in (ExecutionStatus.CACHED, ExecutionStatus.RETRIED)
)


@dataclass(frozen=True)
class ArtifactVersionResponse:
    """One stored value: where it is, what wrote it, its content hash, its number among the
    versions of artifact `name` (1, 2, 3 ...), its preview (`{"text": ..., "metadata": ...,
    "image_png": base64}`, None for versions saved before previews), its tags and the
    metadata its step logged with `log_artifact_metadata`."""

    id: str
    name: str
    uri: str
    data_type: str
    materializer: str
    content_hash: str
    producer_step_run_id: str | None
    created: datetime
    version: int
    preview_json: str | None = field(default=None, repr=False)  # as stored
    item_count: int | None = None  # items of a list, array or table (what `step.map` maps)
    # The value itself when it is kept in the metadata store (see artifact_stores.inline)
    inline_data: bytes | None = field(default=None, repr=False)
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    @functools.cached_property
    def preview(self) -> dict[str, Any] | None:
        """The preview, parsed when first asked for (a run of 10,000 steps reads 20,000
        versions, and most previews are never looked at)."""
        parsed: dict[str, Any] | None = loads(self.preview_json)
        return parsed

    def load(self, allow_pickle: bool = False) -> Any:
        """Read the value back with the materializer that wrote it. A pickled value loads only
        in the process that wrote it, or with `allow_pickle` (see `materializers.pickle_policy`)."""
        from branchwork.exceptions import ArtifactError
        from branchwork.materializers.dataclass_materializer import MissingClassError
        from branchwork.materializers.io import load_artifact
        from branchwork.materializers.types import resolve_type

        try:
            return load_artifact(
                self.uri,
                self.materializer,
                resolve_type(self.data_type),
                content_hash=self.content_hash,
                allow_pickle=allow_pickle,
                inline=self.inline_data,
            )
        except MissingClassError as error:  # the recorded class says which, and what to do
            raise ArtifactError(
                f"This artifact holds a {error.kind} as JSON, and loading it needs its class, "
                f"{_unimportable(self.data_type)}"
            ) from None


def _unimportable(type_path: str) -> str:
    """Why the class an artifact was recorded with is not found here, and what to do."""
    module, _, name = type_path.rpartition(".")
    if module == "__main__":
        return (
            f"{name}, defined in the script that ran the pipeline: load it in a process that "
            "ran or imported that script, or move the class to a module the script imports."
        )
    return (
        f"{type_path}, which cannot be imported here: run from the project's folder, or put "
        "its module on PYTHONPATH."
    )


@dataclass(frozen=True)
class StepConfigurationResponse:
    """How an invocation was configured; linked to a snapshot (static) or a step run (dynamic)."""

    id: str
    name: str
    step_name: str
    config: dict[str, Any]
    snapshot_id: str | None
    step_run_id: str | None


@dataclass(frozen=True)
class StepRunResponse:
    """One attempt (or cache hit) of one invocation. `name` is the invocation id."""

    id: str
    name: str
    step_name: str
    status: ExecutionStatus
    attempt: int
    start_time: datetime | None
    end_time: datetime | None
    cache_key: str | None
    code_hash: str
    original_step_run_id: str | None
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    run_metadata: dict[str, Any]
    inputs: dict[str, ArtifactVersionResponse]
    outputs: dict[str, ArtifactVersionResponse]
    parent_step_run_ids: tuple[str, ...]
    configuration: StepConfigurationResponse | None
    cache_verdict: str | None = None  # hit, miss, off, refresh, expired, key_failed, resumed
    cache_reason: str | None = None  # why, in a line: see graph.cache_reasons

    @property
    def output(self) -> ArtifactVersionResponse:
        """The single output of a one-output step."""
        if len(self.outputs) != 1:
            raise BranchworkError(
                f"Step run '{self.name}' has {len(self.outputs)} outputs "
                f"({', '.join(self.outputs) or 'none'}); use .outputs[name]."
            )
        return next(iter(self.outputs.values()))


@dataclass(frozen=True)
class CacheDecision:
    """Why an invocation of a run was served from the cache or computed: recorded when it ran,
    comparing its key with the pipeline's previous run (see docs/caching.md)."""

    invocation_id: str
    step_name: str
    verdict: str | None  # hit, miss, off, refresh, expired, key_failed, resumed; None: unknown
    reason: str | None

    @classmethod
    def of(cls, step: StepRunResponse) -> CacheDecision:
        return cls(step.name, step.step_name, step.cache_verdict, step.cache_reason)


@dataclass(frozen=True)
class PipelineSnapshotResponse:
    """The compiled, immutable description of a run request."""

    id: str
    pipeline_name: str
    is_dynamic: bool
    source: str
    source_file: str | None
    parameters: dict[str, Any]
    spec: dict[str, Any]
    created: datetime
    step_configurations: dict[str, StepConfigurationResponse] = field(default_factory=dict)
    # What it takes to import the pipeline again elsewhere: see `branchwork.user_code`.
    import_path: tuple[str, ...] = ()
    working_dir: str | None = None
    argv: tuple[str, ...] = ()  # the arguments of the script that started it


@dataclass(frozen=True)
class PipelineRunResponse:
    """One run of a snapshot, with its step runs keyed by invocation id (latest attempt)."""

    id: str
    name: str
    pipeline_name: str
    status: ExecutionStatus
    orchestrator: str
    orchestrator_run_id: str | None
    parameters: dict[str, Any]
    created: datetime
    start_time: datetime | None
    end_time: datetime | None
    failed_step: str | None
    exception_type: str | None
    exception_message: str | None
    traceback: str | None
    snapshot: PipelineSnapshotResponse
    steps: dict[str, StepRunResponse]
    attempts: tuple[StepRunResponse, ...]
    outputs: tuple[ArtifactVersionResponse, ...]
    output_structure: Any
    exception_data: str | None = None  # how to rebuild the exception: metadata.error_records
    # What the pipeline's run-level hooks raised in the run's latest session, one dict each:
    # hook, function, exception_type, message, traceback (see `runtime.hooks`).
    hook_errors: tuple[dict[str, str], ...] = ()
    replay_of: str | None = None  # the run this one replays (`Client().replay`), by id
    # The stack that started it (`branchwork stack ...`); None: recorded before stacks were
    # (`orchestrator` says where it ran then). A resume may run on another stack.
    stack: str | None = None
    # Seconds it was running in its sessions before the latest one (None: no earlier one).
    earlier_sessions_seconds: float | None = None
    # A child run (a pipeline called in a running pipeline): its parent run's id and the
    # parent's invocation that called it; None for a top-level run.
    parent_run_id: str | None = None
    parent_invocation_id: str | None = None
    # Seconds between its loop's heartbeats (None: recorded before they were kept).
    heartbeat_seconds: float | None = None

    @property
    def paused_with_child(self) -> bool:
        """Paused because the child run its invocation `failed_step` started paused at a
        question: it waits on that question (see `metadata.waits`)."""
        return (
            self.status == ExecutionStatus.PAUSED
            and self.exception_type == ChildRunPaused.__name__
            and self.failed_step is not None
        )

    def duration_seconds(self, until: datetime | None = None) -> float | None:
        """Seconds the run was running, summed over its sessions: a resume starts a new one,
        and the time between them (failed, stopped, paused) does not count. `start_time` and
        `end_time` are those of the latest session, which counts up to `until` while it
        goes; None while it goes without `until`, or if it never started."""
        if self.status == ExecutionStatus.INITIALIZING:  # its (next) session has not begun
            return self.earlier_sessions_seconds
        end = self.end_time or (None if self.status.is_finished else until)
        if self.start_time is None or end is None:
            return None
        return (self.earlier_sessions_seconds or 0.0) + (end - self.start_time).total_seconds()

    def load_output(self, allow_pickle: bool = False) -> Any:
        """The pipeline function's return value, loaded, with its structure (as the
        orchestration loop wrote it: `{"$out": n}` is output n, item "index" (to "stop") of it
        when the pipeline returned a mapped item). `allow_pickle` as in
        `ArtifactVersionResponse.load`."""
        from branchwork.materializers.registry import load_materializer_class

        def output(node: dict[str, Any]) -> Any:
            version = self.outputs[node["$out"]]
            value = version.load(allow_pickle)
            if node.get("index") is None:
                return value
            materializer = load_materializer_class(version.materializer)
            return materializer.select(value, node["index"], node.get("stop"))

        return decode(self.output_structure, Leaf("$out", from_json=output))


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)
