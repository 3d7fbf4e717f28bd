"""The questions runs ask with `branchwork.wait` (table `run_wait`), and a run's pause.

A run pauses in one transaction: its question is recorded the first time it is asked (its
timeout counts from then) and the run becomes PAUSED. A run whose child run paused pauses with
it (`record_child_pause`): it waits on its child's question (`waiting_run`), and it is what
goes on once that is answered (`paused_root`), resuming the child as it runs again. An answer —
someone's, or the default of a question that timed out — is recorded by whoever gives it, once:
the update takes only an unanswered question of a paused run, so of two answers given at once
one wins. Values (answers, defaults, schemas) are stored as JSON.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine, exists, func, select

from branchwork.exceptions import BranchworkError, ChildRunPaused, StoreUnavailableError
from branchwork.metadata import schema
from branchwork.metadata.queries import get_run, latest_child_run
from branchwork.metadata.recorder import utc
from branchwork.metadata.retries import retrying
from branchwork.metadata.store import write_transaction
from branchwork.models import PipelineRunResponse, WaitResponse

_wait = schema.run_wait.c
_run = schema.pipeline_run.c


def _response(row: Any) -> WaitResponse:
    return WaitResponse(
        wait_id=row.wait_id,
        position=row.position,
        question=row.question,
        schema=None if row.answer_schema is None else json.loads(row.answer_schema),
        timeout=row.timeout,
        has_default=row.default_value is not None,
        default=None if row.default_value is None else json.loads(row.default_value),
        asked=row.asked,
        answer=None if row.answer is None else json.loads(row.answer),
        answered=row.answered,
        answered_by=row.answered_by,
    )


@retrying("reading a run's questions")
def run_waits(engine: Engine, run_id: str) -> list[WaitResponse]:
    """Every question the run asked, in the order it first asked them."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(schema.run_wait).where(_wait.run_id == run_id).order_by(_wait.position)
        ).all()
    return [_response(row) for row in rows]


def last_wait(engine: Engine, run_id: str) -> WaitResponse | None:
    """The question the run asked last: the one a paused run waits on."""
    waits = run_waits(engine, run_id)
    return waits[-1] if waits else None


@retrying("reading a question")
def wait_record(engine: Engine, run_id: str, wait_id: str) -> WaitResponse | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(schema.run_wait).where(_wait.run_id == run_id, _wait.wait_id == wait_id)
        ).one_or_none()
    return None if row is None else _response(row)


@retrying("pausing the run")
def record_pause(
    engine: Engine,
    run_id: str,
    wait_id: str,
    question: str,
    answer_schema: dict[str, Any] | None,
    timeout: float | None,
    default_json: str | None,
    refused: str | None = None,
) -> None:
    """Record the question (unless an earlier session asked it already) and the run PAUSED;
    with `refused` (why the body refused its recorded answer), the answer is taken back and
    the run says why it waits again."""
    now = utc(time.time())
    with write_transaction(engine) as conn:
        if refused is not None:
            conn.execute(
                schema.run_wait.update()
                .where(_wait.run_id == run_id, _wait.wait_id == wait_id)
                .values(answer=None, answered=None, answered_by=None)
            )
        asked_before = conn.execute(
            select(_wait.wait_id).where(_wait.run_id == run_id, _wait.wait_id == wait_id)
        ).first()
        if asked_before is None:
            count = conn.execute(
                select(func.count()).select_from(schema.run_wait).where(_wait.run_id == run_id)
            ).scalar_one()
            conn.execute(
                schema.run_wait.insert(),
                {
                    "run_id": run_id,
                    "wait_id": wait_id,
                    "position": count + 1,
                    "question": question,
                    "answer_schema": None if answer_schema is None else json.dumps(answer_schema),
                    "timeout": timeout,
                    "default_value": default_json,
                    "asked": now,
                },
            )
        conn.execute(
            schema.pipeline_run.update()
            .where(_run.id == run_id, _run.status == "running")
            .values(status="paused", end_time=now, exception_message=refused)
        )


@retrying("pausing the run with its child run")
def record_child_pause(engine: Engine, run_id: str, invocation_id: str, message: str) -> None:
    """Record the run PAUSED because the child run of its invocation `invocation_id` paused
    (`message`: what the child's pause says), naming that invocation as a failed run names
    its failed step."""
    with write_transaction(engine) as conn:
        conn.execute(
            schema.pipeline_run.update()
            .where(_run.id == run_id, _run.status == "running")
            .values(
                status="paused",
                end_time=utc(time.time()),
                failed_step=invocation_id,
                exception_type=ChildRunPaused.__name__,  # PipelineRunResponse.paused_with_child
                exception_message=message,
            )
        )


def waiting_run(engine: Engine, run: PipelineRunResponse) -> PipelineRunResponse:
    """The run whose question a paused run waits on: itself, or, when it paused with its
    child run, the child's (followed down). A run whose child went on without it (resumed on
    its own) is its own: its resume takes the child's outcome."""
    while run.paused_with_child:
        child = latest_child_run(engine, run.id, str(run.failed_step))
        if child is None or child.status != "paused":
            break
        run = child
    return run


def paused_root(engine: Engine, run: PipelineRunResponse) -> PipelineRunResponse:
    """The run to resume once a paused run's question is answered: the outermost of the
    parents that paused with it (each resumes its child as it runs again), else itself."""
    while run.parent_run_id is not None:
        try:
            parent = get_run(engine, run.parent_run_id, include_steps=False)
        except StoreUnavailableError:
            raise  # an outage, not a deleted parent
        except BranchworkError:  # deleted: the child goes on alone
            break
        if not (parent.paused_with_child and parent.failed_step == run.parent_invocation_id):
            break
        run = parent
    return run


@retrying("recording an answer")
def record_answer(engine: Engine, run_id: str, wait_id: str, answer: Any, answered_by: str) -> bool:
    """Record the answer to an unanswered question of a paused run; False if the run is not
    paused or the question was answered meanwhile."""
    paused = exists().where(_run.id == run_id, _run.status == "paused")
    with write_transaction(engine) as conn:
        result = conn.execute(
            schema.run_wait.update()
            .where(_wait.run_id == run_id, _wait.wait_id == wait_id, _wait.answered.is_(None))
            .where(paused)
            .values(
                answer=json.dumps(answer),
                answered=utc(time.time()),
                answered_by=answered_by,
            )
        )
    return bool(result.rowcount)
