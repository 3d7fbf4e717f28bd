"""What the loop knows about each invocation, and the rows it writes for it.

`Tracked` is the loop thread's own state of one invocation (its outputs, their artifact
versions, its attempts); `StepRecords` turns what happens to it — an attempt launched,
finished, retried, abandoned, a cache hit, a resumed record taken over — into the recorder's
rows, and builds the errors its future raises. Nothing here decides anything: the engine has.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from branchwork.exceptions import (
    ChildRunPaused,
    MissingArtifactError,
    PipelineRunStoppedError,
    ReplayDivergenceError,
    StepFailedError,
    StepNotRunError,
)
from branchwork.graph.cache_key import KeyParts
from branchwork.graph.cache_reasons import HIT, input_changes
from branchwork.graph.external import ExternalArtifact
from branchwork.graph.invocation import (
    ARTIFACT_REFS,
    Invocation,
    OutputRef,
    invocation_config_json,
)
from branchwork.metadata.cache_entries import files_lost
from branchwork.metadata.error_records import text_of
from branchwork.metadata.queries import recorded_key_parts
from branchwork.runtime.body import Outcome
from branchwork.runtime.envelopes import code_differences
from branchwork.runtime.graph_check import DIVERGED_ADVICE
from branchwork.runtime.step_execution import ArtifactInput, StepResult, StoredArtifact
from branchwork.values import leaves_of, tree_map

logger = logging.getLogger("branchwork")

if TYPE_CHECKING:
    from branchwork.metadata.queries import CacheHit
    from branchwork.metadata.recorder import Recorder


@dataclass(slots=True)
class Tracked:
    """The loop's state of one invocation."""

    invocation: Invocation
    outcome: Outcome
    outputs: dict[str, StoredArtifact] = field(default_factory=dict)  # with version ids
    step_run_id: str | None = None  # the step run whose outputs it has
    cache_key: str | None = None
    running_attempt: str | None = None  # step run id of the attempt in flight
    last_attempt: StepResult | None = None
    cache_parts: KeyParts | None = None  # see runtime.cache_keys
    cache_parts_json: str | None = None  # as recorded, and hashed into its key
    cache_verdict: str | None = None
    cache_reason: str | None = None
    key_error: str | None = None
    hit: CacheHit | None = None

    @property
    def last_error(self) -> BaseException | None:
        return self.last_attempt.error if self.last_attempt else None

    @property
    def step_name(self) -> str:
        return self.invocation.step.name

    @property
    def recorded(self) -> bool:
        """Whether it has a step run in this run: an attempt launched, a cache hit, or an
        earlier session's record taken over."""
        return bool(self.step_run_id or self.running_attempt)

    @property
    def value_inputs(self) -> tuple[str, ...]:
        return self.invocation.value_inputs


class Finished(NamedTuple):
    """What later calls need of an invocation that succeeded (its outcome keeps it)."""

    step_name: str
    step_run_id: str
    outputs: dict[str, StoredArtifact]
    value_inputs: tuple[str, ...] = ()

    @property
    def recorded(self) -> bool:
        """Always: it succeeded in this run (see `Tracked.recorded`)."""
        return True


class Invocations:
    """The loop's invocations: those that have not succeeded (running, waiting, failed, not
    run) as `Tracked`, by id, and those that succeeded as their `Finished`, found through
    their outcomes, weakly: a succeeded one
    is forgotten once no future of it and no call still to be recorded holds its outcome
    (`Invocation.held`). One that a later call names only by id (`after="name"`) may be
    gone by then: `look_up` reads it from the store."""

    def __init__(self, look_up: Callable[[str], Finished]) -> None:
        self.open: dict[str, Tracked] = {}
        self._succeeded: weakref.WeakValueDictionary[str, Outcome] = weakref.WeakValueDictionary()
        self._look_up = look_up

    def __getitem__(self, invocation_id: str) -> Tracked:
        return self.open[invocation_id]

    def get(self, invocation_id: str) -> Tracked | None:
        return self.open.get(invocation_id)

    def add(self, item: Tracked) -> None:
        self.open[item.invocation.id] = item

    def of(self, invocation_id: str) -> Tracked | Finished:
        """An earlier invocation, as a later call needs it: finished or not."""
        item = self.open.get(invocation_id)
        if item is not None:
            return item
        outcome = self._succeeded.get(invocation_id)
        if outcome is not None and outcome.finished is not None:
            return outcome.finished
        return self._look_up(invocation_id)

    def succeeded(self, item: Tracked) -> None:
        """It has its outputs, recorded: the loop keeps what later calls need on its outcome."""
        invocation = item.invocation
        assert item.step_run_id is not None
        item.outcome.finished = Finished(
            invocation.step.name, item.step_run_id, item.outputs, invocation.value_inputs
        )
        self._succeeded[invocation.id] = item.outcome
        del self.open[invocation.id]


