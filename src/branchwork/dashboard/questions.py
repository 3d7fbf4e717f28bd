"""A run's questions (`branchwork.wait`) as the run page shows them, and the one a paused run
still needs answered before it can resume.

The dashboard does not answer questions (its only writes are resume and stop): it shows the
`branchwork runs answer` command that does, which records the answer and resumes the run.
Until then a resume is refused (409), so the page disables its button; the rule is the one
`pipelines.answering.settle_pause` applies: the question the run waits on (its child run's,
if it paused with one) needs an answer unless it has one or is past its timeout (a resume
then takes its default, or fails the run at the wait).
"""

from __future__ import annotations

import shlex
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Engine

from branchwork.metadata.waits import last_wait, run_waits, waiting_run
from branchwork.models.responses import ExecutionStatus, PipelineRunResponse
from branchwork.models.shapes import wait_dict
from branchwork.models.waits import WaitResponse


def questions(engine: Engine, run: PipelineRunResponse) -> list[dict[str, Any]]:
    """Every question the run asked, in order, each with its state: "answered", "waiting"
    or "timed_out"."""
    now = _utc_now()
    return [{**wait_dict(wait), "state": _state(wait, now)} for wait in run_waits(engine, run.id)]


def open_question(
    engine: Engine, run: PipelineRunResponse
) -> tuple[PipelineRunResponse, WaitResponse] | None:
    """The run that asked and the question a paused run waits on while it still needs an
    answer; None when nothing stops a resume."""
    if run.status != ExecutionStatus.PAUSED:
        return None
    asking = waiting_run(engine, run)
    if asking.paused_with_child:  # its child went on without it: a resume takes its outcome
        return None
    wait = last_wait(engine, asking.id)
    if wait is None or wait.is_answered or wait.timed_out(_utc_now()):
        return None
    return asking, wait


def open_question_dict(engine: Engine, run: PipelineRunResponse) -> dict[str, Any] | None:
    """`open_question` for the page: the question, the run that asked it, and the command
    that answers it (and resumes the run)."""
    found = open_question(engine, run)
    if found is None:
        return None
    asking, wait = found
    return {
        **wait_dict(wait),
        "asked_by": asking.name,
        "answer_command": f"branchwork runs answer {shlex.quote(run.name)} --value VALUE",
    }


def _state(wait: WaitResponse, now: datetime) -> str:
    if wait.is_answered:
        return "answered"
    return "timed_out" if wait.timed_out(now) else "waiting"


def _utc_now() -> datetime:
    """Now as the store keeps times: naive UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
