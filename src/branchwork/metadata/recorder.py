"""The recorder: the only writer of a run's metadata, batched into one transaction per flush.

The orchestration loop calls it as things happen and flushes once per batch of events,
before it resolves any future: whatever the pipeline body has seen is already durable, and
many steps share one commit. A step that starts and finishes between two flushes is
inserted once, finished, instead of inserted and then updated.

Artifact versions are numbered 1, 2, 3 ... per artifact inside the flush's transaction: one
upsert per artifact (not per version) adds the flush's count of new versions to
`artifact.version_count` and returns the new total, and the flush's versions take the numbers
below it. On PostgreSQL the upsert's row lock makes concurrent runs take turns; on SQLite the
write transaction (BEGIN IMMEDIATE) does. Artifacts are locked in id order, so two runs never
wait on each other in a circle. The count never goes down, so a deleted version's number is
not given again.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, select, true

from branchwork.ids import new_id
from branchwork.metadata import error_records, schema
from branchwork.metadata.bulk import BulkStatement
from branchwork.metadata.retries import retrying
from branchwork.metadata.store import write_transaction
from branchwork.metadata.upsert import dialect_insert, insert_ignore

_FINISH_FIELDS = (
    "status",
    "end_time",
    "exception_type",
    "exception_message",
    "traceback",
    "run_metadata",
)
# Bound names must differ from column names in an executemany UPDATE. An attempt's start
# is the launch until its result says when it began (a Ray task may wait in Ray's queue).
_STEP_UPDATE = (
    schema.step_run.update()
    .where(schema.step_run.c.id == bindparam("u_id"))
    .values(
        {name: bindparam(f"u_{name}") for name in _FINISH_FIELDS}
        | {
            "start_time": func.coalesce(
                bindparam("u_start_time", type_=schema.step_run.c.start_time.type),
                schema.step_run.c.start_time,
            )
        }
    )
)


# A step run whose result must not serve its key (`Recorder.uncached`).
_UNCACHE = (
    schema.step_run.update()
    .where(schema.step_run.c.id == bindparam("u_id"))
    .values(cache_invalidated=true(), cache_reason=bindparam("u_cache_reason"))
)

_EPOCH = datetime(1970, 1, 1)


def utc(timestamp: float) -> datetime:
    """A naive UTC datetime, the form every timestamp takes in the store (computed from
    the epoch: a few times cheaper than `fromtimestamp`, on a path taken per step)."""
    return _EPOCH + timedelta(seconds=timestamp)


@functools.lru_cache(maxsize=4096)
def artifact_id(name: str) -> str:
    """Artifacts are identified by name; a name-derived id lets writers converge."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"branchwork:artifact:{name}").hex


_INPUT_COLUMNS = ("step_run_id", "name", "artifact_version_id")
_PARENT_COLUMNS = ("child_id", "parent_id")


@functools.lru_cache(maxsize=8)
def _statements(engine: Engine) -> tuple[BulkStatement, ...]:
    """The recorder's statements, in foreign-key order, compiled once per engine. Inserts
    ignore rows already there, so a flush whose commit went through unacknowledged (the
    connection dropped) can be repeated."""

    def insert(table: Table, columns: tuple[str, ...] | None = None) -> BulkStatement:
        return BulkStatement(engine, insert_ignore(engine, table), columns)

    return (
        insert(schema.code_fingerprint),
        insert(schema.step_run),
        insert(schema.step_configuration),
        insert(schema.artifact_version),
        insert(schema.artifact_version_tag),
        insert(schema.artifact_version_metadata),
        insert(schema.step_run_output_artifact),
        insert(schema.step_run_input_artifact, _INPUT_COLUMNS),
        insert(schema.step_run_parent, _PARENT_COLUMNS),
        insert(schema.step_edge),
        BulkStatement(engine, _STEP_UPDATE),
        BulkStatement(engine, _UNCACHE),
        insert(schema.pipeline_run_output),
        insert(schema.step_log),
    )


@functools.lru_cache(maxsize=8)
def _count_versions(engine: Engine) -> BulkStatement:
    """Create an artifact's row or add `version_count` to its count; returns the new count."""
    table = schema.artifact
    insert = dialect_insert(engine, table)
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={"version_count": table.c.version_count + insert.excluded.version_count},
    ).returning(table.c.version_count)
    return BulkStatement(engine, statement)


