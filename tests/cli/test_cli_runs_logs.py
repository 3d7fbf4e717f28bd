"""`branchwork runs logs RUN [STEP]` and the run metadata in `runs show`."""

from __future__ import annotations

import logging

from branchwork import Client, log_metadata, pipeline, step
from branchwork.config import StepRetryConfig


@step
def talk(n: int) -> list:
    print(f"making {n} numbers")
    logging.getLogger("cli.talk").warning("this one is logged")
    return list(range(n))


@step
def quiet(values: list) -> int:
    return len(values)


@step
def shout(values: list, count: int) -> int:
    print(f"summing {count} values")
    print("done summing")
    log_metadata({"total": sum(values), "tags": ["a", "b"]})
    return sum(values)


@pipeline
def cli_talking(n: int = 3):
    values = talk(n)
    return shout(values, quiet(values))


def latest():
    return Client().list_pipeline_runs(pipeline="cli_talking", limit=1)[0]


def test_runs_logs_prints_every_invocation_under_a_header(cli):
    cli_talking()
    run = latest()
    result = cli("runs", "logs", run.name)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "==> talk (completed) <==",
        "making 3 numbers",
        "WARNING cli.talk: this one is logged",
        "==> shout (completed) <==",
        "summing 3 values",
        "done summing",
        "(1 other invocations printed nothing.)",
    ]


def test_runs_logs_of_one_step_is_just_its_text(cli, cli_json):
    cli_talking()
    run = latest()
    result = cli("runs", "logs", run.id, "shout")
    assert result.exit_code == 0, result.output
    assert result.stdout == "summing 3 values\ndone summing\n"
    assert cli("runs", "logs", run.name, "quiet").stdout == ""
    assert cli_json("runs", "logs", run.name) == {
        "talk": "making 3 numbers\nWARNING cli.talk: this one is logged\n",
        "quiet": "",
        "shout": "summing 3 values\ndone summing\n",
    }


def test_runs_logs_of_an_unknown_invocation_is_a_one_line_error(cli, assert_error):
    cli_talking()
    run = latest()
    assert_error(
        cli("runs", "logs", run.name, "shou"), "has no invocation 'shou'", "like it: shout"
    )
    assert_error(cli("runs", "logs", run.name, "nope"), f"Run '{run.name}'", "'nope'")
    assert_error(cli("runs", "logs", "no-such-run"), "No pipeline run")


TRIES: list[int] = []


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def flaky() -> int:
    TRIES.append(1)
    print(f"try {len(TRIES)}")
    if len(TRIES) == 1:
        raise ValueError("first try fails")
    return len(TRIES)


@pipeline(enable_cache=False)
def cli_retrying():
    return flaky()


def test_runs_logs_of_a_retried_step_are_its_latest_attempts(cli, cli_json):
    TRIES.clear()
    cli_retrying()
    run = Client().list_pipeline_runs(pipeline="cli_retrying", limit=1)[0]
    assert [attempt.status for attempt in run.attempts] == ["retried", "completed"]
    result = cli("runs", "logs", run.name)
    assert result.stdout.splitlines() == ["==> flaky (completed) <==", "try 2"]
    assert cli("runs", "logs", run.name, "flaky").stdout == "try 2\n"
    assert cli_json("runs", "logs", run.name) == {"flaky": "try 2\n"}


def test_a_run_read_without_its_steps_is_the_same_run(cli):
    cli_talking()
    run = latest()
    light = Client().get_pipeline_run(run.name, include_steps=False)
    assert (light.id, light.name, light.status, light.snapshot) == (
        run.id,
        run.name,
        run.status,
        run.snapshot,
    )
    assert (light.steps, light.attempts) == ({}, ())
    assert len(run.steps) == 3


def test_runs_logs_when_nothing_was_printed(cli):
    cli_talking()
    cli_talking()  # all cached: nothing ran, nothing printed
    result = cli("runs", "logs", latest().name)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"No step of run '{latest().name}' printed or logged anything."


def test_runs_show_includes_run_metadata(cli, cli_json):
    cli_talking(n=4)
    run = latest()
    out = cli("runs", "show", run.name).stdout
    lines = out.splitlines()
    assert "Metadata" in lines
    metadata = lines[lines.index("Metadata") + 1 :]
    assert metadata[0].split() == ["shout", "total=6", 'tags=["a",', '"b"]']
    steps = {s["invocation_id"]: s for s in cli_json("runs", "show", run.name)["steps"]}
    assert steps["shout"]["run_metadata"] == {"total": 6, "tags": ["a", "b"]}
    assert steps["talk"]["run_metadata"] == {}


def test_runs_show_without_metadata_has_no_metadata_section(cli):
    @pipeline(name="cli_plain")
    def cli_plain(n: int = 2):
        return quiet(talk(n))

    cli_plain()
    run = Client().list_pipeline_runs(pipeline="cli_plain", limit=1)[0]
    assert "Metadata" not in cli("runs", "show", run.name).stdout


@step
def said(word: str) -> str:
    print(word)
    return word


@pipeline
def speaking(word: str):
    return said(word)


@pipeline
def calling_a_child():
    return speaking("hello")  # a child run: its step logs there


def test_runs_logs_of_an_invocation_that_ran_as_a_child_run_points_to_it(cli):
    """It printed nothing at all and exited 0."""
    calling_a_child()
    parent = Client().list_pipeline_runs(pipeline="calling_a_child", limit=1)[0]
    child = Client().list_pipeline_runs(pipeline="speaking", limit=1)[0]
    result = cli("runs", "logs", parent.name, "speaking")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert result.stderr == (
        f"Invocation 'speaking' ran as child run '{child.name}': `branchwork runs logs "
        f"{child.name}` shows what its steps printed.\n"
    )
    assert cli("runs", "logs", child.name, "said").stdout == "hello\n"
