"""`branchwork runs list|show|graph|delete` against runs of real pipelines."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from branchwork import Client, pipeline, step
from branchwork.artifact_stores.inline import INLINE_LIMIT, is_inline
from branchwork.exceptions import BranchworkError, PipelineRunFailedError
from branchwork.metadata import schema
from branchwork.metadata.store import get_engine
from processes import Spawned, python, python_env

PARTITIONS = 40


@step
def count_partitions(n: int) -> int:
    return n


@step
def process_partition(partition_id: int, total: int) -> int:
    return partition_id * total


@step
def merge_results(results: list) -> int:
    return sum(results)


@pipeline
def cli_fan_out(n: int = PARTITIONS):
    total = count_partitions(n)
    return merge_results([process_partition(i, total) for i in range(total)])


@step
def seed_value() -> int:
    return 1


@step
def refine(x: int) -> int:
    return x * 2


@pipeline
def cli_loop(rounds: int = 5):
    x = seed_value()
    for _ in range(rounds):
        x = refine(x)
    return x


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def total(values: list) -> int:
    return sum(values)


@step
def broken(values: list) -> int:
    raise RuntimeError("no luck")


@pipeline
def cli_sum(n: int = 4):
    return total(numbers(n))


@pipeline
def cli_broken(n: int = 3):
    return broken(numbers(n))


def latest(pipeline_name: str):
    return Client().list_pipeline_runs(pipeline=pipeline_name, limit=1)[0]


def test_runs_list_table_and_json(cli, cli_json):
    cli_sum()
    cli_sum(n=5)
    cli_fan_out(n=3)
    result = cli("runs", "list")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "RUN", "PIPELINE", "STATUS", "KIND", "STEPS", "CREATED", "DURATION", "STACK",
    ]  # fmt: skip
    assert len(lines) == 4
    fan_out = latest("cli_fan_out")
    assert lines[1].split()[:5] == [fan_out.name, "cli_fan_out", "completed", "dynamic", "5"]
    assert lines[1].split()[-1] == "default"

    runs = cli_json("runs", "list")
    assert [r["pipeline"] for r in runs] == ["cli_fan_out", "cli_sum", "cli_sum"]
    assert {"id", "name", "status", "is_dynamic", "parameters", "step_count", "created"} <= set(
        runs[0]
    )
    assert runs[1]["parameters"] == {"n": 5}
    assert runs[0]["step_count"] == 5 and runs[0]["is_dynamic"] is True
    assert {(r["stack"], r["orchestrator"]) for r in runs} == {("default", "local")}

    assert [r["parameters"] for r in cli_json("runs", "list", "--pipeline", "cli_sum")] == [
        {"n": 5},
        {"n": 4},
    ]
    assert len(cli_json("runs", "list", "--limit", "1")) == 1


TEAM_SCRIPT = """
from branchwork import pipeline, step


@step
def double(x: int) -> int:
    return 2 * x


@pipeline
def team_double(x: int = 3):
    return double(x)


if __name__ == "__main__":
    team_double()
"""


def test_a_run_names_the_registered_stack_that_started_it(cli, cli_json, tmp_path, branchwork_home):
    """`python script.py` while stack "team" is active: runs list, runs show and the Client
    name the stack, with its orchestrator's flavor beside it."""
    cli_sum()  # on the default stack
    assert cli("orchestrator", "register", "procs", "--flavor", "local_process").exit_code == 0
    assert cli("stack", "register", "team", "--orchestrator", "procs").exit_code == 0
    assert cli("stack", "set", "team").exit_code == 0
    script = tmp_path / "team_script.py"
    script.write_text(TEAM_SCRIPT)
    with Spawned(python(str(script)), env=python_env(branchwork_home), cwd=tmp_path) as process:
        code, out, err = process.wait(120)
    assert code == 0, out + err

    listed = cli_json("runs", "list")
    assert [(r["pipeline"], r["stack"], r["orchestrator"]) for r in listed] == [
        ("team_double", "team", "local_process"),
        ("cli_sum", "default", "local"),
    ]
    run = latest("team_double")
    assert (run.stack, run.orchestrator, run.status) == ("team", "local_process", "completed")
    assert cli_json("runs", "show", run.name)["stack"] == "team"
    table = cli("runs", "list").stdout.splitlines()
    assert table[1].split()[0] == run.name and table[1].split()[-1] == "team"
    shown = cli("runs", "show", run.name).stdout.splitlines()
    assert ["Stack", "team"] in [line.split() for line in shown]
    assert ["Orchestrator", "local_process"] in [line.split() for line in shown]


