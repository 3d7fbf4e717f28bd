"""`branchwork runs show|graph|list` of a run of 2 000 steps: grouped by step name (failed
invocations first), every step run with `--all`, the JSON the dashboard's API answers too."""

from __future__ import annotations

import warnings

import pytest

from branchwork import Client, pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.exceptions import PipelineRunFailedError

WORKS = 2_000
BROKEN = (700, 1400)  # the invocations work_700 and work_1400 fail, retried once


@step
def load(n: int) -> int:
    return n


@step(retry=StepRetryConfig(max_retries=1))
def work(i: int) -> int:
    if i + 1 in BROKEN:
        raise ValueError(f"partition {i} is corrupt\nsecond line")
    return i


@step
def total(values: list) -> int:
    return sum(values)


@pipeline(failure_mode="continue_on_failure")
def wide(n: int = WORKS):
    """load -> 2 000 x work (through load's value) -> total, which never starts: two works
    fail on both attempts. 2 003 step runs."""
    return total([work(i) for i in range(load(n))])


@step
def small_work(i: int) -> int:
    return i


@pipeline
def narrow(n: int = 3):
    return total([small_work(i) for i in range(load(n))])


def run_wide():
    with pytest.raises(PipelineRunFailedError, match=r"partition \d+ is corrupt"):
        wide()
    return Client().list_pipeline_runs(pipeline="wide", limit=1)[0]


def words(lines: list[str]) -> list[list[str]]:
    return [line.split() for line in lines]


def test_runs_show_of_a_big_run_is_grouped_by_step_with_the_failed_invocations_first(cli):
    run = run_wide()
    result = cli("runs", "show", run.name)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) < 60  # not one per step run
    assert ["Run", run.name] in words(lines) and ["Status", "failed"] in words(lines)
    failed = lines.index(next(line for line in lines if line.startswith("Failed:")))
    assert lines[failed].strip() == "Failed: 2 invocations"
    assert words(lines[failed + 1 : failed + 4]) == [
        ["INVOCATION", "STEP", "ATTEMPT", "ERROR"],
        ["work_700", "work", "2", "ValueError:", "partition", "699", "is", "corrupt"],
        ["work_1400", "work", "2", "ValueError:", "partition", "1399", "is", "corrupt"],
    ]
    groups = lines.index(next(line for line in lines if line.startswith("STEP ")))
    assert groups > failed + 3  # the failed invocations come first
    header, load_row, work_row = words(lines[groups : groups + 3])
    assert header == ["STEP", "INVOCATIONS", "COMPLETED", "FAILED", "P50", "P95", "MAX"]
    assert load_row[:3] == ["load", "1", "1"] and len(load_row) == 6  # no failed load
    assert work_row[:4] == ["work", str(WORKS), str(WORKS - 2), "2"] and len(work_row) == 7
    assert run.failed_step in ("work_700", "work_1400")  # whichever failed first
    assert f"Traceback of invocation {run.failed_step} (attempt 2):" in lines
    assert lines[-1] == (
        f"{WORKS + 1} invocations of 2 steps, grouped by step; `branchwork runs show "
        f"{run.name} --all` lists every step run."
    )


def test_runs_show_all_lists_every_step_run_of_a_big_run(cli):
    run = run_wide()
    result = cli("runs", "show", run.name, "--all")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    table = next(i for i, line in enumerate(lines) if line.startswith("INVOCATION"))
    assert lines[table].split() == [
        "INVOCATION", "STEP", "STATUS", "ATTEMPT", "DURATION", "CACHED", "FROM",
    ]  # fmt: skip
    end = lines.index(f"Traceback of invocation {run.failed_step} (attempt 2):") - 1
    rows = words(lines[table + 1 : end])
    assert len(rows) == WORKS + 3  # load, 2 000 works, a second attempt of two of them
    assert rows[0][:4] == ["load", "load", "completed", "1"]
    names = {"work"} | {f"work_{i}" for i in range(2, WORKS + 1)}
    assert {row[0] for row in rows[1:]} == names
    attempts = [row[2:4] for row in rows if row[0] == "work_700"]
    assert attempts == [["retried", "1"], ["failed", "2"]]
    assert sum(row[2] == "completed" for row in rows) == WORKS - 1


