"""`branchwork.wait`: a run pauses at a question, its orchestration ends, and an answer given
later (another process, the CLI) resumes it from there; answers are checked against the
schema; a timeout takes the default or fails the run."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import pytest
import wait_pipelines as wp
from pydantic import BaseModel, StringConstraints
from typer.testing import CliRunner

from branchwork import Client, pipeline, wait
from branchwork.cli.app import app
from branchwork.exceptions import (
    ConfigurationError,
    InvalidAnswerError,
    OrchestratorError,
    PipelineDefinitionError,
    PipelineRunFailedError,
    RunPaused,
    WaitTimeoutError,
)
from processes import Spawned, python, python_env

HERE = Path(__file__).parent

SCRIPT = """
import sys
sys.path.insert(0, {here!r})
import wait_pipelines as wp
from branchwork.exceptions import RunPaused
from branchwork.orchestrators import LocalOrchestrator, LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

flavor, folder = sys.argv[1], sys.argv[2]
orchestrator = {{"local": LocalOrchestrator, "local_process": LocalProcessOrchestrator}}[flavor]
with active_stack(Stack(flavor, orchestrator(), get_active_stack().artifact_store)):
    try:
        wp.release(folder=folder)
    except RunPaused as paused:
        print(paused)
        sys.exit(3)
