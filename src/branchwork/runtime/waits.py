"""A running pipeline body's questions (`branchwork.wait`): an answered one returns its
recorded answer, an unanswered one pauses the run.

Pausing: `RunQuestions.ask` raises `PauseRequested` out of the body (a BaseException, so the
body's `except Exception:` cannot swallow it). The run session lets the steps the body had
already called finish, then records the question and the run PAUSED in one transaction
(`record_paused`) and ends its loop: the orchestration process may exit, nothing is lost.
Answering (`pipelines.answering`) records the answer and resumes the run as a resume does:
the body runs again from the start, its finished steps are taken over by invocation id, and
`ask` finds the answer. Questions are told apart by id: `wait`, `wait_2`, ... in the order
the body asks them, or the `id=` given.

A question past its timeout, met by a resumed body, returns its default (which the resume
recorded as its answer), or raises WaitTimeoutError there, which fails the run unless the
body catches it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import (
    InvalidAnswerError,
    PipelineDefinitionError,
    RunPaused,
    WaitTimeoutError,
)
from branchwork.graph.questions import Question, duration_text
from branchwork.metadata.store import get_engine
from branchwork.metadata.waits import last_wait, record_pause, wait_record, waiting_run

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.metadata.recorder import Recorder
    from branchwork.models import PipelineRunResponse, WaitResponse


class PauseRequested(BaseException):
    """Raised out of a pipeline body by an unanswered question: the run pauses there."""

    def __init__(self, wait_id: str, question: Question, refused: str | None = None) -> None:
        super().__init__(f"the run waits for an answer to {question.text!r}")
        self.wait_id = wait_id
        self.question = question
        self.refused = refused  # why the body refused the recorded answer, if it did


class RunQuestions:
    """The questions one session of a run's body asks, with their ids."""

    def __init__(self, run_id: str, run_name: str, pipeline_name: str) -> None:
        self.run_id = run_id
        self.run_name = run_name
        self.pipeline_name = pipeline_name
        self._taken: set[str] = set()
        self._asked = 0

    def ask(self, question: Question) -> Any:
        """The recorded answer to `question`, converted to its schema's type; PauseRequested
        when it has none yet."""
        wait_id = self._claim(question.wait_id)
        recorded = wait_record(get_engine(), self.run_id, wait_id)
        if recorded is not None and recorded.question != question.text:
            raise PipelineDefinitionError(
                f"Pipeline '{self.pipeline_name}' run '{self.run_name}': wait '{wait_id}' now "
                f"asks {question.text!r}, but the run asked {recorded.question!r} there. The "
                "body changed since; give the new question its own wait(..., id=...)."
            )
        if recorded is None:
            raise PauseRequested(wait_id, question)
        if recorded.is_answered:
            try:
                return question.value_of(recorded.answer)
            except InvalidAnswerError as refused:
                # It passed the JSON schema where it was answered, not the type here (a
                # validator of the model): the run waits again rather than failing for good.
                raise PauseRequested(wait_id, question, str(refused)) from None
        if not recorded.timed_out(utc_now()):
            raise PauseRequested(wait_id, question)  # resumed unanswered: it waits on
        if recorded.has_default:
            return question.value_of(recorded.default)
        raise WaitTimeoutError(
            f"Run '{self.run_name}' of pipeline '{self.pipeline_name}': no answer to "
            f"{question.text!r} within {duration_text(recorded.timeout or 0)}; give "
            "wait(..., default=...) to go on without one."
        )

    def _claim(self, explicit: str | None) -> str:
        if explicit is not None:
            if explicit in self._taken:
                raise PipelineDefinitionError(
                    f"Pipeline '{self.pipeline_name}': wait id '{explicit}' is used twice; "
                    "every wait(...) in a run needs its own id."
                )
            self._taken.add(explicit)
            return explicit
        while True:
            self._asked += 1
            candidate = "wait" if self._asked == 1 else f"wait_{self._asked}"
            if candidate not in self._taken:
                self._taken.add(candidate)
                return candidate


def record_paused(recorder: Recorder, pause: PauseRequested) -> None:
    """Record the question and the run PAUSED, after whatever the loop recorded."""
    recorder.flush()
    question = pause.question
    record_pause(
        recorder.engine,
        recorder.run_id,
        pause.wait_id,
        question.text,
        question.schema,
        question.timeout,
        question.default_json,
        pause.refused,
    )


def paused_error(engine: Engine, run: PipelineRunResponse) -> RunPaused:
    """What calling a pipeline (or answering, or resuming) raises when its run paused: the
    question (its child run's, if it paused with one), until when it waits, and how to
    answer."""
    asking = waiting_run(engine, run)
    if asking.paused_with_child:
        return RunPaused(gone_on(asking), run.id, "", "")
    waiting = last_wait(engine, asking.id)
    if waiting is None:  # a paused run always has its question; a hand-edited store may not
        return RunPaused(f"Run '{run.name}' is paused.", run.id, "", "")
    who = (
        "it waits"
        if asking.id == run.id
        else f"its child run '{asking.name}' of pipeline '{asking.pipeline_name}' waits"
    )
    refused = asking.exception_message  # the answer the body refused (`RunQuestions.ask`)
    return RunPaused(
        f"Run '{run.name}' of pipeline '{run.pipeline_name}' is paused: "
        f"{f'{refused} ' if refused else ''}{who} for an answer to {waiting.question!r}"
        f"{until(waiting)}. Answer with `branchwork runs answer {run.name} --value VALUE` (or "
        f"Client().answer_run({run.name!r}, value)).",
        run.id,
        waiting.wait_id,
        waiting.question,
        refused,
    )


def gone_on(run: PipelineRunResponse) -> str:
    """What a run paused with its child run is when the child has gone on without it
    (answered and resumed on its own, or deleted): nothing to answer, a resume to make."""
    return (
        f"Run '{run.name}' paused with the child run of its invocation '{run.failed_step}', "
        "which no longer waits (resumed on its own, or deleted): resume the run with "
        f"`branchwork runs resume {run.name}`."
    )


def until(waiting: WaitResponse) -> str:
    """When the question stops waiting and what happens then, e.g. ` (for 1h, until
    2026-12-01 10:00:00 UTC; then it takes the default True)`."""
    deadline = waiting.deadline
    if deadline is None or waiting.timeout is None:
        return ""
    then = (
        f"then it takes the default {waiting.default!r}"
        if waiting.has_default
        else "then the run fails"
    )
    when = deadline.replace(tzinfo=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f" (for {duration_text(waiting.timeout)}, until {when}; {then})"


def utc_now() -> datetime:
    """Now, naive UTC, as the store's times are."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
