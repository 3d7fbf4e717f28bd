"""`branchwork stack|orchestrator|artifact-store ...` and `branchwork run --stack`."""

from __future__ import annotations

import os

from branchwork import Client
from branchwork.stack.stacks import list_stacks

PIPELINE = """
import os

from branchwork import pipeline, step


@step
def process_id() -> int:
    if os.environ.get("WHERE_FAILS"):
        raise RuntimeError("asked to fail")
    return os.getpid()


@pipeline
def where(tag: str = "a"):
    return process_id()
"""


def test_orchestrator_register_and_list(cli, cli_json, assert_error):
    result = cli(
        "orchestrator", "register", "lp", "--flavor", "local_process",
        "--config", "max_workers=2", "-c", "failure_mode=fail_fast",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "Registered orchestrator 'lp' (flavor local_process) with max_workers=2, "
        "failure_mode='fail_fast'."
    )
    listed = cli_json("orchestrator", "list")
    assert [(o["name"], o["flavor"], o["config"]) for o in listed] == [
        ("default", "local", {}),
        ("lp", "local_process", {"max_workers": 2, "failure_mode": "fail_fast"}),  # 2 is JSON
    ]
    table = cli("orchestrator", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "FLAVOR", "SETTINGS"]
    assert table[2].split()[:2] == ["lp", "local_process"]
    assert "local_process" in cli("orchestrator", "flavors").stdout

    assert_error(
        cli("orchestrator", "register", "x", "--flavor", "local", "-c", "cpu_count=many"),
        "setting 'cpu_count' = 'many' is invalid",
    )
    assert_error(
        cli("orchestrator", "register", "x", "--flavor", "local", "-c", "workers=2"),
        "unknown setting 'workers'",
        "max_workers",
    )
    assert_error(
        cli("orchestrator", "register", "x", "--flavor", "kubernetes"),
        "Unknown orchestrator flavor 'kubernetes'",
    )
    assert_error(cli("orchestrator", "register", "lp", "--flavor", "local"), "already registered")
    assert cli("orchestrator", "register", "x", "--flavor", "local", "-c", "oops").exit_code == 2


def test_a_setting_of_the_wrong_type_is_refused_naming_the_type_and_the_value(
    cli, cli_json, assert_error
):
    line = assert_error(
        cli("orchestrator", "register", "x", "--flavor", "local", "--config", "max_workers=abc")
    )
    assert line == (
        "Error: Orchestrator 'x' (flavor 'local'): setting 'max_workers' = 'abc' is invalid: "
        "expected int | None."
    )
    # settings are JSON values, checked as they are: true is not a CPU count (nor 1.0)
    assert_error(
        cli("orchestrator", "register", "x", "--flavor", "local", "-c", "cpu_count=true"),
        "setting 'cpu_count' = True is invalid: expected float | None.",
    )
    assert [o["name"] for o in cli_json("orchestrator", "list")] == ["default"]


def test_artifact_store_register_and_list(cli, cli_json, tmp_path, assert_error):
    result = cli("artifact-store", "register", "disk", "--path", str(tmp_path / "store"))
    assert result.exit_code == 0, result.output
    assert f"at {tmp_path / 'store'}" in result.stdout
    result = cli("artifact-store", "register", "mem", "--url", "memory://cli-tests")
    assert result.exit_code == 0, result.output
    listed = {s["name"]: s for s in cli_json("artifact-store", "list")}
    assert listed["disk"]["flavor"] == "local" and listed["mem"]["flavor"] == "fsspec"
    assert listed["mem"]["location"] == "memory://cli-tests"
    assert listed["default"]["builtin"] is True
    assert (
        cli("artifact-store", "register", "both", "--path", "x", "--url", "s3://y").exit_code == 2
    )
    assert cli("artifact-store", "register", "neither").exit_code == 2
    assert_error(cli("artifact-store", "register", "bad", "--url", "nope"), "is not a URL")
    assert assert_error(cli("artifact-store", "register", " ", "--url", "memory://x")) == (
        "Error: An artifact store needs a non-empty name."
    )
    assert assert_error(cli("orchestrator", "register", "", "--flavor", "local")) == (
        "Error: An orchestrator needs a non-empty name."
    )
    # a URL given as a path: registered as the local folder `s3:/bucket/x` before
    line = assert_error(cli("artifact-store", "register", "s3path", "--path", "s3://bucket/x"))
    assert line == (
        "Error: Artifact store 's3path': 's3://bucket/x' is a URL; register it with a URL instead."
    )
    assert "s3path" not in {s["name"] for s in cli_json("artifact-store", "list")}