def test_runs_list_without_runs(cli):
    result = cli("runs", "list")
    assert result.exit_code == 0
    assert result.stdout.strip() == "No runs yet."


def test_runs_show_table_has_fields_parameters_and_one_row_per_step_run(cli):
    cli_sum(n=4)
    first = latest("cli_sum")
    cli_sum(n=4)
    second = latest("cli_sum")
    result = cli("runs", "show", second.name)
    assert result.exit_code == 0, result.output
    out = result.stdout
    for fragment in (second.name, second.id, "cli_sum", "completed", '{"n": 4}', "Dynamic"):
        assert fragment in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert rows["INVOCATION"] == [
        "INVOCATION",
        "STEP",
        "STATUS",
        "ATTEMPT",
        "DURATION",
        "CACHED",
        "FROM",
    ]
    assert rows["numbers"][1:4] == ["numbers", "cached", "1"]
    assert rows["numbers"][-1] == first.name  # same invocation id: the run says it all
    assert rows["total"][-1] == first.name
    assert f"{second.steps['total'].output.id}  (builtins.int)" in out  # what it returned


def test_runs_show_json(cli_json):
    cli_fan_out(n=3)
    run = latest("cli_fan_out")
    data = cli_json("runs", "show", run.id)  # by id as well as by name
    assert data["name"] == run.name
    assert data["status"] == "completed"
    assert data["is_dynamic"] is True
    assert data["parameters"] == {"n": 3}
    assert (data["stack"], data["orchestrator"]) == ("default", "local")
    assert len(data["outputs"]) == 1
    steps = {s["invocation_id"]: s for s in data["steps"]}
    assert set(steps) == {
        "count_partitions",
        "process_partition",
        "process_partition_2",
        "process_partition_3",
        "merge_results",
    }
    merge = steps["merge_results"]
    assert {"step", "status", "attempt", "duration_seconds", "cached_from", "outputs"} <= set(merge)
    assert merge["step"] == "merge_results" and merge["attempt"] == 1
    assert sorted(merge["parents"]) == [
        "process_partition",
        "process_partition_2",
        "process_partition_3",
    ]
    assert steps["process_partition_2"]["parents"] == ["count_partitions"]
    assert merge["cached_from"] is None


def test_runs_show_failed_run(cli, cli_json):
    with pytest.raises(PipelineRunFailedError):
        cli_broken()
    run = latest("cli_broken")
    data = cli_json("runs", "show", run.name)
    assert data["status"] == "failed"
    assert data["failed_step"] == "broken"
    assert {s["invocation_id"]: s["status"] for s in data["steps"]}["broken"] == "failed"
    out = cli("runs", "show", run.name).stdout
    assert "RuntimeError: no luck" in out


def test_runs_show_prints_the_failed_steps_traceback_after_the_step_table(cli, cli_json):
    with pytest.raises(PipelineRunFailedError):
        cli_broken()
    run = latest("cli_broken")
    lines = cli("runs", "show", run.name).stdout.splitlines()
    table = next(i for i, line in enumerate(lines) if line.startswith("INVOCATION"))
    header = lines.index("Traceback of invocation broken:")
    assert header > table + 2  # after the rows of numbers and broken
    traceback = lines[header + 1 :]
    assert traceback[0] == "Traceback (most recent call last):"
    assert '    raise RuntimeError("no luck")' in traceback
    assert traceback[-1] == "RuntimeError: no luck"

    data = cli_json("runs", "show", run.name)
    steps = {s["invocation_id"]: s for s in data["steps"]}
    assert 'raise RuntimeError("no luck")' in steps["broken"]["traceback"]
    assert steps["numbers"]["traceback"] is None
    assert data["traceback"].rstrip().endswith("RuntimeError: no luck")


