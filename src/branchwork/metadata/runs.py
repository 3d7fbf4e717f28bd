"""Writing what exists before a run starts: pipeline, snapshot (with static step
configurations) and the placeholder run, in one transaction."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import Engine

from branchwork.ids import new_id
from branchwork.metadata import schema
from branchwork.metadata.recorder import utc
from branchwork.metadata.store import write_transaction
from branchwork.metadata.upsert import insert_ignore


def pipeline_id(name: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"branchwork:pipeline:{name}").hex


def run_name(pipeline_name: str, now: float) -> str:
    stamp = time.strftime("%Y_%m_%d-%H_%M_%S", time.gmtime(now))
    return f"{pipeline_name}-{stamp}_{int(now * 1e6) % 1_000_000:06d}-{uuid.uuid4().hex[:4]}"


def create_placeholder_run(
    engine: Engine,
    *,
    pipeline_name: str,
    is_dynamic: bool,
    source: str,
    source_file: str | None,
    parameters: dict[str, Any],
    spec: dict[str, Any],
    step_configurations: list[dict[str, Any]],
    orchestrator: str,
) -> tuple[str, str]:
    """Create snapshot + INITIALIZING run; returns (snapshot_id, run_id)."""
    now = time.time()
    created = utc(now)
    snapshot_id, run_id = new_id(), new_id()
    params_json = json.dumps(parameters)
    with write_transaction(engine) as conn:
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
                "orchestrator": orchestrator,
                "parameters": params_json,
                "created": created,
            },
        )
    return snapshot_id, run_id


def mark_run_failed(engine: Engine, run_id: str, error: BaseException) -> None:
    """Record as FAILED a run whose loop never finished it: its pipeline would not load, or
    its orchestration process died. A run that did finish is left as it is."""
    import traceback

    with write_transaction(engine) as conn:
        conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.id == run_id)
            .where(schema.pipeline_run.c.status.in_(("initializing", "running")))
            .values(
                status="failed",
                end_time=utc(time.time()),
                exception_type=type(error).__name__,
                exception_message=str(error),
                traceback="".join(traceback.format_exception(error)),
            )
        )


def reap_stale_runs(engine: Engine, stale_after: float) -> int:
    """Mark FAILED the running runs whose loop stopped heartbeating `stale_after` seconds
    ago (its process was killed); returns how many. `resume` picks them up from there."""
    now = time.time()
    with write_transaction(engine) as conn:
        result = conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.status == "running")
            .where(schema.pipeline_run.c.heartbeat < now - stale_after)
            .values(
                status="failed",
                end_time=utc(now),
                exception_type="OrchestrationLost",
                exception_message=(
                    f"The orchestration loop stopped heartbeating for over {stale_after:g}s: "
                    "its process died. Resume the run to finish it."
                ),
            )
        )
    return int(result.rowcount or 0)


def reopen_run(engine: Engine, run_id: str) -> bool:
    """Put a FAILED or STOPPED run back to INITIALIZING for a resume; False if it is not."""
    with write_transaction(engine) as conn:
        result = conn.execute(
            schema.pipeline_run.update()
            .where(schema.pipeline_run.c.id == run_id)
            .where(schema.pipeline_run.c.status.in_(("failed", "stopped")))
            .values(
                status="initializing",
                end_time=None,
                failed_step=None,
                exception_type=None,
                exception_message=None,
                traceback=None,
                output_structure=None,
            )
        )
    return bool(result.rowcount)
