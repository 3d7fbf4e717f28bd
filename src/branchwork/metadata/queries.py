"""Reading the store into response records, and the cache lookup.

A run's responses carry the tags and logged metadata of every artifact version they link,
read in one more query whatever the number of steps (`version_labels.run_labels`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from sys import intern
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, or_, select

from branchwork.exceptions import BranchworkError
from branchwork.metadata import schema as s
from branchwork.metadata.lost import (
    ATTEMPT_LOST_MESSAGE,
    LOST_TYPE,
    is_lost,
    lost_status,
    run_lost_message,
)
from branchwork.metadata.recorder import utc
from branchwork.metadata.retries import retrying
from branchwork.metadata.version_labels import NO_LABELS, Labels, run_labels
from branchwork.metadata.version_labels import labels_of as labels_of  # for the page readers
from branchwork.models.responses import (
    ArtifactVersionResponse,
    ExecutionStatus,
    PipelineRunResponse,
    PipelineSnapshotResponse,
    StepConfigurationResponse,
    StepRunResponse,
    loads,
)

_CHUNK = 500


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


def _version(row: Any, labels: dict[str, Labels] | None = None) -> ArtifactVersionResponse:
    """The version a row of a select ending with `_VERSION_COLUMNS` holds. Read by position
    (by name, a row's columns cost a microsecond each: reading a big run's 20 000 versions
    spent most of its time there); the names every version of an artifact repeats are
    interned, held once however many versions are read."""
    (
        version_id,
        uri,
        data_type,
        materializer,
        content_hash,
        producer_step_run_id,
        created,
        version,
        preview,
        item_count,
        inline_data,
        name,
    ) = row[-len(_VERSION_COLUMNS) :]
    found = (labels or {}).get(version_id, NO_LABELS)
    return ArtifactVersionResponse(
        version_id,
        intern(name),
        uri,
        intern(data_type),
        intern(materializer),
        content_hash,
        producer_step_run_id,
        created,
        version,
        preview,
        item_count,
        inline_data,
        found.tags,
        dict(found.metadata) if found.metadata else {},
    )


_VERSION_COLUMNS = (
    s.artifact_version.c.id,
    s.artifact_version.c.uri,
    s.artifact_version.c.data_type,
    s.artifact_version.c.materializer,
    s.artifact_version.c.content_hash,
    s.artifact_version.c.producer_step_run_id,
    s.artifact_version.c.created,
    s.artifact_version.c.version,
    s.artifact_version.c.preview,
    s.artifact_version.c.item_count,
    s.artifact_version.c.inline_data,
    s.artifact.c.name.label("artifact_name"),
)


class CacheHit(NamedTuple):
    """A completed step run with a given cache key: what a cache hit reuses."""

    step_run_id: str
    outputs: dict[str, Any]  # output name -> its artifact version (id, uri, data type, ...)
    finished: datetime | None
    run_name: str
    invocation_id: str


def servable() -> Any:
    """A step run whose result a cache hit may reuse: a completed one, or a cache hit whose
    original was deleted with its run (it links the same artifact versions, which the
    deletion kept), so that deleting an old run does not lose what later runs reused."""
    step, original = s.step_run.c, s.step_run.alias("original")
    return or_(
        step.status == "completed",
        and_(
            step.status == "cached",
            step.original_step_run_id.is_not(None),
            ~exists().where(original.c.id == step.original_step_run_id),
        ),
    )


# Built once: a sequential body looks up one key per step, and building this join took
# twice as long as running it.
_CACHED = (
    select(
        s.step_run.c.id.label("step_run_id"),
        s.step_run.c.cache_key,
        s.step_run.c.name.label("invocation_id"),
        s.step_run.c.end_time.label("finished"),
        s.step_run.c.cache_invalidated,
        s.pipeline_run.c.name.label("run_name"),
        s.step_run_output_artifact.c.name.label("output_name"),
        # what a hit's outputs are read by (`StoredArtifact`): not their previews or names
        s.artifact_version.c.id,
        s.artifact_version.c.uri,
        s.artifact_version.c.data_type,
        s.artifact_version.c.materializer,
        s.artifact_version.c.content_hash,
        s.artifact_version.c.item_count,
        s.artifact_version.c.inline_data,
    )
    .select_from(s.step_run)
    .join(s.pipeline_run, s.pipeline_run.c.id == s.step_run.c.run_id)
    .outerjoin(
        s.step_run_output_artifact,
        s.step_run_output_artifact.c.step_run_id == s.step_run.c.id,
    )
    .outerjoin(
        s.artifact_version,
        s.artifact_version.c.id == s.step_run_output_artifact.c.artifact_version_id,
    )
    .where(
        s.step_run.c.cache_key.in_(bindparam("keys", expanding=True)),
        servable(),
    )
    .order_by(s.step_run.c.end_time.desc())
)


class CacheLookup(NamedTuple):
    """What the store holds for some cache keys."""

    hits: dict[str, CacheHit]  # by key: the newest servable step run with it, not invalidated
    invalidated: set[str]  # keys whose results were all invalidated: a miss says so


@retrying("looking up the cache")
def find_cached(engine: Engine, keys: list[str]) -> CacheLookup:
    """For each cache key: the newest step run with it that can serve it (`servable`) and
    was not invalidated, or that all of them were."""
    found: dict[str, CacheHit] = {}
    invalidated: set[str] = set()
    if not keys:
        return CacheLookup(found, invalidated)
    with engine.connect() as conn:
        for chunk in _chunks(sorted(set(keys))):
            rows = conn.execute(_CACHED, {"keys": chunk}).all()
            for row in rows:
                if row.cache_invalidated:
                    invalidated.add(row.cache_key)
                    continue
                hit = found.get(row.cache_key)
                if hit is None:
                    hit = found[row.cache_key] = CacheHit(
                        row.step_run_id, {}, row.finished, row.run_name, row.invocation_id
                    )
                if row.step_run_id == hit.step_run_id and row.output_name is not None:
                    hit.outputs[row.output_name] = row
    return CacheLookup(found, invalidated - found.keys())


class EarlierStep(NamedTuple):
    """An invocation's latest attempt in a pipeline's previous run, as cache reasons compare."""

    parts: str | None  # its key parts (JSON)
    status: str
    invalidated: bool


class EarlierRun(NamedTuple):
    """What each invocation recorded in a pipeline's previous run."""

    run_name: str
    parameters: dict[str, Any]
    steps: dict[str, EarlierStep]  # by invocation id