@pipeline
def cli_body_fails(n: int = 3):
    values = numbers(n)
    if len(values) < 10:
        raise ValueError(f"the body wants 10 values, got {len(values)}")
    return total(values)


def test_runs_show_prints_the_pipeline_bodys_traceback_when_it_raised(cli, cli_json):
    with pytest.raises(PipelineRunFailedError):
        cli_body_fails()
    run = latest("cli_body_fails")
    out = cli("runs", "show", run.name).stdout
    assert "Traceback of invocation" not in out
    body = out[out.index("Traceback of the pipeline body (cli_body_fails):") :]
    assert "raise ValueError(" in body
    assert body.rstrip().endswith("ValueError: the body wants 10 values, got 3")
    data = cli_json("runs", "show", run.name)
    assert data["failed_step"] is None
    assert "ValueError: the body wants 10 values, got 3" in data["traceback"]


def test_runs_graph_groups_a_fan_out_into_one_line(cli):
    cli_fan_out()
    run = latest("cli_fan_out")
    result = cli("runs", "graph", run.name)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{run.name} (dynamic, completed)"
    assert [line.strip("│ ") for line in lines[1:]] == [
        "└── count_partitions  completed",
        f"└── process_partition ×{PARTITIONS}  completed",
        "└── merge_results  completed",
    ]
    # each level sits under the previous one
    indents = [line.index("└") for line in lines[1:]]
    assert indents == sorted(indents) and len(set(indents)) == 3


def test_runs_graph_folds_a_sequential_loop(cli):
    cli_loop(rounds=5)
    result = cli("runs", "graph", latest("cli_loop").name)
    assert result.exit_code == 0, result.output
    body = [line.strip("│ ") for line in result.stdout.splitlines()[1:]]
    assert body == ["└── seed_value  completed", "└── refine ×5 in sequence  completed"]


def test_runs_graph_of_a_cached_rerun_shows_cached(cli):
    cli_sum()
    cli_sum()
    out = cli("runs", "graph", latest("cli_sum").name).stdout
    assert "numbers  cached" in out and "total  cached" in out


def count_rows(table, column, value) -> int:
    with get_engine().connect() as conn:
        query = select(func.count()).select_from(table).where(column == value)
        return conn.execute(query).scalar_one()


def test_runs_delete_removes_rows_but_keeps_versions_another_run_uses(cli, cli_json):
    cli_sum(n=4)
    first = latest("cli_sum")
    cli_sum(n=4)  # served from the first run's cache: links the same artifact versions
    second = latest("cli_sum")
    shared = second.steps["total"].output.id
    assert shared == first.steps["total"].output.id

    result = cli("runs", "delete", first.name, "--yes")
    assert result.exit_code == 0, result.output
    assert f"Deleted run '{first.name}': 2 step runs, 0 artifact versions." in result.stdout
    assert "Kept 2 artifact versions" in result.stdout
    with pytest.raises(BranchworkError, match="No pipeline run"):
        Client().get_pipeline_run(first.name)
    assert count_rows(schema.step_run, schema.step_run.c.run_id, first.id) == 0
    assert (
        count_rows(schema.pipeline_snapshot, schema.pipeline_snapshot.c.id, first.snapshot.id) == 0
    )
    # the cached run still loads its value, and its "cached from" shows the origin is gone
    assert Client().get_pipeline_run(second.name).load_output() == 6
    assert cli("artifacts", "load", shared).stdout.strip() == "6"
    assert "(deleted)" in cli("runs", "show", second.name).stdout

    result = cli("runs", "delete", second.name, "--yes")
    assert result.exit_code == 0, result.output
    assert "2 artifact versions" in result.stdout
    assert count_rows(schema.artifact_version, schema.artifact_version.c.id, shared) == 0
    assert cli_json("artifacts", "list") == []