class Recorder:
    """Collects a run's rows and writes them in one transaction per `flush()`."""

    def __init__(self, engine: Engine, run_id: str) -> None:
        self.engine = engine
        self.run_id = run_id
        self._artifact_names: dict[str, str] = {}  # by id
        self._known_fingerprints: set[str] = set()
        self._fingerprints: list[dict[str, Any]] = []
        self._step_runs: dict[str, dict[str, Any]] = {}
        self._configs: list[dict[str, Any]] = []
        self._versions: list[dict[str, Any]] = []
        self._tags: list[dict[str, Any]] = []
        self._artifact_metadata: list[dict[str, Any]] = []
        self._unacknowledged = False  # a flush's transaction began and was not seen to commit
        self._outputs: list[dict[str, Any]] = []
        self._inputs: list[tuple[str, str, str]] = []  # in _INPUT_COLUMNS order
        self._parents: list[tuple[str, str]] = []  # in _PARENT_COLUMNS order
        self._known_edges: set[tuple[str, str, str]] = set()
        self._edges: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self._uncached: list[dict[str, Any]] = []
        self._run_update: dict[str, Any] = {}
        self._run_outputs: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self.step_runs_recorded = 0  # by this recorder: whether the run is big (`run_figures`)

    def step_run(
        self,
        step_run_id: str,
        invocation_id: str,
        step_name: str,
        attempt: int,
        status: str,
        start: float,
        code_hash: str,
        cache_key: str | None,
        config: str | None,
        inputs: list[tuple[str, str]],
        parents: list[str],
        original_step_run_id: str | None = None,
        cache: tuple[str | None, str | None, str | None] = (None, None, None),
    ) -> None:
        """A step run begins (or, for a cache hit, happens). `config` set for dynamic runs;
        `cache` is its key parts (JSON), cache verdict and reason."""
        self.step_runs_recorded += 1
        self._step_runs[step_run_id] = {
            "id": step_run_id,
            "run_id": self.run_id,
            "name": invocation_id,
            "step_name": step_name,
            "attempt": attempt,
            "status": status,
            "start_time": utc(start),
            "end_time": utc(start) if original_step_run_id else None,
            "cache_key": cache_key,
            "code_hash": code_hash,
            "original_step_run_id": original_step_run_id,
            "exception_type": None,
            "exception_message": None,
            "traceback": None,
            "run_metadata": None,
            "cache_parts": cache[0],
            "cache_verdict": cache[1],
            "cache_reason": cache[2],
            "cache_invalidated": False,
        }
        if config is not None:
            self._configs.append(
                {
                    "id": new_id(),
                    "name": invocation_id,
                    "step_name": step_name,
                    "config": config,
                    "snapshot_id": None,
                    "step_run_id": step_run_id,
                }
            )
        self._inputs.extend((step_run_id, name, version_id) for name, version_id in inputs)
        self._parents.extend((step_run_id, parent) for parent in parents)

    def step_finished(
        self,
        step_run_id: str,
        status: str,
        end: float,
        error: BaseException | None = None,
        traceback: str | None = None,
        metadata: str | None = None,
        start: float | None = None,
    ) -> None:
        """An attempt ended; `start`, when its result says, is when it began (it was
        recorded as of its launch)."""
        values = {
            "status": status,
            "end_time": utc(end),
            "exception_type": error_records.type_name_of(error) if error else None,
            "exception_message": error_records.message_of(error) if error else None,
            "traceback": None if traceback is None else error_records.storable(traceback),
            "run_metadata": metadata,
        }
        started = utc(start) if start is not None else None
        pending = self._step_runs.get(step_run_id)
        if pending is not None:
            pending.update(values)
            if started is not None:
                pending["start_time"] = started
        else:
            self._updates.append(
                {
                    "u_id": step_run_id,
                    "u_start_time": started,
                    **{f"u_{k}": v for k, v in values.items()},
                }
            )

    def uncached(self, step_run_id: str, reason: str) -> None:
        """A step run whose result must not serve its cache key (the key does not describe
        it), with why: recorded as invalidated, which a lookup and a resume treat as a
        result to compute again (`branchwork cache invalidate`)."""
        pending = self._step_runs.get(step_run_id)
        if pending is not None:
            pending.update(cache_invalidated=True, cache_reason=reason)
        else:
            self._uncached.append({"u_id": step_run_id, "u_cache_reason": reason})

    def fingerprint(self, digest: str, parts: Mapping[str, str]) -> None:
        """What a code digest is made of, once per digest."""
        if digest not in self._known_fingerprints:
            self._known_fingerprints.add(digest)
            self._fingerprints.append({"digest": digest, "parts": json.dumps(parts)})

    def edge(self, from_name: str, to_name: str, kind: str) -> None:
        """An edge between two step names of the run ("data" | "value"), for its graph:
        written with the first step run that makes it (an edge an earlier session of a
        resumed run wrote is ignored), each later one costs a set lookup."""
        edge = (from_name, to_name, kind)
        if edge not in self._known_edges:
            self._known_edges.add(edge)
            self._edges.append(
                {"run_id": self.run_id, "from_name": from_name, "to_name": to_name, "kind": kind}
            )

    def step_log(self, step_run_id: str, text: str) -> None:
        """What one step run printed and logged."""
        self._logs.append(
            {
                "step_run_id": step_run_id,
                "text": error_records.storable(text),
                "run_id": self.run_id,
            }
        )

    def output(self, step_run_id: str, name: str, version_id: str) -> None:
        """Link an existing artifact version as an output (cache hits)."""
        self._outputs.append(
            {"step_run_id": step_run_id, "name": name, "artifact_version_id": version_id}
        )

    def new_version(
        self,
        step_run_id: str,
        name: str,
        artifact_name: str,
        uri: str,
        data_type: str,
        materializer: str,
        content_hash: str,
        created: float,
        *,
        preview: str | None = None,
        item_count: int | None = None,
        inline: bytes | None = None,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a freshly stored output, with its preview (JSON), tags and logged metadata;
        returns its artifact version id. Its number is given when it is flushed."""
        artifact = artifact_id(artifact_name)
        self._artifact_names[artifact] = artifact_name
        version_id = new_id()
        self._versions.append(
            {
                "id": version_id,
                "artifact_id": artifact,
                "uri": uri,
                "data_type": data_type,
                "materializer": materializer,
                "content_hash": content_hash,
                "producer_step_run_id": step_run_id,
                "created": utc(created),
                "version": None,
                "preview": preview,
                "item_count": item_count,
                "inline_data": inline,
            }
        )
        self._tags.extend({"artifact_version_id": version_id, "tag": tag} for tag in tags)
        self._artifact_metadata.extend(
            {"artifact_version_id": version_id, "key": key, "value": metadata_value(value)}
            for key, value in (metadata or {}).items()
        )
        self.output(step_run_id, name, version_id)
        return version_id

    def run_update(self, **values: Any) -> None:
        for column in ("exception_message", "traceback"):
            if values.get(column) is not None:
                values[column] = error_records.storable(values[column])
        self._run_update.update(values)

    def run_output(self, position: int, version_id: str) -> None:
        self._run_outputs.append(
            {"run_id": self.run_id, "position": position, "artifact_version_id": version_id}
        )

    @retrying("recording the run")
    def flush(self) -> None:
        """Write everything collected so far in one transaction."""
        batches: tuple[tuple[BulkStatement, list[Any]], ...] = tuple(
            zip(
                _statements(self.engine),
                (
                    self._fingerprints,
                    list(self._step_runs.values()),
                    self._configs,
                    self._versions,
                    self._tags,
                    self._artifact_metadata,
                    self._outputs,
                    self._inputs,
                    self._parents,
                    self._edges,
                    self._updates,
                    self._uncached,
                    self._run_outputs,
                    self._logs,
                ),
            )
        )
        if not self._run_update and not any(rows for _, rows in batches):
            return
        retried = self._unacknowledged
        self._unacknowledged = True
        with write_transaction(self.engine) as conn:
            self._number_versions(conn, retried)
            for statement, rows in batches:
                if rows:
                    statement.execute(conn, rows)
            if self._run_update:
                conn.execute(
                    schema.pipeline_run.update()
                    .where(schema.pipeline_run.c.id == self.run_id)
                    .values(**self._run_update)
                )
        self._unacknowledged = False
        for _, rows in batches:
            rows.clear()
        self._step_runs.clear()
        self._run_update.clear()
        self._artifact_names.clear()

    def _number_versions(self, conn: Connection, retried: bool) -> None:
        """Give the versions of this flush their numbers (see the module docstring). When
        an earlier try of this flush committed without the acknowledgement reaching us, its
        rows are in the store with their numbers, and counting them again would skip some."""
        if not self._versions or (retried and self._committed_before(conn)):
            return
        counts = Counter(row["artifact_id"] for row in self._versions)
        first_created = {}
        for row in reversed(self._versions):
            first_created[row["artifact_id"]] = row["created"]
        next_number: dict[str, int] = {}
        statement = _count_versions(self.engine)
        for artifact in sorted(counts):
            row = {
                "id": artifact,
                "name": self._artifact_names[artifact],
                "created": first_created[artifact],
                "version_count": counts[artifact],
            }
            total = statement.execute_one(conn, row).scalar_one()
            next_number[artifact] = total - counts[artifact] + 1
        for row in self._versions:
            row["version"] = next_number[row["artifact_id"]]
            next_number[row["artifact_id"]] += 1

    def _committed_before(self, conn: Connection) -> bool:
        version = schema.artifact_version.c.id
        first = self._versions[0]["id"]
        return conn.execute(select(version).where(version == first)).first() is not None


def metadata_value(value: Any) -> str:
    """A metadata value as stored and searched: JSON with sorted keys, so equal values are
    equal text."""
    return json.dumps(value, sort_keys=True, default=repr)