print("the run did not pause")
"""


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def paused_run(error: pytest.ExceptionInfo[RunPaused]):
    run = Client().get_pipeline_run(error.value.run_id)
    assert run.status == "paused"
    return run


@pytest.mark.parametrize("flavor", ["local", "local_process"])
def test_a_paused_run_ends_its_process_and_an_answer_from_another_finishes_it(
    tmp_path, branchwork_home, flavor
):
    script = tmp_path / "release.py"
    script.write_text(SCRIPT.format(here=str(HERE)))
    env = python_env(branchwork_home)
    with Spawned(python(str(script), flavor, str(tmp_path)), env=env, cwd=tmp_path) as first:
        code, out, err = first.wait(120)
    assert code == 3, out + err
    (run,) = Client().list_pipeline_runs(pipeline="release")
    assert out.strip() == (
        f"Run '{run.name}' of pipeline 'release' is paused: it waits for an answer to "
        f"'Release tag?'. Answer with `branchwork runs answer {run.name} --value VALUE` (or "
        f"Client().answer_run('{run.name}', value))."
    )
    assert run.status == "paused" and run.orchestrator == flavor
    assert run.snapshot.is_dynamic is True  # the answer is a value the body uses
    assert {name: str(s.status) for name, s in run.steps.items()} == {"prepare": "completed"}
    (question,) = Client().get_run_waits(run.id)
    assert (question.wait_id, question.question, question.schema) == (
        "wait",
        "Release tag?",
        {"type": "string"},
    )
    assert not question.is_answered
    listed = cli("runs", "list", "--status", "paused")
    assert run.name in listed and "paused" in listed

    stack = []
    if flavor == "local_process":  # the answer's session runs in an orchestration process too
        cli("orchestrator", "register", "lp", "--flavor", "local_process")
        cli("stack", "register", "lp", "--orchestrator", "lp")
        stack = ["--stack", "lp"]
    answer = python("-m", "branchwork.cli", "runs", "answer", run.name, "--value", "v1.0")
    with Spawned([*answer, "--no-progress", *stack], env=env, cwd=tmp_path) as second:
        code, out, err = second.wait(120)
    assert code == 0, out + err
    assert out.splitlines() == [
        f"Run:    {run.name}",
        "Status: completed",
        "Result: 'model:v17@v1.0'",
    ]
    finished = Client().get_pipeline_run(run.id)
    assert finished.status == "completed"
    assert finished.load_output() == "model:v17@v1.0"
    assert finished.steps["prepare"].attempt == 1  # taken over, not run again
    assert wp.executions(tmp_path) == {"prepare": 1}
    (question,) = Client().get_run_waits(run.id)
    assert (question.answer, question.answered_by) == ("v1.0", "answer")
    shown = cli("runs", "show", run.name)
    assert "Release tag?" in shown and '"v1.0"' in shown


def test_steps_called_before_a_wait_finish_and_several_waits_pause_in_turn(tmp_path, local_flavor):
    with pytest.raises(RunPaused) as first:
        wp.approvals(folder=str(tmp_path))
    run = paused_run(first)
    assert (first.value.wait_id, first.value.question) == ("wait", "Approve the release?")
    # slow_side was still running at the wait: it finished and was recorded before the pause
    assert {name: str(s.status) for name, s in run.steps.items()} == {
        "prepare": "completed",
        "slow_side": "completed",
    }
    assert wp.executions(tmp_path) == {"prepare": 1, "slow_side": 1}

    with pytest.raises(RunPaused) as second:
        Client().answer_run(run.id, wp.Approval(approved=True, reviewer="ada"))
    assert (second.value.wait_id, second.value.question) == ("target", "Where to?")
    assert paused_run(second).id == run.id

    assert Client().answer_run(run.id, "prod") == ("model:v17@prod-ada-True", 7)
    waits = Client().get_run_waits(run.id)
    assert [(w.wait_id, w.position, w.answer, w.answered_by) for w in waits] == [
        ("wait", 1, {"approved": True, "reviewer": "ada"}, "answer"),
        ("target", 2, "prod", "answer"),
    ]
    assert waits[1].schema == {"enum": ["staging", "prod"], "type": "string"}
    assert wp.executions(tmp_path) == {"prepare": 1, "slow_side": 1}  # three sessions, once
    assert Client().get_pipeline_run(run.id).status == "completed"


def test_an_answer_the_schema_refuses_is_not_recorded_and_the_run_still_waits(tmp_path):
    with pytest.raises(RunPaused) as paused:
        wp.approvals(folder=str(tmp_path))
    run = paused_run(paused)
    refusals = [
        ({"approved": "yes", "reviewer": "ada"}, "approved: expected a boolean, got 'yes'"),
        ({"approved": True}, "the answer: missing 'reviewer'"),
        ("yes", "the answer: expected an object, got 'yes'"),
    ]
    for answer, problem in refusals:
        with pytest.raises(InvalidAnswerError) as refused:
            Client().answer_run(run.id, answer)
        assert str(refused.value) == (
            f"Run '{run.name}': {answer!r} does not answer 'Approve the release?': {problem}. "
            "Nothing was recorded; the run still waits."
        )
    bad = '{"approved": 1, "reviewer": "ada"}'
    result = CliRunner().invoke(app, ["runs", "answer", run.name, "--value", bad])
    assert result.exit_code == 1
    assert "approved: expected a boolean, got 1" in result.stderr
    assert Client().get_pipeline_run(run.id).status == "paused"
    assert not Client().get_run_waits(run.id)[0].is_answered

    with pytest.raises(RunPaused):
        Client().answer_run(run.id, {"approved": False, "reviewer": "bo"})
    with pytest.raises(InvalidAnswerError, match=r"expected one of 'staging', 'prod', got 'dev'"):
        Client().answer_run(run.id, "dev")
    assert Client().answer_run(run.id, "staging")[0] == "model:v17@staging-bo-False"
    with pytest.raises(InvalidAnswerError, match="is completed: only a paused run"):
        Client().answer_run(run.id, "prod")


def test_an_answer_the_body_refuses_is_taken_back_and_the_run_waits_again(tmp_path):
    """It passed the question's JSON schema where it was answered, but not the type in the
    body (a constraint, a model's validator): the run failed for good, and neither an answer
    nor a resume could get it past the recorded bad answer."""
    with pytest.raises(RunPaused) as paused:
        wp.batches(folder=str(tmp_path))
    run = paused_run(paused)
    with pytest.raises(RunPaused) as again:
        Client().answer_run(run.id, 12)
    assert "Input should be a multiple of 8" in (again.value.refused or "")
    assert again.value.refused in str(again.value)
    assert paused_run(again).id == run.id
    assert not Client().get_run_waits(run.id)[0].is_answered
    result = CliRunner().invoke(app, ["runs", "answer", run.name, "--value", "16"])
    assert result.exit_code == 0, result.output  # the second question is asked now
    result = CliRunner().invoke(app, ["runs", "answer", run.name, "--value", '{"reviewer": "eve"}'])
    assert result.exit_code == 1
    assert "Refused: " in result.stdout and "'eve' is not a reviewer" in result.stdout
    assert Client().get_pipeline_run(run.id).status == "paused"
    assert Client().answer_run(run.id, {"reviewer": "bo"}) == "model:v17@16-bo"


def test_a_cli_answer_is_json_unless_the_schema_wants_the_text(tmp_path):
    with pytest.raises(RunPaused) as paused:
        wp.release(folder=str(tmp_path))
    run = paused_run(paused)
    out = cli("runs", "answer", run.name, "--value", "42", "--no-progress")
    assert out.splitlines()[-1] == "Result: 'model:v17@42'"  # a string question: the text


def test_resuming_before_the_timeout_is_refused(tmp_path):
    with pytest.raises(RunPaused) as paused:
        wp.timed(folder=str(tmp_path), timeout=600, with_default=True)
    run = paused_run(paused)
    assert "(for 10m, until " in str(paused.value)
    assert "; then it takes the default False)" in str(paused.value)
    with pytest.raises(OrchestratorError) as refused:
        Client().resume_run(run.id)
    assert str(refused.value).startswith(
        f"Run '{run.name}' is paused, waiting for an answer to 'Deploy?' (for 10m, until "
    )
    assert str(refused.value).endswith(
        f"then it takes the default False): answer it with `branchwork runs answer {run.name} "
        "--value VALUE`."
    )
    assert Client().get_pipeline_run(run.id).status == "paused"


def wait_past_deadline(run_id: str) -> None:
    (question,) = Client().get_run_waits(run_id)
    assert question.deadline is not None
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    time.sleep(max(0.0, (question.deadline - now).total_seconds()) + 0.05)


def test_a_timed_out_question_takes_its_default_at_the_next_resume(tmp_path, local_flavor):
    with pytest.raises(RunPaused) as paused:
        wp.timed(folder=str(tmp_path), timeout=1.0, with_default=True)
    run = paused_run(paused)
    wait_past_deadline(run.id)
    shown = [" ".join(line.split()) for line in cli("runs", "show", run.name).splitlines()]
    assert shown[-1].endswith(" (timed out: a resume takes the default false)")
    with pytest.raises(InvalidAnswerError) as late:
        Client().answer_run(run.id, True)
    assert str(late.value) == (
        f"Run '{run.name}' waited for an answer to 'Deploy?' for 1s only: the answer was not "
        f"recorded. `branchwork runs resume {run.name}` goes on with the default False."
    )
    assert Client().resume_run(run.id) == "model:v17@hold"
    (question,) = Client().get_run_waits(run.id)
    assert (question.answer, question.answered_by) == (False, "default")
    assert wp.executions(tmp_path) == {"prepare": 1}


def test_a_timed_out_question_without_default_fails_the_run(tmp_path, local_flavor):
    with pytest.raises(RunPaused) as paused:
        wp.timed(folder=str(tmp_path), timeout=0.5, with_default=False)
    run = paused_run(paused)
    assert "; then the run fails)" in str(paused.value)
    wait_past_deadline(run.id)
    shown = [" ".join(line.split()) for line in cli("runs", "show", run.name).splitlines()]
    assert shown[-1].endswith("(timed out: no answer, no default)")
    with pytest.raises(PipelineRunFailedError) as failed:
        Client().resume_run(run.id)
    message = (
        f"Run '{run.name}' of pipeline 'timed': no answer to 'Deploy?' within 0.5s; give "
        "wait(..., default=...) to go on without one."
    )
    assert isinstance(failed.value.__cause__, WaitTimeoutError)
    assert str(failed.value.__cause__) == message
    failed_run = Client().get_pipeline_run(run.id)
    assert failed_run.status == "failed"
    assert (failed_run.exception_type, failed_run.exception_message) == (
        "WaitTimeoutError",
        message,
    )
    assert not Client().get_run_waits(run.id)[0].is_answered


def test_wait_outside_a_pipeline_and_bad_arguments_are_refused():
    with pytest.raises(PipelineDefinitionError, match="called outside a running pipeline"):
        wait("Deploy?", schema=bool)
    with pytest.raises(ConfigurationError, match="default='no' does not match the schema"):
        wait("Deploy?", schema=bool, default="no")
    with pytest.raises(ConfigurationError, match="timeout= must be seconds"):
        wait("Deploy?", timeout=-1)
    # A deadline past year 9999 left a paused run that nothing could show, answer or resume.
    for endless in (float("inf"), float("nan"), 1e12, timedelta.max, True):
        with pytest.raises(ConfigurationError, match="timeout=None waits with no deadline"):
            wait("Deploy?", timeout=endless)
    with pytest.raises(ConfigurationError, match="neither a type pydantic can check"):
        wait("Deploy?", schema=object())


class Range(BaseModel):
    minimum: float
    maximum: float
    pattern: str = "^x"


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        # pydantic's own (Rust) regular expressions take \p{L}; Python's `re` does not
        (
            Annotated[str, StringConstraints(pattern=r"^\p{L}+$")],
            r"its pattern '^\\p{L}+$' is not a Python regular expression (bad escape \p at "
            "position 1)",
        ),
        ({"$ref": "#/$defs/Missing"}, "its $ref '#/$defs/Missing' points at nothing in the schema"),
        ({"type": "integer", "minimum": "a"}, "its minimum is 'a', not a number"),
    ],
)
def test_a_schema_answers_could_not_be_checked_against_is_refused_when_asked(schema, problem):
    """It failed every answer with the checker's raw error (re.error, KeyError, TypeError),
    and the run stayed paused for good."""
    with pytest.raises(ConfigurationError) as refused:
        wait("Your name?", schema=schema)
    # a model whose fields are named as keywords is checked as a model, not refused
    with pytest.raises(PipelineDefinitionError, match="called outside a running pipeline"):
        wait("Range?", schema=Range)
    assert str(refused.value) == (
        "wait('Your name?'): answers are checked against the question's JSON schema where they "
        f"are given, and {problem}: use a schema that can be checked there."
    )


def test_a_static_pipeline_cannot_wait():
    @pipeline(dynamic=False)
    def forced_static():
        wait("Deploy?", schema=bool)

    with pytest.raises(
        PipelineDefinitionError, match=r"but it waits for an answer to 'Deploy\?' at"
    ):
        forced_static()
    assert Client().list_pipeline_runs() == []


def test_a_resumed_body_that_asks_another_question_there_fails_clearly(tmp_path):
    (tmp_path / "question.txt").write_text("Tag?")
    with pytest.raises(RunPaused) as paused:
        wp.reworded(folder=str(tmp_path))
    run = paused_run(paused)
    (tmp_path / "question.txt").write_text("Which tag?")
    with pytest.raises(PipelineRunFailedError) as failed:
        Client().answer_run(run.id, "v2")
    assert str(failed.value.__cause__) == (
        f"Pipeline 'reworded' run '{run.name}': wait 'wait' now asks 'Which tag?', but the run "
        "asked 'Tag?' there. The body changed since; give the new question its own "
        "wait(..., id=...)."
    )
    assert Client().get_pipeline_run(run.id).status == "failed"


def family(run_id: str) -> list:
    """The run and its child runs, outermost first, down the first child of each."""
    runs = [Client().get_pipeline_run(run_id)]
    while children := Client().list_child_runs(runs[-1].id):
        (child,) = children  # one child run each: nothing called a waiting child again
        runs.append(child)
    return runs


@pytest.mark.parametrize("answered", ["outermost", "asking"])
def test_a_child_run_that_waits_pauses_every_run_above_it_and_one_answer_resumes_them_all(
    tmp_path, local_flavor, answered
):
    with pytest.raises(RunPaused) as paused:
        wp.outer_train(folder=str(tmp_path))
    outer, train, review = family(paused.value.run_id)
    assert [(r.pipeline_name, str(r.status)) for r in (outer, train, review)] == [
        ("outer_train", "paused"),
        ("release_train", "paused"),
        ("review", "paused"),
    ]
    assert str(paused.value) == (
        f"Run '{outer.name}' of pipeline 'outer_train' is paused: its child run "
        f"'{review.name}' of pipeline 'review' waits for an answer to 'Approve the "
        f"candidate?'. Answer with `branchwork runs answer {outer.name} --value VALUE` (or "
        f"Client().answer_run('{outer.name}', value))."
    )
    assert (paused.value.wait_id, paused.value.question) == ("wait", "Approve the candidate?")
    # the parents ask nothing themselves; the step that called the child waits with it
    assert Client().get_run_waits(outer.id) == Client().get_run_waits(train.id) == []
    assert (train.failed_step, train.exception_type) == ("review", "ChildRunPaused")
    assert train.steps["review"].attempt == 1  # the run's retries did not call it again
    # slow_apart was still running when the child paused: it finished before the pause
    assert {n: str(s.status) for n, s in train.steps.items()} == {
        "prepare": "completed",
        "slow_apart": "completed",
        "review": "paused",
    }
    shown = cli("runs", "show", train.name)
    assert "Paused with   review: its child run 'review-" in shown
    assert "Failed step" not in shown and "Traceback" not in shown
    drawn = cli("runs", "graph", train.name, "-f", "dot")
    assert 'fillcolor="#dbeafe", color="#1d4ed8"' in drawn  # paused, not planned

    with pytest.raises(OrchestratorError) as early:
        Client().resume_run(outer.id)
    assert str(early.value) == (
        f"Run '{outer.name}' is paused, waiting for an answer to 'Approve the candidate?' "
        f"(asked by its child run '{review.name}'): answer it with `branchwork runs answer "
        f"{outer.name} --value VALUE`."
    )
    with pytest.raises(InvalidAnswerError, match=f"Run '{review.name}': 'yes' does not answer"):
        Client().answer_run(outer.id, "yes")
    assert Client().get_pipeline_run(outer.id).status == "paused"

    target = outer if answered == "outermost" else review
    assert Client().answer_run(target.id, True) == ("model:v17@approved", 7)
    after = family(outer.id)
    assert [r.id for r in after] == [outer.id, train.id, review.id]  # resumed, not run anew
    assert [str(r.status) for r in after] == ["completed"] * 3
    assert after[2].load_output() == "model:v17@approved"
    assert wp.executions(tmp_path) == {"prepare": 1, "slow_apart": 1}
    (question,) = Client().get_run_waits(review.id)
    assert (question.answer, question.answered_by) == (True, "answer")


def test_a_cli_answer_to_a_parent_paused_with_its_child_checks_the_childs_schema(tmp_path):
    with pytest.raises(RunPaused) as paused:
        wp.release_train(folder=str(tmp_path))
    train, review = family(paused.value.run_id)
    refused = CliRunner().invoke(app, ["runs", "answer", train.name, "--value", "maybe"])
    assert refused.exit_code == 1
    assert f"Run '{review.name}': 'maybe' does not answer 'Approve the candidate?'" in (
        refused.output
    )
    out = cli("runs", "answer", train.name, "--value", "false", "--no-progress")
    assert out.splitlines() == [
        f"Run:    {train.name}",
        "Status: completed",
        "Result: ('model:v17@rejected', 7)",
    ]


@pytest.mark.parametrize("read_first", [False, True])
def test_a_step_failing_while_a_child_run_waits_fails_the_run_for_that_step(tmp_path, read_first):
    with pytest.raises(PipelineRunFailedError) as failed:
        wp.review_and_break(folder=str(tmp_path), read_first=read_first)
    run = Client().get_pipeline_run(failed.value.run_id)
    assert (str(run.status), run.failed_step, run.exception_type) == (
        "failed",
        "breaks",
        "ValueError",
    )
    assert isinstance(failed.value.__cause__, ValueError)
    (child,) = Client().list_child_runs(run.id)
    assert str(child.status) == "paused"  # it still waits; resuming the parent resumes it
    assert str(run.steps["review"].status) == "paused"


def test_a_step_that_calls_a_waiting_pipeline_fails_as_a_step_does(tmp_path):
    """Its pipeline's run is no child run: nothing pauses with it."""
    with pytest.raises(PipelineRunFailedError, match="step 'asks_elsewhere' raised RunPaused"):
        wp.step_calls_a_waiting_pipeline(folder=str(tmp_path))
    (run,) = Client().list_pipeline_runs(pipeline="step_calls_a_waiting_pipeline")
    assert (str(run.status), run.failed_step) == ("failed", "asks_elsewhere")
    assert str(run.steps["asks_elsewhere"].status) == "failed"


def test_a_parent_whose_child_went_on_without_it_says_to_resume_it(tmp_path):
    """The child was answered (and finished) while the parent still waited for a step, or
    the child was deleted: the parent has nothing to answer, and a resume finishes it."""
    with pytest.raises(RunPaused) as paused:
        wp.release_train(folder=str(tmp_path))
    train, review = family(paused.value.run_id)
    cli("runs", "delete", review.name, "--yes")
    gone = (
        f"Run '{train.name}' paused with the child run of its invocation 'review', which no "
        f"longer waits (resumed on its own, or deleted): resume the run with `branchwork runs "
        f"resume {train.name}`."
    )
    with pytest.raises(InvalidAnswerError) as refused:
        Client().answer_run(train.id, True)
    assert str(refused.value) == gone
    with pytest.raises(RunPaused) as again:  # a new child run, which asks again
        Client().resume_run(train.id)
    assert again.value.question == "Approve the candidate?"
    (_, new_review) = family(train.id)
    assert new_review.id != review.id
    assert Client().answer_run(new_review.id, True) == ("model:v17@approved", 7)
    assert str(Client().get_pipeline_run(train.id).status) == "completed"


def test_a_parent_whose_child_finished_on_its_own_takes_its_value_when_resumed(tmp_path):
    """As when the child's question is answered before the parent, still waiting for its
    other steps, has recorded its pause: the child resumes alone and finishes."""
    from branchwork.metadata.store import get_engine
    from branchwork.pipelines.answering import record_answer_to
    from branchwork.pipelines.loading import load_pipeline
    from branchwork.pipelines.submit import resume_pipeline

    with pytest.raises(RunPaused) as paused:
        wp.release_train(folder=str(tmp_path))
    train, review = family(paused.value.run_id)
    record_answer_to(get_engine(), review, False)
    assert resume_pipeline(load_pipeline(review.snapshot), review, False) == "model:v17@rejected"
    with pytest.raises(InvalidAnswerError, match="which no longer waits"):
        Client().answer_run(train.id, True)
    assert Client().resume_run(train.id) == ("model:v17@rejected", 7)
    assert [r.id for r in family(train.id)] == [train.id, review.id]
    assert wp.executions(tmp_path) == {"prepare": 1, "slow_apart": 1}