@retrying("reading the previous run")
def earlier_run(engine: Engine, pipeline_name: str, run_id: str) -> EarlierRun | None:
    """The run of the pipeline created last before run `run_id`, as cache reasons compare:
    the same one whenever it is asked for, whatever runs started since."""
    created = select(s.pipeline_run.c.created).where(s.pipeline_run.c.id == run_id)
    with engine.connect() as conn:
        run = conn.execute(
            select(s.pipeline_run.c.id, s.pipeline_run.c.name, s.pipeline_run.c.parameters)
            .join(s.pipeline, s.pipeline.c.id == s.pipeline_run.c.pipeline_id)
            .where(
                s.pipeline.c.name == pipeline_name,
                s.pipeline_run.c.id != run_id,
                s.pipeline_run.c.created <= created.scalar_subquery(),
            )
            .order_by(s.pipeline_run.c.created.desc())
            .limit(1)
        ).one_or_none()
        if run is None:
            return None
        reused = s.step_run.alias("reused")  # what a cache hit there was served from
        rows = conn.execute(
            select(
                s.step_run.c.name,
                func.coalesce(s.step_run.c.cache_parts, reused.c.cache_parts).label("parts"),
                s.step_run.c.status,
                s.step_run.c.cache_invalidated,
                reused.c.cache_invalidated.label("reused_invalidated"),
            )
            .outerjoin(reused, reused.c.id == s.step_run.c.original_step_run_id)
            .where(s.step_run.c.run_id == run.id)
            .order_by(s.step_run.c.attempt)
        ).all()
    steps = {
        row.name: EarlierStep(
            row.parts,
            row.status,
            bool(row.cache_invalidated or row.reused_invalidated),
        )
        for row in rows
    }
    return EarlierRun(run.name, loads(run.parameters, {}), steps)