class StepRecords:
    """Rows and errors for the invocations of one run; see the module docstring."""

    def __init__(
        self, recorder: Recorder, pipeline_name: str, is_dynamic: bool, tracked: Invocations
    ) -> None:
        self.recorder = recorder
        self.pipeline_name = pipeline_name
        self.is_dynamic = is_dynamic
        self.tracked = tracked
        # recent `value_inputs` tuples (by id) with the first call recorded with each and
        # the step names in it: see `_values_read`
        self._value_groups: dict[int, _ValueGroup] = {}
        self._warned_not_cached: set[str] = set()  # steps that ran where their code differs

    def inputs_of(self, invocation: Invocation) -> Any:
        """Its inputs with each reference replaced by the stored artifact it names."""
        return tree_map(self._stored, invocation.inputs, ARTIFACT_REFS)

    def _stored(self, ref: OutputRef | ExternalArtifact) -> ArtifactInput:
        if isinstance(ref, ExternalArtifact):
            return ArtifactInput(
                StoredArtifact.at(
                    ref.uri, ref.materializer, ref.data_type, ref.content_hash, inline=ref.inline
                )
            )
        stored = self.tracked.of(ref.invocation_id).outputs[ref.output]
        return ArtifactInput(stored, ref.item, ref.stop)

    def files_lost(self, item: Tracked, error: MissingArtifactError) -> MissingArtifactError | None:
        """An attempt found the files of one of its inputs gone: the results that made it are
        no longer served from the cache (see `cache_entries.files_lost`); None when the
        artifact was none of its inputs (one the step's own code loaded)."""
        versions = {
            self._version_id(ref)
            for _, ref in leaves_of(item.invocation.inputs, ARTIFACT_REFS)
            if self._stored(ref).artifact.uri == error.uri
        }
        if not versions:
            return None
        self.recorder.flush()  # the versions this run made, in the store to be found
        return files_lost(self.recorder.engine, versions, error)

    def _version_id(self, ref: OutputRef | ExternalArtifact) -> str:
        if isinstance(ref, ExternalArtifact):
            return ref.version_id
        return self.tracked.of(ref.invocation_id).outputs[ref.output].version_id

    def step_run(
        self,
        item: Tracked,
        step_run_id: str,
        attempt: int,
        status: str,
        start: float,
        original_id: str | None = None,
    ) -> None:
        """A step run begins (or, for a cache hit, happens)."""
        invocation = item.invocation
        inputs = [
            (where, self._version_id(ref))
            for where, ref in leaves_of(invocation.inputs, ARTIFACT_REFS)
        ]
        upstream = [self.tracked.of(d) for d in invocation.dependencies]
        values = self._values_read(invocation, upstream)
        self.recorder.step_run(
            step_run_id,
            invocation.id,
            invocation.step.name,
            attempt,
            status,
            start,
            invocation.step.code_hash,
            item.cache_key,
            invocation_config_json(invocation, _value_inputs_config(invocation, values))
            if self.is_dynamic
            else None,
            inputs,
            [parent.step_run_id for parent in upstream if parent.step_run_id],
            original_id,
            _cache_record(item),
        )
        self._edges_into(invocation, upstream, values)

    def _edges_into(
        self, invocation: Invocation, upstream: list[Tracked | Finished], values: _ValueGroup | None
    ) -> None:
        """The run graph's edges into its step name, from the step names of its recorded
        parents (data) and of the recorded invocations whose values the body read last before
        the call (value)."""
        parents = {parent.step_name for parent in upstream if parent.step_run_id}
        for kind, names in (("data", parents), ("value", values.names if values else ())):
            for name in names:
                self.recorder.edge(name, invocation.step.name, kind)

    def _values_read(
        self, invocation: Invocation, upstream: list[Tracked | Finished]
    ) -> _ValueGroup | None:
        """How the values read before the call are recorded: nothing for a call with an
        input from a call made after the same reads (it comes after them through it, and a
        value edge beside that path could make a needed one look implied: `run_groups`);
        else in full with the first call recorded after them, and by that call's id
        (`value_inputs_of`) with the later ones, so the store grows with the reads, not
        with calls times reads."""
        reads = invocation.value_inputs
        if not reads or any(parent.value_inputs is reads for parent in upstream):
            return None
        group = self._value_groups.get(id(reads))
        if group is None:
            if len(self._value_groups) >= 256:  # a few hundred: a group's names are found
                self._value_groups.clear()  # once, not once per call after its reads
            names = {read.step_name for read in map(self.tracked.of, reads) if read.recorded}
            group = self._value_groups[id(reads)] = _ValueGroup(reads, invocation.id, names)
        return group

    def cached(self, item: Tracked, step_run_id: str, hit: CacheHit) -> None:
        """Served from the cache: a step run of its own, linked to the original's outputs."""
        self.step_run(item, step_run_id, 1, "cached", time.time(), hit.step_run_id)
        for name, row in hit.outputs.items():
            self.recorder.output(step_run_id, name, row.id)
            item.outputs[name] = _stored_version(row)
        item.step_run_id = step_run_id

    def taken_over(self, item: Tracked, record: Any) -> None:
        """What an earlier session of this resumed run recorded for it (a step run)."""
        for name, version in record.outputs.items():
            item.outputs[name] = _stored_version(version)
        item.step_run_id = record.id

    def result(self, item: Tracked, result: StepResult) -> None:
        """An attempt's result: its logs, outputs (new artifact versions) and status."""
        metadata = _metadata_json(result)
        if result.logs:
            self.recorder.step_log(result.step_run_id, result.logs)
        if not result.ok:
            item.last_attempt = result
            # a child run asked to stop (with its parent, or on its own) stops its invocation;
            # one that paused at a question pauses it
            if isinstance(result.error, PipelineRunStoppedError):
                status = "stopped"
            elif isinstance(result.error, ChildRunPaused):
                status = "paused"
            else:
                status = "failed"
            self.recorder.step_finished(
                result.step_run_id,
                status,
                result.end_time,
                result.error,
                result.traceback,
                metadata,
                result.start_time,
            )
            return
        step = item.invocation.step
        for spec in step.outputs:  # the outputs of a successful attempt, each stored
            stored = result.outputs[spec.name]
            version_id = self.recorder.new_version(
                result.step_run_id,
                spec.name,
                spec.artifact_name_in(self.pipeline_name, step.name),
                stored.uri,
                stored.data_type,
                stored.materializer,
                stored.content_hash,
                result.end_time,
                preview=stored.preview,
                item_count=stored.item_count,
                inline=stored.inline,
                tags=spec.tags,
                metadata=result.artifact_metadata.get(spec.name),
            )
            # recorded: the preview is not needed again (kept while later calls may read it)
            item.outputs[spec.name] = stored._replace(preview=None, version_id=version_id)
        item.step_run_id = result.step_run_id
        self.recorder.step_finished(
            result.step_run_id,
            "completed",
            result.end_time,
            metadata=metadata,
            start=result.start_time,
        )
        if result.code_seen is not None:
            self._not_cached(item, result.step_run_id, result.code_seen)

    def _not_cached(self, item: Tracked, step_run_id: str, seen: dict[str, str]) -> None:
        """It ran where its code or the values it reads differ from where its key was made:
        its result must not serve that key (on any orchestrator, later)."""
        step = item.invocation.step
        named = ", ".join(code_differences(step, seen)) or "its code"
        before = f"{item.cache_reason}; " if item.cache_reason else ""
        self.recorder.uncached(
            step_run_id,
            f"{before}not cached: where it ran, other code or values than where its key was "
            f"made: {named}",
        )
        if step.name not in self._warned_not_cached:
            self._warned_not_cached.add(step.name)
            logger.warning(
                "Step '%s' ran in a process that sees other code or values than where its "
                "cache key was made: %s (a step process imports modules afresh: a global set "
                "at run time is not seen there). Its results are not cached: pass such a value "
                "as a step argument.",
                step.name,
                named,
            )

    def retried(self, item: Tracked) -> None:
        failed = item.last_attempt
        if failed is not None:  # recorded failed: now retried, with what it logged
            self.recorder.step_finished(
                failed.step_run_id,
                "retried",
                failed.end_time,
                failed.error,
                failed.traceback,
                _metadata_json(failed),
                failed.start_time,
            )

    def diverged(self, item: Tracked, message: str, record: Any = None) -> None:
        """It fails with `message`, what differs from `record` (a
        `metadata.queries.RecordedAttempt`) where only its inputs do, and the way out."""
        now = time.time()
        parts = item.cache_parts
        if record is not None and parts is not None and record.code_hash == parts.code:
            recorded = recorded_key_parts(self.recorder.engine, record.id)
            if recorded is not None and record.cache_key != item.cache_key:
                changes = input_changes(parts, KeyParts.from_json(json.loads(recorded)))
                message += f" What differs: {'; '.join(changes)}." if changes else ""
        error = ReplayDivergenceError(f"{message} {DIVERGED_ADVICE}", item.invocation.id)
        item.last_attempt = StepResult(item.invocation.id, "", 0, now, now, error=error)

    def gave_up(self, item: Tracked) -> StepFailedError:
        invocation, cause = item.invocation, item.last_error
        error = StepFailedError(
            f"Step '{invocation.step.name}' (invocation '{invocation.id}') of pipeline "
            f"'{self.pipeline_name}' failed: {type(cause).__name__}: {text_of(cause)}",
            invocation.id,
        )
        error.__cause__ = cause
        return error

    def not_run(self, item: Tracked, because_of: str | None) -> StepNotRunError:
        invocation = item.invocation
        failed = item.last_attempt
        if failed is not None and failed.error is not None:
            # its retry was due, and will not come: the attempt recorded `retried` failed
            self.recorder.step_finished(
                failed.step_run_id,
                "failed",
                failed.end_time,
                failed.error,
                failed.traceback,
                _metadata_json(failed),
                failed.start_time,
            )
        if because_of is None:
            reason = "the run was stopped"
        elif isinstance(self.tracked[because_of].last_error, ChildRunPaused):
            reason = f"the child run of '{because_of}' waits for an answer"
        else:
            reason = f"'{because_of}' failed"
        error = StepNotRunError(
            f"Step '{invocation.step.name}' (invocation '{invocation.id}') of pipeline "
            f"'{self.pipeline_name}' did not run because {reason}.",
            invocation.id,
        )
        error.__cause__ = self.tracked[because_of].last_error if because_of else None
        return error

    def abandoned(self, item: Tracked) -> StepNotRunError:
        invocation = item.invocation
        error = StepNotRunError(
            f"Step '{invocation.step.name}' (invocation '{invocation.id}') of pipeline "
            f"'{self.pipeline_name}' was abandoned while running: the run was stopped.",
            invocation.id,
        )
        if item.running_attempt is not None:
            self.recorder.step_finished(item.running_attempt, "stopped", time.time(), error)
        return error