def test_runs_delete_leaves_files_unless_purged(cli):
    # a list of INLINE_LIMIT numbers is a file in the artifact store; the total is inline
    cli_sum(n=INLINE_LIMIT)
    kept = latest("cli_sum")
    kept_folder = Path(kept.steps["numbers"].output.uri)
    assert cli("runs", "delete", kept.name, "-y").exit_code == 0
    assert kept_folder.is_dir()

    cli_sum(n=INLINE_LIMIT + 1)
    purged = latest("cli_sum")
    folder = Path(purged.steps["numbers"].output.uri)
    assert folder.is_dir() and is_inline(purged.steps["total"].output.uri)
    result = cli("runs", "delete", purged.name, "-y", "--purge-artifacts")
    assert result.exit_code == 0, result.output
    assert "Removed 1 artifact folders." in result.stdout  # the total went with its row
    assert not folder.exists() and kept_folder.is_dir()
    assert Client().list_artifact_versions(pipeline="cli_sum") == []


def test_runs_delete_asks_first(cli):
    cli_sum()
    run = latest("cli_sum")
    declined = cli("runs", "delete", run.name, input="n\n")
    assert declined.exit_code == 1
    steps = len(Client().get_pipeline_run(run.name).attempts)
    assert f"Delete run '{run.name}' ({steps} step runs)? [y/N]" in declined.output
    assert Client().get_pipeline_run(run.name).id == run.id
    accepted = cli("runs", "delete", run.name, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    with pytest.raises(BranchworkError):
        Client().get_pipeline_run(run.name)


@pytest.mark.parametrize("command", ["show", "graph", "logs", "resume", "delete"])
def test_a_missing_run_is_a_one_line_error(cli, assert_error, command):
    result = cli("runs", command, "no-such-run")
    assert assert_error(result) == (
        "Error: No pipeline run with id or name 'no-such-run', nor one starting with it; "
        "`branchwork runs list` shows the runs."
    )


def test_an_unfinished_run_is_deleted_only_with_force(cli, assert_error):
    from branchwork.metadata.runs import create_placeholder_run

    _, run_id = create_placeholder_run(
        get_engine(),
        pipeline_name="cli_sum",
        is_dynamic=False,
        source="tests:cli_sum",
        source_file=None,
        import_path=[],
        working_dir=".",
        parameters={},
        spec={},
        step_configurations=[{"name": "numbers", "step_name": "numbers", "config": "{}"}],
        orchestrator="local",
        stack="default",
    )
    assert_error(cli("runs", "delete", run_id, "--yes"), "is initializing", "force")
    result = cli("runs", "delete", run_id, "--yes", "--force")
    assert result.exit_code == 0, result.output
    with pytest.raises(BranchworkError):
        Client().get_pipeline_run(run_id)
    assert count_rows(schema.step_configuration, schema.step_configuration.c.name, "numbers") == 0


@step
def left(values: list) -> int:
    return len(values)


@step
def right(values: list) -> int:
    return sum(values)


@step
def combine(a: int, b: int) -> int:
    return a + b


@pipeline
def cli_diamond(n: int = 3):
    values = numbers(n)
    return combine(left(values), right(values))


def test_runs_graph_names_every_parent_of_a_join(cli):
    cli_diamond()
    run = latest("cli_diamond")
    out = cli("runs", "graph", run.name).stdout
    assert out.splitlines()[0] == f"{run.name} (static, completed)"
    assert "combine  completed  (also after: left)" in out
    body = [line.strip("│ ") for line in out.splitlines()[1:]]
    assert body == [
        "└── numbers  completed",
        "├── left  completed",
        "└── right  completed",
        "└── combine  completed  (also after: left)",
    ]


# ---- run references ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "graph", "logs"])
def test_latest_and_latest_of_a_pipeline_name_runs(cli, command):
    cli_sum()
    summed = latest("cli_sum")
    cli_fan_out(n=2)
    fanned = latest("cli_fan_out")
    newest = cli("runs", command, "latest")
    assert newest.exit_code == 0, newest.output
    of_sum = cli("runs", command, "latest:cli_sum")
    assert of_sum.exit_code == 0, of_sum.output
    by_name = {name: cli("runs", command, name).stdout for name in (fanned.name, summed.name)}
    assert newest.stdout == by_name[fanned.name]
    assert of_sum.stdout == by_name[summed.name]


def shortest_prefix(of: str, other: str) -> str:
    """The shortest prefix of `of` that `other` does not start with."""
    return of[: 1 + next(i for i, (x, y) in enumerate(zip(of, other)) if x != y)]


def test_a_unique_prefix_of_a_name_or_id_names_a_run(cli_json):
    cli_sum(n=1)
    first = latest("cli_sum")
    cli_sum(n=2)
    second = latest("cli_sum")
    by_name = shortest_prefix(second.name, first.name)
    by_id = shortest_prefix(second.id, first.id)
    assert cli_json("runs", "show", by_name)["id"] == second.id
    assert cli_json("runs", "show", by_id)["id"] == second.id
    diff = cli_json("runs", "diff", shortest_prefix(first.name, second.name), by_id)
    assert (diff["run_a"], diff["run_b"]) == (first.name, second.name)


def test_an_ambiguous_prefix_lists_the_runs_it_matches(cli, assert_error):
    cli_sum(n=1)
    cli_broken_quietly()
    older, newer = Client().list_pipeline_runs(limit=2)[::-1]
    error = assert_error(cli("runs", "show", "cli_"))
    assert error == (
        "Error: Run reference 'cli_' is ambiguous: 2 runs start with it, newest first: "
        f"{newer.name} (cli_broken, failed), {older.name} (cli_sum, completed). "
        "Give more of the name or id."
    )


def cli_broken_quietly() -> None:
    with pytest.raises(PipelineRunFailedError):
        cli_broken()


def test_an_ambiguous_prefix_lists_at_most_five_runs(cli, assert_error):
    for n in range(6):
        cli_sum(n=n)
    names = [run.name for run in Client().list_pipeline_runs(limit=5)]
    error = assert_error(cli("runs", "graph", "cli_sum"))
    assert "more than 5 runs start with it, newest first: " in error
    assert ", ".join(f"{name} (cli_sum, completed)" for name in names) in error


@pipeline
def clixsum(n: int = 2):
    return total(numbers(n))


def test_a_prefix_is_literal_text_not_a_like_pattern(cli, cli_json, assert_error):
    clixsum()
    cli_sum()
    summed = latest("cli_sum")
    assert cli_json("runs", "show", "cli_sum")["id"] == summed.id  # "_" is not a wildcard
    for pattern in ("%", "cli%", "CLI_SUM"):  # nor "%"; and case counts, on SQLite too
        assert_error(cli("runs", "show", pattern), f"No pipeline run with id or name {pattern!r}")


def test_latest_of_a_pipeline_without_runs(cli, assert_error):
    assert_error(cli("runs", "show", "latest"), "There are no pipeline runs yet.")
    cli_sum()
    assert (
        assert_error(cli("runs", "show", "latest:nope"))
        == "Error: No runs of pipeline 'nope'; `branchwork runs list` shows the runs."
    )


# ---- runs list --status --------------------------------------------------------------------


def test_runs_list_filters_by_status(cli, cli_json):
    cli_sum(n=1)
    cli_broken_quietly()
    cli_fan_out(n=1)

    def listed(*args: str) -> list[tuple[str, str]]:
        return [(r["pipeline"], r["status"]) for r in cli_json("runs", "list", *args)]

    assert listed("--status", "failed") == [("cli_broken", "failed")]
    both = [("cli_fan_out", "completed"), ("cli_broken", "failed"), ("cli_sum", "completed")]
    assert listed("--status", "failed,completed") == both
    assert listed("--status", "completed", "--status", "failed") == both
    assert listed("--status", "completed", "--pipeline", "cli_sum") == [("cli_sum", "completed")]
    assert listed("--status", "completed", "--limit", "1") == [("cli_fan_out", "completed")]

    result = cli("runs", "list", "--status", "failed", "--pipeline", "cli_sum")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "No runs of pipeline 'cli_sum' with status failed."
    table = cli("runs", "list", "--status", "FAILED").stdout.splitlines()
    assert len(table) == 2 and table[1].split()[1:3] == ["cli_broken", "failed"]


def test_an_unknown_status_is_a_usage_error_naming_the_statuses(cli):
    for asked in ("completed,done", "cached"):  # a step run's status only: no run has it
        result = cli("runs", "list", "--status", asked)
        assert result.exit_code == 2
        message = " ".join(result.stderr.replace("│", " ").split())
        wrong = asked.split(",")[-1]
        assert (
            f"Invalid value for --status: '{wrong}' is not a run status; use one of "
            "initializing, running, completed, failed, stopped, paused." in message
        )


@step
def noted(a: float) -> float:
    from branchwork import log_metadata

    log_metadata({"loss": float("nan"), "best": float("-inf")})
    return a


@pipeline
def not_finite(a: float):
    return noted(a)


def strict_json(text: str) -> Any:
    """Parsed as JSON proper: NaN and Infinity, which Python's json accepts, refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_json_when_values_are_not_finite(cli):
    """A NaN parameter and infinite metadata printed `NaN` and `-Infinity`, which jq and
    JavaScript refuse: they print as null, as the dashboard's API gives them."""
    not_finite(a=float("nan"))
    run = not_finite.last_run
    listed = strict_json(cli("runs", "list", "-o", "json").stdout)
    assert listed[0]["parameters"] == {"a": None}
    for args in (
        ["runs", "show", run.name, "-o", "json"],
        ["runs", "show", run.name, "--all", "-o", "json"],
    ):
        shown = strict_json(cli(*args).stdout)
        assert shown["parameters"] == {"a": None}
        assert shown["steps"][0]["run_metadata"] == {"loss": None, "best": None}


STOPPABLE_SCRIPT = """
import pathlib, time
from branchwork import pipeline, step

@step(max_concurrency=1, enable_cache=False)
def slow(i: int) -> int:
    pathlib.Path(f"started-{i}").touch()
    time.sleep(1.5 if i == 0 else 600)
    return i

@pipeline
def stoppable():
    return [slow(i) for i in range(3)]

if __name__ == "__main__":
    stoppable()
"""


@pytest.mark.parametrize("abandon", [False, True])
def test_runs_stop_stops_a_run_its_process_runs(cli, branchwork_home, tmp_path, abandon):
    """`branchwork runs stop` (named in the docs and errors, but no such command): a graceful
    stop lets the running step finish and starts no other; --abandon gives it up."""
    script = tmp_path / "stoppable.py"
    script.write_text(STOPPABLE_SCRIPT)
    with Spawned(python(str(script)), env=python_env(branchwork_home), cwd=tmp_path) as process:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started-0").exists():
            assert time.monotonic() < deadline and process.process.poll() is None
            time.sleep(0.05)
        run = Client().get_pipeline_run("latest", include_steps=False)
        result = cli("runs", "stop", run.name, *(["--abandon"] if abandon else []))
        assert result.exit_code == 0, result.output
        then = "giving up its running steps" if abandon else "once its running steps finish"
        assert result.stdout.strip() == (
            f"Asked run '{run.name}' to stop: it starts no new step and is recorded stopped "
            f"{then}. `branchwork runs resume {run.name}` finishes it later."
        )
        code, _, err = process.wait(60)
    assert code != 0 and "stopped" in err
    stopped = Client().get_pipeline_run(run.id)
    assert stopped.status == "stopped"
    assert str(stopped.steps["slow"].status) == ("stopped" if abandon else "completed")
    assert sorted(p.name for p in tmp_path.glob("started-*")) == ["started-0"]
    again = cli("runs", "stop", run.name)
    assert again.exit_code == 1
    assert f"Run '{run.name}' is stopped: only a running run can be stopped." in again.stderr
