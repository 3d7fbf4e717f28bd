"""Writing what exists before a run starts: pipeline, snapshot (with static step
configurations) and the placeholder run, in one transaction."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from branchwork.config.heartbeat import heartbeat_interval
from branchwork.exceptions import OrchestratorError
from branchwork.ids import new_id
from branchwork.metadata import error_records, schema
from branchwork.metadata.lost import LIVE, close_lost_attempts, reap_lost_runs
from branchwork.metadata.recorder import utc
from branchwork.metadata.retries import retrying
from branchwork.metadata.store import write_transaction
from branchwork.metadata.upsert import insert_ignore

if TYPE_CHECKING:
    from branchwork.models.responses import PipelineRunResponse


def pipeline_id(name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"branchwork:pipeline:{name}").hex


def run_name(pipeline_name: str, now: float) -> str:
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.gmtime(now))
    return f"{pipeline_name}-{stamp}_{int(now * 1e6) % 1_000_000:06d}-{uuid.uuid4().hex[:4]}"


@retrying("creating the run")
def create_placeholder_run(
    engine: Engine,
    *,
    pipeline_name: str,
    is_dynamic: bool,
    source: str,
    source_file: str | None,
    import_path: list[str],
    working_dir: str,
    parameters: dict[str, Any],
    spec: dict[str, Any],
    step_configurations: list[dict[str, Any]],
    orchestrator: str,
    stack: str,
    replay_of: str | None = None,
    parent: tuple[str, str] | None = None,
    argv: Sequence[str] = (),
) -> tuple[str, str]:
    """Create snapshot + INITIALIZING run, started by stack `stack` on an orchestrator of
    flavor `orchestrator` (a replay of run `replay_of`, if given; a child of (run id,
    invocation id) `parent`, if given; `argv`, the arguments of the script that started it);
    returns (snapshot_id, run_id)."""
    now = time.time()
    created = utc(now)
    snapshot_id, run_id = new_id(), new_id()
    params_json = json.dumps(parameters)
    with write_transaction(engine) as conn:
        reap_lost_runs(conn)  # the next run records what readers already show
        conn.execute(
            insert_ignore(engine, schema.pipeline),
            {"id": pipeline_id(pipeline_name), "name": pipeline_name, "created": created},
        )
        conn.execute(
            schema.pipeline_snapshot.insert(),
            {
                "id": snapshot_id,
                "pipeline_id": pipeline_id(pipeline_name),
                "is_dynamic": is_dynamic,
                "source": source,
                "source_file": source_file,
                "import_path": json.dumps(import_path),
                "working_dir": working_dir,
                "argv": json.dumps(list(argv)),
                "parameters": params_json,
                "spec": json.dumps(spec),
                "created": created,
            },
        )
        if step_configurations:
            conn.execute(
                schema.step_configuration.insert(),
                [
                    {"id": new_id(), "snapshot_id": snapshot_id, "step_run_id": None, **config}
                    for config in step_configurations
                ],
            )
        conn.execute(
            schema.pipeline_run.insert(),
            {
                "id": run_id,
                "name": run_name(pipeline_name, now),
                "pipeline_id": pipeline_id(pipeline_name),
                "snapshot_id": snapshot_id,
                "status": "initializing",
                "heartbeat": now,  # its process's until a loop takes it over (`lost`)
                "heartbeat_seconds": heartbeat_interval(),
                "orchestrator": orchestrator,
                "stack": stack,
                "parameters": params_json,
                "created": created,
                "replay_of": replay_of,
                "parent_run_id": parent[0] if parent else None,
                "parent_invocation_id": parent[1] if parent else None,
            },
        )
    return snapshot_id, run_id


@retrying("starting the run")
def start_run(engine: Engine, run_id: str, orchestrator_run_id: str, now: float) -> str | None:
    """Record INITIALIZING run `run_id` RUNNING, its loop taking it over; None if so, else
    the status it has instead ("deleted" if it is gone): a run stopped (Ctrl-C where it was
    submitted) before its orchestration process got to it, or one another process has
    started, is not started again."""
    run = schema.pipeline_run.c
    with write_transaction(engine) as conn:
        result = conn.execute(
            schema.pipeline_run.update()
            .where(run.id == run_id, run.status == "initializing")
            .values(
                status="running",
                start_time=utc(now),
                heartbeat=now,
                heartbeat_seconds=heartbeat_interval(),
                orchestrator_run_id=orchestrator_run_id,
                hook_errors=None,  # those of an earlier session
            )
        )
        if result.rowcount:
            return None
        row = conn.execute(select(run.status, run.heartbeat).where(run.id == run_id)).one_or_none()
    if row is None:
        return "deleted"
    if row.status == "running" and row.heartbeat == now:
        return None  # a retried try whose first one committed
    status: str = row.status
    return status


@retrying("heartbeating the run")
def heartbeat_initializing(engine: Engine, run_id: str) -> bool:
    """Say that the process which submitted INITIALIZING run `run_id` is alive; False once
    the run is not initializing any more (a loop took it over, or it ended)."""
    run = schema.pipeline_run.c
    with write_transaction(engine) as conn:
        result = conn.execute(
            schema.pipeline_run.update()
            .where(run.id == run_id, run.status == "initializing")
            .values(heartbeat=time.time())
        )
    return bool(result.rowcount)


@retrying("recording a failed run")
def mark_run_failed(engine: Engine, run_id: str, error: BaseException) -> None:
    """Record as FAILED a run whose loop never finished it: its pipeline would not load, or
    its orchestration process died (then `error` was never raised: no traceback is
    recorded, which `runs show` would give as the pipeline body's). Its attempts still
    recorded running are closed as lost: they stayed running for good under a failed run.
    A run that did finish is left as it is."""
    columns: dict[str, str | None] = {**error_records.columns(error)}
    if error.__traceback__ is None:
        columns["traceback"] = None
    now = time.time()
    with write_transaction(engine) as conn:
        failed = conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.id == run_id)
            .where(schema.pipeline_run.c.status.in_(("initializing", "running")))
            .values(status="failed", end_time=utc(now), **columns)
        )
        if failed.rowcount:
            close_lost_attempts(conn, run_id, now)


@retrying("reopening the run for a resume")
def reopen_run(engine: Engine, run_id: str, stack: str, orchestrator: str) -> bool:
    """Put a FAILED, STOPPED, PAUSED or lost run back to INITIALIZING for a resume on stack
    `stack` (an orchestrator of flavor `orchestrator`: `runs resume --stack` may name
    another than the one it ran on), closing its attempts that a lost loop left running and
    counting the session that ended among its earlier ones; False if it is none of those."""
    with write_transaction(engine) as conn:
        reap_lost_runs(conn, run_id)
        earlier = _sessions_so_far(conn, run_id)
        result = conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.id == run_id)
            .where(schema.pipeline_run.c.status.in_(("failed", "stopped", "paused")))
            .values(
                status="initializing",
                stack=stack,
                orchestrator=orchestrator,
                heartbeat=time.time(),
                heartbeat_seconds=heartbeat_interval(),
                end_time=None,
                failed_step=None,
                exception_type=None,
                exception_message=None,
                traceback=None,
                exception_data=None,
                output_structure=None,
                stop_requested=None,
                earlier_sessions_seconds=earlier,
            )
        )
        if not result.rowcount:
            return False
        close_lost_attempts(conn, run_id, time.time())  # a process killed under them
    return True


def _sessions_so_far(conn: Connection, run_id: str) -> float | None:
    """Seconds the run was running in its sessions so far: the earlier ones' and the one
    that ended last (from its start and end), the time between them left out. Stored at
    one place, the resume, so every way a session ends (completed, failed, stopped,
    paused, lost) is counted alike."""
    run = schema.pipeline_run.c
    row = conn.execute(
        select(run.start_time, run.end_time, run.earlier_sessions_seconds)
        .where(run.id == run_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        return None
    earlier: float | None = row.earlier_sessions_seconds
    if row.start_time is None or row.end_time is None:  # that session never began
        return earlier
    last: float = (row.end_time - row.start_time).total_seconds()
    return (earlier or 0.0) + last


def stop_run(engine: Engine, run: PipelineRunResponse, abandon: bool = False) -> None:
    """Ask an unfinished run (as read: a lost one reads failed) to stop, as Ctrl-C where it
    was started would: its loop starts nothing new, and running steps finish or, with
    `abandon`, are given up. The request is in the store: the loop reads it wherever it runs."""
    if run.status not in LIVE:
        raise OrchestratorError(
            f"Run '{run.name}' is {run.status}: only a running run can be stopped."
        )
    request_stop(engine, run.id, "abandon" if abandon else "graceful")


@retrying("asking a run to stop")
def request_stop(engine: Engine, run_id: str, level: str, *, children: bool = False) -> None:
    """Ask the loop of an unfinished run to stop ("graceful": launch nothing new; "abandon":
    give up running steps too); with `children`, the loop of each unfinished child run of
    run `run_id` instead (`pipelines.nesting`). A loop reads it from the store, wherever it
    runs."""
    run = schema.pipeline_run
    with write_transaction(engine) as conn:
        conn.execute(
            run.update()
            .where((run.c.parent_run_id if children else run.c.id) == run_id)
            .where(run.c.status.in_(("initializing", "running")))
            .values(stop_requested=level)
        )


@retrying("looking for a stop request")
def stop_request(engine: Engine, run_id: str) -> str | None:
    """The stop asked for an unfinished run; "abandon" for a run someone else finished."""
    with engine.connect() as conn:
        row = conn.execute(
            select(schema.pipeline_run.c.status, schema.pipeline_run.c.stop_requested).where(
                schema.pipeline_run.c.id == run_id
            )
        ).one_or_none()
    if row is None or row.status not in ("initializing", "running"):
        return "abandon"
    requested: str | None = row.stop_requested
    return requested


@retrying("recording a stopped run")
def mark_run_stopped(engine: Engine, run_id: str, reason: str) -> bool:
    """Record STOPPED a run whose loop did not finish it in time, with its attempts still
    marked running; False if the run had finished meanwhile."""
    now = utc(time.time())
    unfinished = schema.pipeline_run.c.status.in_(("initializing", "running"))
    with write_transaction(engine) as conn:
        result = conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.id == run_id)
            .where(unfinished)
            .values(
                status="stopped",
                end_time=now,
                exception_type="KeyboardInterrupt",
                exception_message=reason,
            )
        )
        if not result.rowcount:
            return False
        conn.execute(
            schema.step_run.update()
            .where(schema.step_run.c.run_id == run_id)
            .where(schema.step_run.c.status == "running")
            .values(status="stopped", end_time=now, exception_message=reason)
        )
    return True