def test_runs_show_json_of_a_big_run_groups_its_steps_as_the_dashboard_does(cli_json):
    run = run_wide()
    data = cli_json("runs", "show", run.name)
    assert data["name"] == run.name and data["status"] == "failed"
    assert data["steps"] is None  # grouped: --all lists them
    assert {k: v for k, v in data["counts"].items() if v} == {"completed": WORKS - 1, "failed": 2}
    assert [(g["step_name"], g["total"]) for g in data["groups"]] == [("load", 1), ("work", WORKS)]
    work_group = data["groups"][1]
    assert (work_group["counts"]["completed"], work_group["counts"]["failed"]) == (WORKS - 2, 2)
    spread = work_group["duration"]
    assert 0 < spread["p50"] <= spread["p95"] <= spread["max"]
    assert data["failed"]["total"] == 2
    assert [(i["invocation"], i["attempt"], i["error"]) for i in data["failed"]["items"]] == [
        ("work_700", 2, "partition 699 is corrupt"),
        ("work_1400", 2, "partition 1399 is corrupt"),
    ]

    api = dashboard_api()
    graph = api.get(f"/api/runs/{run.name}/graph").json()
    assert data["groups"] == [
        {key: group[key] for key in data["groups"][0]} for group in graph["groups"]
    ]
    assert data["failed"] == api.get(f"/api/runs/{run.name}/failed?page_size=20").json()
    assert data["counts"] == api.get(f"/api/runs/{run.name}").json()["counts"]

    every = cli_json("runs", "show", run.name, "--all")
    assert {**every, "steps": None} == data
    assert len(every["steps"]) == WORKS + 3
    by_attempt = {(s["invocation_id"], s["attempt"]): s for s in every["steps"]}
    assert by_attempt[("work_700", 1)]["status"] == "retried"
    assert by_attempt[("work_700", 2)]["exception_message"].startswith("partition 699")
    assert by_attempt[("work_2", 1)]["outputs"].keys() == {"output"}

    listed = cli_json("runs", "list")[0]
    assert (listed["name"], listed["step_count"]) == (run.name, WORKS + 1)
    assert listed["counts"] == data["counts"]


def test_runs_show_json_of_a_small_run_lists_every_step_run_and_its_groups(cli_json):
    narrow()
    run = Client().list_pipeline_runs(pipeline="narrow", limit=1)[0]
    data = cli_json("runs", "show", run.name)
    assert [s["invocation_id"] for s in data["steps"]] == [
        "load", "small_work", "small_work_2", "small_work_3", "total",
    ]  # fmt: skip
    assert [(g["step_name"], g["total"]) for g in data["groups"]] == [
        ("load", 1),
        ("small_work", 3),
        ("total", 1),
    ]
    assert data["counts"]["completed"] == 5 and data["failed"]["total"] == 0


def test_runs_graph_of_a_big_run_draws_one_node_per_step_name(cli):
    run = run_wide()
    result = cli("runs", "graph", run.name)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"{run.name} (dynamic, failed)",
        "└── load  completed",
        f"    └── work ×{WORKS}  completed {WORKS - 2}, failed 2  (value)",
        f"{WORKS + 1} invocations, drawn one node per step name (a run of more than 1000 is).",
    ]
    mermaid = cli("runs", "graph", run.name, "--format", "mermaid").stdout
    assert f'g1["work ×{WORKS}<br/><small>completed {WORKS - 2}, failed 2</small>"]' in mermaid
    assert "g0 -.-> g1" in mermaid


def dashboard_api():
    """The dashboard's API over the test's store."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette: "use httpx2", not installed here
        from fastapi.testclient import TestClient

    from branchwork.dashboard.app import create_app

    return TestClient(create_app(), base_url="http://127.0.0.1")


def test_runs_show_cache_of_a_big_run_counts_decisions_per_step_and_verdict(cli, cli_json):
    first = run_wide()
    second = run_wide()  # every work a cache hit but the two that fail again
    result = cli("runs", "show", second.name, "--cache")
    assert result.exit_code == 0, result.output
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[:2] == [f"Run:   {second.name} (wide)", "Cache: 1999 hits, 2 misses"]
    header = lines.index(next(line for line in lines if line.startswith("STEP")))
    assert lines[header].split() == ["STEP", "CACHE", "INVOCATIONS", "FIRST", "REASON"]
    rows = [line.split(maxsplit=3) for line in lines[header + 1 : header + 4]]
    assert [row[:3] for row in rows] == [
        ["work", "hit", "1998"],
        ["work", "miss", "2"],
        ["load", "hit", "1"],
    ]
    assert rows[0][3] == f"work: reused invocation 'work' of run '{first.name}'"
    assert rows[1][3].startswith("work_700: ")
    assert lines[header + 4 :] == ["(--all lists every invocation.)"]

    every = cli("runs", "show", second.name, "--cache", "--all").stdout.splitlines()
    assert len(every) == 4 + 2001  # run, cache, blank, header and one row per invocation
    shown = cli_json("runs", "show", second.name, "--cache")  # grouped, as the table
    assert shown["steps"] is None
    assert shown["groups"][:2] == [
        {
            "step_name": "work",
            "verdict": "hit",
            "invocations": 1998,
            "first": {
                "invocation_id": "work",
                "reason": f"reused invocation 'work' of run '{first.name}'",
            },
        },
        {
            "step_name": "work",
            "verdict": "miss",
            "invocations": 2,
            "first": {"invocation_id": "work_700", "reason": rows[1][3][len("work_700: ") :]},
        },
    ]
    every = cli_json("runs", "show", second.name, "--cache", "--all")
    assert len(every["steps"]) == 2001 and every["groups"] == shown["groups"]
    decisions = Client().get_cache_decisions(second.name)
    assert list(decisions)[:2] == ["load", "work"]
    assert (len(decisions), decisions["work"].verdict, decisions["work_700"].verdict) == (
        2001,
        "hit",
        "miss",
    )
