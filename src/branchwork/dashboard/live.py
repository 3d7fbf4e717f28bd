"""Live progress of a run as server-sent events: `GET /api/runs/{run}/events`.

The store is the one channel every orchestrator writes to, so the server polls it (every
`POLL_SECONDS`, one aggregate query per poll, in a worker thread) and sends a `progress`
event whenever what the run page shows has changed: the run's status, its counts by state
and its counts per step name (which grow as a dynamic pipeline discovers steps). Once the
run has finished it sends that last `progress` and an `end` event, and the stream closes. A
comment line every `KEEP_ALIVE_SECONDS` keeps proxies from closing a quiet stream.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from branchwork.dashboard.answers import counts_of, elapsed, group_dict, shown_groups
from branchwork.dashboard.api import EngineArg, run_or_404
from branchwork.metadata.run_groups import step_groups
from branchwork.metadata.run_pages import run_records
from branchwork.models.responses import ExecutionStatus
from branchwork.models.shapes import iso

router = APIRouter(prefix="/api")

POLL_SECONDS = 0.5
KEEP_ALIVE_SECONDS = 15.0
RECONNECT_MS = 2000  # how soon a browser reconnects a dropped stream


@router.get("/runs/{run}/events", response_class=StreamingResponse)
async def run_events(engine: EngineArg, run: str, request: Request) -> StreamingResponse:
    """Server-sent events: `progress` whenever the run changed, `end` once it finished."""
    record = await run_in_threadpool(run_or_404, engine, run)
    return StreamingResponse(
        _events(engine, record.id, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(engine: Engine, run_id: str, request: Request) -> AsyncIterator[str]:
    yield f"retry: {RECONNECT_MS}\n\n"
    last: dict[str, Any] | None = None
    quiet_since = time.monotonic()
    while not await request.is_disconnected():
        progress = await run_in_threadpool(run_progress, engine, run_id)
        if progress is None:
            yield _event("end", {"status": None, "deleted": True})
            return
        if progress != last:
            yield _event("progress", progress)
            last, quiet_since = progress, time.monotonic()
        if ExecutionStatus(progress["status"]).is_finished:
            yield _event("end", {"status": progress["status"]})
            return
        if time.monotonic() - quiet_since > KEEP_ALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(POLL_SECONDS)


def run_progress(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """What the run page updates live, or None if the run was deleted."""
    with engine.connect() as conn:
        found = run_records(conn, [run_id])
    if not found:
        return None
    run = found[0]
    every_group = step_groups(engine, run)
    groups, more = shown_groups(every_group)
    return {
        "status": str(run.status),
        "counts": counts_of(every_group),
        "steps": [group_dict(group) for group in groups],
        "start_time": iso(run.start_time),
        "end_time": iso(run.end_time),
        # Left to the page while the run goes (a figure that grows would be a change at
        # every poll): it adds the current session's time so far to the earlier ones'.
        "duration_s": None if run.status == ExecutionStatus.RUNNING else elapsed(run),
        "earlier_sessions_s": run.earlier_sessions_seconds,
        "failed_step": run.failed_step,
        "exception_type": run.exception_type,
        "exception_message": run.exception_message,
        **more,
    }


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
