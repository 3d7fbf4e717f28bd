"""`branchwork.wait(...)`: a pipeline body asks a person (or another system) a question and
goes on with the answer.

The run context decides what asking means: tracing learns that the pipeline is dynamic (an
answer is a value the body uses), a running body pauses its run until the question has an
answer (`runtime.waits`), and a resumed body gets the recorded answer back.

The schema is a Python type (`bool`, `int`, `Literal["a", "b"]`, `list[str]`, a pydantic
model, a TypedDict...), checked with pydantic, or a JSON schema as a dict. Either way the
JSON schema is recorded with the question, and answers are checked against it wherever they
are given (`graph.answer_schema`), without the pipeline's code; with a Python type, the body
gets the answer converted to it (a model instance, not a dict).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from branchwork.exceptions import ConfigurationError, InvalidAnswerError, PipelineDefinitionError
from branchwork.graph.answer_schema import answer_problem, schema_problem
from branchwork.graph.context import current_run_context


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


@dataclass(frozen=True)
class Question:
    """One `wait(...)` call: the question, its JSON schema (None: any JSON value), timeout in
    seconds, default as JSON text (None: no default) and explicit id, if any."""

    text: str
    schema: dict[str, Any] | None
    timeout: float | None
    default_json: str | None
    wait_id: str | None
    adapter: Any = None  # a pydantic TypeAdapter when the schema is a Python type

    def value_of(self, answer: Any) -> Any:
        """A recorded answer (JSON) as the body gets it: converted to the schema's type."""
        if self.adapter is None:
            return answer
        from pydantic import ValidationError

        try:
            return self.adapter.validate_python(answer)
        except ValidationError as error:
            raise InvalidAnswerError(
                f"The recorded answer {answer!r} to {self.text!r} does not fit the type of its "
                f"schema: {error}"
            ) from None


def wait(
    question: str,
    schema: Any = None,
    *,
    timeout: float | timedelta | None = None,
    default: Any = NO_DEFAULT,
    id: str | None = None,  # noqa: A002 - as steps' id=
) -> Any:
    """Pause the running pipeline until `question` has an answer, and return it.

    The run becomes `paused` and its orchestration ends; `branchwork runs answer RUN --value
    VALUE` (or `Client().answer_run`) checks the answer against `schema` and resumes the run:
    the body runs again from the start, finished steps are reused, and this call returns the
    answer. Past `timeout` (seconds or a timedelta), the next resume takes `default`, or fails
    the run if there is none. Waits are told apart by their order in the body (`wait`,
    `wait_2`, ...) unless given an `id`."""
    asked = make_question(question, schema, timeout, default, id)
    context = current_run_context()
    if context is None:
        raise PipelineDefinitionError(
            f"branchwork.wait({question!r}) was called outside a running pipeline; call it in "
            "a pipeline's body (not in a step)."
        )
    return context.ask(asked)


MAX_TIMEOUT_SECONDS = 100 * 365 * 24 * 3600


def make_question(
    text: str, schema: Any, timeout: float | timedelta | None, default: Any, wait_id: str | None
) -> Question:
    """Check `wait`'s arguments and turn them into a `Question`."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"wait() needs a question as a non-empty string, got {text!r}.")
    if wait_id is not None and (not isinstance(wait_id, str) or not wait_id):
        raise ConfigurationError(f"wait({text!r}): id= must be a non-empty string.")
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if seconds is not None and not (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and 0 <= seconds <= MAX_TIMEOUT_SECONDS  # NaN fails this too
    ):
        # An infinite or huge one made a deadline past year 9999: the run was recorded
        # paused, and showing, answering or resuming it raised OverflowError for good.
        raise ConfigurationError(
            f"wait({text!r}): timeout= must be seconds (0 to {MAX_TIMEOUT_SECONDS:.0f}, a "
            f"century) or a timedelta, got {timeout!r}; timeout=None waits with no deadline."
        )
    json_schema, adapter = _schema_of(text, schema)
    unreadable = None if json_schema is None else schema_problem(json_schema)
    if unreadable is not None:
        raise ConfigurationError(
            f"wait({text!r}): answers are checked against the question's JSON schema where "
            f"they are given, and {unreadable}: use a schema that can be checked there."
        )
    default_json = None
    if default is not NO_DEFAULT:
        default_json = _default_json(text, default, json_schema, adapter)
    return Question(
        text,
        json_schema,
        None if seconds is None else float(seconds),
        default_json,
        wait_id,
        adapter,
    )


def _schema_of(text: str, schema: Any) -> tuple[dict[str, Any] | None, Any]:
    if schema is None:
        return None, None
    if isinstance(schema, dict):
        return schema, None
    from pydantic import TypeAdapter

    try:
        adapter = TypeAdapter(schema)
        return adapter.json_schema(), adapter
    except Exception as error:  # noqa: BLE001 - any type pydantic cannot describe
        raise ConfigurationError(
            f"wait({text!r}): schema={schema!r} is neither a type pydantic can check nor a "
            f"JSON schema dict: {error}"
        ) from None


def _default_json(text: str, default: Any, schema: dict[str, Any] | None, adapter: Any) -> str:
    try:
        value = (
            default
            if adapter is None
            else adapter.dump_python(default, mode="json", warnings=False)
        )
        encoded = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigurationError(
            f"wait({text!r}): default={default!r} cannot be recorded as JSON: {error}"
        ) from None
    problem = answer_problem(json.loads(encoded), schema)
    if problem is not None:
        raise ConfigurationError(
            f"wait({text!r}): default={default!r} does not match the schema: {problem}"
        )
    return encoded


def duration_text(seconds: float) -> str:
    """A timeout as people write it: 0.5s, 90s -> 1m 30s, 3600 -> 1h."""
    if seconds < 60:
        return f"{seconds:g}s"
    parts = []
    remaining = math.floor(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts)
