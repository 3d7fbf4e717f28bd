"""Answering a paused run's question, and what a paused run needs before it resumes.

An answer is checked against the question's recorded JSON schema (`graph.answer_schema`) before
anything is recorded: a bad answer leaves the run paused as it was. `Client` then resumes the
run, as `resume` does. A run that paused with its child run takes the child's question, and
either run's answer resumes the outermost one (`metadata.waits`). A question past its timeout
takes no more answers; the run's next resume settles it: with a default, the default is
recorded as its answer and the run goes on; without one, the resumed body meets the timeout at
the wait and the run fails there (`runtime.waits`). Nothing watches the clock while no process
runs the run, so a timeout takes effect at that resume.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from branchwork.exceptions import InvalidAnswerError, OrchestratorError
from branchwork.graph.answer_schema import answer_problem
from branchwork.graph.questions import duration_text
from branchwork.metadata.waits import last_wait, record_answer, waiting_run
from branchwork.pipelines.parameters import json_or_text
from branchwork.runtime.waits import gone_on, until, utc_now

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.models import PipelineRunResponse, WaitResponse


def record_answer_to(engine: Engine, run: PipelineRunResponse, value: Any) -> WaitResponse:
    """Check `value` against the question the paused run waits on (its child run's, if it
    paused with one) and record it; returns the question. InvalidAnswerError, with nothing
    recorded, if it cannot be."""
    run = waiting_run(engine, run)
    waiting = _waiting(engine, run)
    if waiting.is_answered:
        raise InvalidAnswerError(
            f"Run '{run.name}': {waiting.question!r} is answered already "
            f"({waiting.answer!r}); resume the run with `branchwork runs resume {run.name}`."
        )
    if waiting.timed_out(utc_now()):
        then = (
            f"goes on with the default {waiting.default!r}" if waiting.has_default else "fails it"
        )
        raise InvalidAnswerError(
            f"Run '{run.name}' waited for an answer to {waiting.question!r} for "
            f"{duration_text(waiting.timeout or 0)} only: the answer was not recorded. "
            f"`branchwork runs resume {run.name}` {then}."
        )
    answer = _as_json(value)
    problem = answer_problem(answer, waiting.schema)
    if problem is not None:
        raise InvalidAnswerError(
            f"Run '{run.name}': {value!r} does not answer {waiting.question!r}: {problem}. "
            "Nothing was recorded; the run still waits."
        )
    if not record_answer(engine, run.id, waiting.wait_id, answer, "answer"):
        raise InvalidAnswerError(
            f"Run '{run.name}' was answered or resumed meanwhile; `branchwork runs show "
            f"{run.name}` shows where it is."
        )
    return waiting


def settle_pause(engine: Engine, run: PipelineRunResponse) -> None:
    """Before a paused run resumes: the question it waits on (its child run's, if it paused
    with one) must have an answer, or be past its timeout (then its default, if it has one,
    is recorded as the answer). A run whose child went on without it takes the child's
    outcome as it resumes."""
    asking = waiting_run(engine, run)
    if asking.paused_with_child:
        return
    waiting = _waiting(engine, asking)
    if waiting.is_answered:
        return
    if not waiting.timed_out(utc_now()):
        via = "" if asking.id == run.id else f" (asked by its child run '{asking.name}')"
        raise OrchestratorError(
            f"Run '{run.name}' is paused, waiting for an answer to "
            f"{waiting.question!r}{via}{until(waiting)}: answer it with `branchwork runs "
            f"answer {run.name} --value VALUE`."
        )
    if waiting.has_default:
        record_answer(engine, asking.id, waiting.wait_id, waiting.default, "default")


def answer_from_text(text: str, schema: dict[str, Any] | None) -> Any:
    """A `--value` as typed: its JSON value (3, true, {"a": 1}) when it parses, unless the
    schema refuses that and takes the text itself (a string question answered `3`)."""
    parsed = json_or_text(text)
    if parsed is text or answer_problem(parsed, schema) is None:
        return parsed
    return text if answer_problem(text, schema) is None else parsed


def _waiting(engine: Engine, run: PipelineRunResponse) -> WaitResponse:
    if run.paused_with_child:
        raise InvalidAnswerError(gone_on(run))
    waiting = last_wait(engine, run.id) if run.status == "paused" else None
    if waiting is None:
        raise InvalidAnswerError(
            f"Run '{run.name}' is {run.status}: only a paused run (one waiting at "
            "branchwork.wait) takes an answer."
        )
    return waiting


def _as_json(value: Any) -> Any:
    """The answer as JSON data: pydantic models, dataclasses, enums and dates included."""
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError as error:
        raise InvalidAnswerError(f"{value!r} cannot be recorded as an answer: {error}") from None