@retrying("reading a step run's cache key parts")
def recorded_key_parts(engine: Engine, step_run_id: str) -> str | None:
    """The key parts a step run recorded (JSON, `graph.cache_key.KeyParts`): for a cache hit,
    those of the step run it reused."""
    reused = s.step_run.alias("reused")
    with engine.connect() as conn:
        parts: str | None = conn.execute(
            select(func.coalesce(s.step_run.c.cache_parts, reused.c.cache_parts))
            .outerjoin(reused, reused.c.id == s.step_run.c.original_step_run_id)
            .where(s.step_run.c.id == step_run_id)
        ).scalar_one_or_none()
    return parts


@retrying("reading code fingerprints")
def code_fingerprints(engine: Engine, digests: Iterable[str]) -> dict[str, str]:
    """Digest -> what it is made of (JSON), for the digests the store knows."""
    wanted = sorted(set(digests))
    found: dict[str, str] = {}
    with engine.connect() as conn:
        for chunk in _chunks(wanted):
            for row in conn.execute(
                select(s.code_fingerprint).where(s.code_fingerprint.c.digest.in_(chunk))
            ):
                found[row.digest] = row.parts
    return found


def _snapshot(conn: Connection, snapshot_id: str) -> PipelineSnapshotResponse:
    row = conn.execute(
        select(s.pipeline_snapshot, s.pipeline.c.name.label("pipeline_name"))
        .join(s.pipeline, s.pipeline.c.id == s.pipeline_snapshot.c.pipeline_id)
        .where(s.pipeline_snapshot.c.id == snapshot_id)
    ).one()
    configs = conn.execute(
        select(s.step_configuration).where(s.step_configuration.c.snapshot_id == snapshot_id)
    ).all()
    return PipelineSnapshotResponse(
        id=row.id,
        pipeline_name=row.pipeline_name,
        is_dynamic=row.is_dynamic,
        source=row.source,
        source_file=row.source_file,
        parameters=loads(row.parameters, {}),
        spec=loads(row.spec, {}),
        created=row.created,
        step_configurations={c.name: _configuration(c) for c in configs},
        import_path=tuple(loads(row.import_path, ())),
        working_dir=row.working_dir,
        argv=tuple(loads(row.argv, ())),
    )


def _configuration(row: Any) -> StepConfigurationResponse:
    return StepConfigurationResponse(
        id=row.id,
        name=row.name,
        step_name=row.step_name,
        config=loads(row.config, {}),
        snapshot_id=row.snapshot_id,
        step_run_id=row.step_run_id,
    )


def _links(
    conn: Connection, table: Any, step_run_ids: list[str], labels: dict[str, Labels]
) -> dict[str, dict[str, Any]]:
    links: dict[str, dict[str, Any]] = defaultdict(dict)
    for chunk in _chunks(step_run_ids):
        rows = conn.execute(
            select(table.c.step_run_id, table.c.name.label("link_name"), *_VERSION_COLUMNS)
            .join(s.artifact_version, s.artifact_version.c.id == table.c.artifact_version_id)
            .join(s.artifact, s.artifact.c.id == s.artifact_version.c.artifact_id)
            .where(table.c.step_run_id.in_(chunk))
        ).all()
        for row in rows:
            links[row[0]][intern(row[1])] = _version(row, labels)  # step run id, link name
    return links


class RecordedAttempt(NamedTuple):
    """An invocation's latest attempt as a resumed run, or a replay of its run, takes it
    over: what the graph check compares (`runtime.graph_check.Attempt`), the outputs it
    reuses, and when and by which step run they were made (a replay records them as a cache
    hit), without the inputs, parents and configuration of a `StepRunResponse`."""

    id: str
    step_name: str
    attempt: int
    status: str
    code_hash: str
    cache_key: str | None
    outputs: dict[str, ArtifactVersionResponse]
    end_time: datetime | None
    original_step_run_id: str | None  # a cache hit's: the step run that made its outputs
    invalidated: bool = False  # its result was invalidated (`branchwork cache invalidate`)