def test_stack_register_list_set_describe_delete(cli, cli_json, tmp_path, assert_error):
    cli("orchestrator", "register", "lp", "--flavor", "local_process")
    cli("artifact-store", "register", "disk", "--path", str(tmp_path / "store"))
    result = cli("stack", "register", "proc", "--orchestrator", "lp", "--artifact-store", "disk")
    assert result.exit_code == 0, result.output
    assert "Registered stack 'proc': orchestrator 'lp' (local_process)" in result.stdout
    assert (
        cli("stack", "register", "light", "--orchestrator", "lp").exit_code == 0
    )  # default artifacts

    table = cli("stack", "list").stdout.splitlines()
    assert table[0].split() == ["ACTIVE", "STACK", "ORCHESTRATOR", "ARTIFACT", "STORE"]
    assert table[1].split() == ["*", "default", "default", "(local)", "default", "(local)"]
    assert table[3].split() == ["proc", "lp", "(local_process)", "disk", "(local)"]

    result = cli("stack", "set", "proc")
    assert result.exit_code == 0 and result.stdout.strip() == "Active stack: proc"
    stacks = cli_json("stack", "list")
    assert [(s["name"], s["active"]) for s in stacks] == [
        ("default", False),
        ("light", False),
        ("proc", True),
    ]
    described = cli_json("stack", "describe")  # the active one
    assert described["name"] == "proc"
    assert described["artifact_store"]["location"] == str(tmp_path / "store")
    out = cli("stack", "describe", "light").stdout
    assert "lp (local_process)" in out and "Active" in out and "no" in out

    assert_error(cli("stack", "delete", "proc"), "is the active stack")
    assert_error(cli("orchestrator", "delete", "lp"), "used by stacks 'light', 'proc'")
    assert_error(cli("stack", "delete", "default"), "cannot be deleted")
    assert_error(cli("stack", "set", "ghost"), "No stack named 'ghost'")
    assert_error(
        cli("stack", "register", "x", "--orchestrator", "ghost"), "No orchestrator named 'ghost'"
    )
    cli("stack", "set", "default")
    assert cli("stack", "delete", "proc").stdout.strip() == "Deleted stack 'proc'."
    assert cli("artifact-store", "delete", "disk").exit_code == 0
    assert [s.name for s in list_stacks()] == ["default", "light"]


def test_run_with_stack_runs_on_that_stack(cli, pipeline_file, assert_error):
    target = pipeline_file("stacked", PIPELINE)
    cli("orchestrator", "register", "lp", "--flavor", "local_process", "-c", "max_workers=2")
    cli("stack", "register", "proc", "--orchestrator", "lp")

    result = cli("run", f"{target}:where", "--stack", "proc")
    assert result.exit_code == 0, result.output
    run = Client().list_pipeline_runs(pipeline="where", limit=1)[0]
    assert run.orchestrator == "local_process"
    assert f"Run:    {run.name}" in result.stdout
    assert int(result.stdout.split("Result: ")[1]) != os.getpid()

    result = cli("run", f"{target}:where", "-p", "tag=b")  # the active stack: default
    assert result.exit_code == 0, result.output
    assert Client().list_pipeline_runs(pipeline="where", limit=1)[0].orchestrator == "local"

    cli("stack", "set", "proc")  # now the active stack is used without --stack
    result = cli("run", f"{target}:where", "-p", "tag=c")
    assert result.exit_code == 0, result.output
    assert Client().list_pipeline_runs(pipeline="where", limit=1)[0].orchestrator == "local_process"

    assert_error(cli("run", f"{target}:where", "--stack", "ghost"), "No stack named 'ghost'")


def test_a_run_resumed_on_another_stack_names_that_stack(
    cli, pipeline_file, monkeypatch, assert_error
):
    """It ran there, yet kept naming the stack and orchestrator it first ran on."""
    target = pipeline_file("stacked", PIPELINE)
    cli("orchestrator", "register", "lp", "--flavor", "local_process")
    cli("stack", "register", "proc", "--orchestrator", "lp")
    monkeypatch.setenv("WHERE_FAILS", "1")
    assert_error(cli("run", f"{target}:where"), "asked to fail")
    monkeypatch.delenv("WHERE_FAILS")
    result = cli("runs", "resume", "latest", "--stack", "proc")
    assert result.exit_code == 0, result.output
    run = Client().get_pipeline_run("latest")
    assert (run.status, run.stack, run.orchestrator) == ("completed", "proc", "local_process")
    assert run.orchestrator_run_id == f"local_process-{run.id}"
    assert run.load_output() != os.getpid()


def test_help_lists_the_stack_and_graph_commands(cli):
    out = cli("--help").stdout
    for name in ("graph", "stack", "orchestrator", "artifact-store"):
        assert name in out
    runs_help = cli("runs", "--help").stdout
    for name in ("logs", "graph", "diff", "resume"):
        assert name in runs_help


def test_run_with_a_yaml_configuration(cli, pipeline_file, tmp_path, assert_error):
    target = pipeline_file("configured", PIPELINE)
    config = tmp_path / "run.yaml"
    config.write_text("parameters: {tag: from-yaml}\nenable_cache: false\n")
    result = cli("run", f"{target}:where", "--config", str(config))
    assert result.exit_code == 0, result.output
    run = Client().list_pipeline_runs(pipeline="where", limit=1)[0]
    assert run.parameters == {"tag": "from-yaml"}
    config.write_text("parameters: {tag: x}\nbogus_key: 1\n")
    assert_error(cli("run", f"{target}:where", "-c", str(config)), "run.yaml", "bogus_key")