class _ValueGroup(NamedTuple):
    """The values read before some calls, the first of those calls recorded, and the step
    names read. Holding `reads` keeps its id from being reused while it is a key."""

    reads: tuple[str, ...]
    first: str
    names: set[str]


def _value_inputs_config(invocation: Invocation, group: _ValueGroup | None) -> dict[str, Any]:
    if group is None:
        return {}
    if group.first == invocation.id:
        return {"value_inputs": list(group.reads)}
    return {"value_inputs_of": group.first}


def _stored_version(version: Any) -> StoredArtifact:
    """A recorded artifact version (a cache hit's, an earlier session's), as later steps read
    it (no preview: they never show it)."""
    return StoredArtifact.at(
        version.uri,
        version.materializer,
        version.data_type,
        version.content_hash,
        None,
        version.item_count,
        version.inline_data,
        version.id,
    )


def _cache_record(item: Tracked) -> tuple[str | None, str | None, str | None]:
    """What a step run records of its cache: key parts (JSON), verdict, reason. A hit's parts
    are those of the step run it reused, which has them: `queries.earlier_run` reads them
    there, so a cached rerun does not write them again."""
    parts = None if item.cache_verdict == HIT else item.cache_parts_json
    return parts, item.cache_verdict, item.cache_reason


def _metadata_json(result: StepResult) -> str | None:
    """What the attempt logged with `log_metadata`, as recorded."""
    return json.dumps(result.metadata, default=repr) if result.metadata else None