def latest_attempts(engine: Engine, run_id: str) -> dict[str, RecordedAttempt]:
    """The latest attempt of each invocation a run recorded, by invocation id: what the
    earlier sessions of a resumed run leave to it, read in a few queries whatever its size."""
    step = s.step_run.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                step.id,
                step.name,
                step.step_name,
                step.attempt,
                step.status,
                step.code_hash,
                step.cache_key,
                step.end_time,
                step.original_step_run_id,
                step.cache_invalidated,
            )
            .where(step.run_id == run_id)
            .order_by(step.attempt)
        ).all()
        latest = {row[1]: row for row in rows}  # by invocation id, the highest attempt last
        ids = [row[0] for row in latest.values()]
        outputs = _links(conn, s.step_run_output_artifact, ids, run_labels(conn, run_id, True))
    return {  # by position, repeated names interned: see `_version`
        name: RecordedAttempt(
            step_run_id,
            intern(step_name),
            attempt,
            intern(status),
            intern(code_hash),
            cache_key,
            outputs.get(step_run_id, {}),
            end_time,
            original_step_run_id,
            bool(invalidated),
        )
        for name, (
            step_run_id,
            _,
            step_name,
            attempt,
            status,
            code_hash,
            cache_key,
            end_time,
            original_step_run_id,
            invalidated,
        ) in latest.items()
    }


def _step_runs(
    conn: Connection,
    run_id: str,
    snapshot: PipelineSnapshotResponse,
    labels: dict[str, Labels],
    lost_at: float | None = None,
) -> list[StepRunResponse]:
    """The run's attempts; with `lost_at` (the run is lost, see `metadata.lost`), those
    still recorded running read as failed then."""
    rows = conn.execute(
        select(s.step_run)
        .where(s.step_run.c.run_id == run_id)
        .order_by(s.step_run.c.start_time, s.step_run.c.attempt)
    ).all()
    ids = [row.id for row in rows]
    outputs = _links(conn, s.step_run_output_artifact, ids, labels)
    inputs = _links(conn, s.step_run_input_artifact, ids, labels)
    parents: dict[str, list[str]] = defaultdict(list)
    configs: dict[str, StepConfigurationResponse] = {}
    for chunk in _chunks(ids):
        for edge in conn.execute(
            select(s.step_run_parent).where(s.step_run_parent.c.child_id.in_(chunk))
        ):
            parents[edge.child_id].append(edge.parent_id)
        for config in conn.execute(
            select(s.step_configuration).where(s.step_configuration.c.step_run_id.in_(chunk))
        ):
            configs[config.step_run_id] = _configuration(config)
    attempts = [
        step_run_response(
            row,
            inputs.get(row.id, {}),
            outputs.get(row.id, {}),
            tuple(parents.get(row.id, ())),
            configs.get(row.id) or snapshot.step_configurations.get(row.name),
        )
        for row in rows
    ]
    if lost_at is None:
        return attempts
    return [_lost_attempt(a, utc(lost_at)) if a.status == "running" else a for a in attempts]


def step_run_response(
    row: Any,
    inputs: dict[str, ArtifactVersionResponse],
    outputs: dict[str, ArtifactVersionResponse],
    parents: tuple[str, ...],
    configuration: StepConfigurationResponse | None,
) -> StepRunResponse:
    """A `step_run` row as a response, with its links read apart (all of a run's at once, or
    one page of one step run's)."""
    return StepRunResponse(
        id=row.id,
        name=row.name,
        step_name=row.step_name,
        status=ExecutionStatus(row.status),
        attempt=row.attempt,
        start_time=row.start_time,
        end_time=row.end_time,
        cache_key=row.cache_key,
        code_hash=row.code_hash,
        original_step_run_id=row.original_step_run_id,
        exception_type=row.exception_type,
        exception_message=row.exception_message,
        traceback=row.traceback,
        run_metadata=loads(row.run_metadata, {}),
        inputs=inputs,
        outputs=outputs,
        parent_step_run_ids=parents,
        configuration=configuration,
        cache_verdict=row.cache_verdict,
        cache_reason=row.cache_reason,
    )


def _lost_attempt(attempt: StepRunResponse, end: Any) -> StepRunResponse:
    """An attempt a lost loop left running, as read: failed when the loop was last seen, or
    when it started if later (as `lost.close_lost_attempts` records it)."""
    start = attempt.start_time
    return dataclasses.replace(
        attempt,
        status=ExecutionStatus.FAILED,
        end_time=start if start is not None and start > end else end,
        exception_type=LOST_TYPE,
        exception_message=ATTEMPT_LOST_MESSAGE,
    )


