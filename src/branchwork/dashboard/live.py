"""Following a run as it goes: a token that changes whenever what the dashboard shows of a run
may have changed, read in a few small queries whatever the run's size.

Pages ask `GET /api/runs/{run}/changes?since=TOKEN` every second or so while they are visible,
and read what they show again only when the token changed. Each answer comes at once: a
browser opens at most six connections to a host, so pages that each held a stream open
locked every other page of the dashboard out.

The token is a digest of the run's row as read (a lost run reads failed), its step runs
counted by stored status (`metadata.run_changes`) and, for a paused run, the question it
still needs answered (which an answer given elsewhere, or its timeout, settles). A run is
`live` while it can change without this dashboard: it goes, or it is paused (an answer or a
resume may come from the CLI).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import Engine

from branchwork.dashboard.questions import open_question
from branchwork.metadata.run_changes import step_run_tally
from branchwork.models.responses import ExecutionStatus, PipelineRunResponse
from branchwork.models.shapes import iso


def run_changes(engine: Engine, run: PipelineRunResponse) -> dict[str, Any]:
    """`{"token", "live"}` for the run as read now. Read it before what it marks, so that a
    change in between shows as a change at the next poll rather than never."""
    question = open_question(engine, run)
    marks = [
        str(run.status),
        iso(run.start_time),
        iso(run.end_time),
        run.earlier_sessions_seconds,
        run.failed_step,
        run.exception_type,
        run.exception_message,
        step_run_tally(engine, run.id),
        None if question is None else [question[0].id, question[1].wait_id],
    ]
    digest = hashlib.sha256(json.dumps(marks).encode()).hexdigest()
    return {"token": digest[:20], "live": is_live(run)}


def is_live(run: PipelineRunResponse) -> bool:
    status = ExecutionStatus(run.status)
    return not status.is_finished or status == ExecutionStatus.PAUSED