@retrying("reading a run")
def get_run(engine: Engine, id_or_name: str, include_steps: bool = True) -> PipelineRunResponse:
    """A run by id or name, with its snapshot, outputs and (unless not asked) step runs; a
    lost run reads as `metadata.lost` says."""
    with engine.connect() as conn:
        row = conn.execute(
            select(s.pipeline_run, s.pipeline.c.name.label("pipeline_name"))
            .join(s.pipeline, s.pipeline.c.id == s.pipeline_run.c.pipeline_id)
            .where(or_(s.pipeline_run.c.id == id_or_name, s.pipeline_run.c.name == id_or_name))
        ).one_or_none()
        if row is None:
            raise BranchworkError(f"No pipeline run with id or name {id_or_name!r}.")
        snapshot = _snapshot(conn, row.snapshot_id)
        lost = is_lost(row, time.time())
        lost_at = row.heartbeat if lost else None
        labels = run_labels(conn, row.id, include_steps)
        attempts = _step_runs(conn, row.id, snapshot, labels, lost_at) if include_steps else []
        outputs = conn.execute(
            select(*_VERSION_COLUMNS)
            .select_from(s.pipeline_run_output)
            .join(
                s.artifact_version,
                s.artifact_version.c.id == s.pipeline_run_output.c.artifact_version_id,
            )
            .join(s.artifact, s.artifact.c.id == s.artifact_version.c.artifact_id)
            .where(s.pipeline_run_output.c.run_id == row.id)
            .order_by(s.pipeline_run_output.c.position)
        ).all()
    outputs_read = tuple(_version(o, labels) for o in outputs)
    return run_response(row, snapshot, lost, attempts, outputs_read)


def run_response(
    row: Any,
    snapshot: PipelineSnapshotResponse,
    lost: bool,
    attempts: list[StepRunResponse],
    outputs: tuple[ArtifactVersionResponse, ...],
) -> PipelineRunResponse:
    """A `pipeline_run` row (with its `pipeline_name`) as a response; a lost run (see
    `metadata.lost`) reads as failed at its last heartbeat. Its steps are the latest attempt
    of each invocation among `attempts` (none: a run read without its step runs)."""
    latest: dict[str, StepRunResponse] = {}
    for attempt in attempts:
        current = latest.get(attempt.name)
        if current is None or attempt.attempt >= current.attempt:
            latest[attempt.name] = attempt
    return PipelineRunResponse(
        id=row.id,
        name=row.name,
        pipeline_name=row.pipeline_name,
        status=ExecutionStatus("failed" if lost else row.status),
        orchestrator=row.orchestrator,
        orchestrator_run_id=row.orchestrator_run_id,
        parameters=loads(row.parameters, {}),
        created=row.created,
        start_time=row.start_time,
        end_time=utc(row.heartbeat) if lost else row.end_time,
        failed_step=row.failed_step,
        exception_type=LOST_TYPE if lost else row.exception_type,
        exception_message=(
            run_lost_message(row.heartbeat_seconds) if lost else row.exception_message
        ),
        traceback=row.traceback,
        snapshot=snapshot,
        steps=latest,
        attempts=tuple(attempts),
        outputs=outputs,
        output_structure=loads(row.output_structure),
        exception_data=None if lost else row.exception_data,
        hook_errors=tuple(loads(row.hook_errors, ())),
        replay_of=row.replay_of,
        stack=row.stack,
        earlier_sessions_seconds=row.earlier_sessions_seconds,
        parent_run_id=row.parent_run_id,
        parent_invocation_id=row.parent_invocation_id,
        heartbeat_seconds=row.heartbeat_seconds,
    )


def list_run_ids(
    engine: Engine, pipeline_name: str | None = None, limit: int | None = None
) -> list[str]:
    """Run ids, newest first, optionally of one pipeline."""
    query = (
        select(s.pipeline_run.c.id)
        .join(s.pipeline, s.pipeline.c.id == s.pipeline_run.c.pipeline_id)
        .order_by(s.pipeline_run.c.created.desc())
        .limit(limit)
    )
    if pipeline_name is not None:
        query = query.where(s.pipeline.c.name == pipeline_name)
    with engine.connect() as conn:
        return list(conn.execute(query).scalars())


def run_progress(engine: Engine, run_id: str) -> tuple[str, str, set[str], dict[str, str]] | None:
    """A run's name, status, the invocations its snapshot planned, and the status of the
    latest attempt of each invocation recorded so far (cheap enough to poll for a display)."""
    with engine.connect() as conn:
        run = conn.execute(
            select(
                s.pipeline_run.c.name,
                lost_status(time.time()).label("status"),
                s.pipeline_run.c.snapshot_id,
            ).where(s.pipeline_run.c.id == run_id)
        ).one_or_none()
        if run is None:
            return None
        planned = set(
            conn.execute(
                select(s.step_configuration.c.name).where(
                    s.step_configuration.c.snapshot_id == run.snapshot_id
                )
            ).scalars()
        )
        rows = conn.execute(
            select(s.step_run.c.name, s.step_run.c.attempt, s.step_run.c.status).where(
                s.step_run.c.run_id == run_id
            )
        ).all()
    latest: dict[str, tuple[int, str]] = {}
    for name, attempt, status in rows:
        if name not in latest or attempt >= latest[name][0]:
            latest[name] = (attempt, status)
    finished = run.status not in ("initializing", "running")  # a lost run's attempts too
    statuses = {
        name: "failed" if finished and status == "running" else status
        for name, (_, status) in latest.items()
    }
    return run.name, run.status, planned, statuses


@retrying("counting running steps")
def step_run_count(engine: Engine, run_id: str, status: str | None = None) -> int:
    """How many attempts of a run are recorded (only those recorded as `status`, if given)."""
    query = select(func.count()).select_from(s.step_run).where(s.step_run.c.run_id == run_id)
    if status is not None:
        query = query.where(s.step_run.c.status == status)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)


def child_run_ids(engine: Engine, run_id: str) -> list[str]:
    """The child runs of run `run_id` (pipelines its body called), oldest first."""
    run = s.pipeline_run
    with engine.connect() as conn:
        rows = conn.execute(
            select(run.c.id).where(run.c.parent_run_id == run_id).order_by(run.c.created)
        ).all()
    return [row.id for row in rows]


def child_run_of(engine: Engine, run_id: str, invocation_id: str) -> str | None:
    """The name of the latest child run that invocation `invocation_id` of run `run_id`
    started (a pipeline its body called), if it started one."""
    run = s.pipeline_run.c
    with engine.connect() as conn:
        return conn.execute(
            select(run.name)
            .where(run.parent_run_id == run_id, run.parent_invocation_id == invocation_id)
            .order_by(run.created.desc())
            .limit(1)
        ).scalar()


def latest_step_run(engine: Engine, run_id: str, invocation_id: str) -> tuple[str, str] | None:
    """The id and step name of the latest step run of invocation `invocation_id` in run
    `run_id`, if it has one."""
    step_run = s.step_run
    with engine.connect() as conn:
        row = conn.execute(
            select(step_run.c.id, step_run.c.step_name)
            .where(step_run.c.run_id == run_id, step_run.c.name == invocation_id)
            .order_by(step_run.c.attempt.desc())
            .limit(1)
        ).first()
    return None if row is None else (row.id, row.step_name)


def latest_child_run(engine: Engine, run_id: str, invocation_id: str) -> PipelineRunResponse | None:
    """The newest child run that invocation `invocation_id` of run `run_id` started."""
    run = s.pipeline_run
    with engine.connect() as conn:
        found = conn.execute(
            select(run.c.id)
            .where(run.c.parent_run_id == run_id, run.c.parent_invocation_id == invocation_id)
            .order_by(run.c.created.desc())
            .limit(1)
        ).scalar()
    return None if found is None else get_run(engine, found, include_steps=False)


def nesting_depth(engine: Engine, run_id: str, limit: int) -> int:
    """How many runs up run `run_id`'s chain of parents goes (0: a top-level run), counted
    up to `limit`."""
    run, depth = s.pipeline_run, 0
    with engine.connect() as conn:
        parent = conn.execute(select(run.c.parent_run_id).where(run.c.id == run_id)).scalar()
        while parent is not None and depth < limit:
            depth += 1
            parent = conn.execute(select(run.c.parent_run_id).where(run.c.id == parent)).scalar()
    return depth
