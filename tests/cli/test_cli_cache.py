"""`branchwork runs show RUN --cache`, `branchwork cache invalidate` and `run --refresh`."""

from __future__ import annotations

import re

import pytest

from branchwork import Client

SOURCE = """
from branchwork import pipeline, step


@step
def load(n: int) -> list:
    return list(range(n))


@step
def total(values: list) -> int:
    return sum(values)


@step(enable_cache=False)
def report(value: int) -> str:
    return f"total={value}"


@pipeline
def summed(n: int = 3):
    return report(total(load(n)))
"""


@pytest.fixture
def target(pipeline_file) -> str:
    return f"{pipeline_file('summed_flow', SOURCE)}:summed"


def _run(cli, *args: str) -> str:
    result = cli("run", *args, "--no-progress")
    assert result.exit_code == 0, result.output
    return Client().list_pipeline_runs(pipeline="summed", limit=1)[0].name


def _rows(output: str) -> list[list[str]]:
    """The table's rows under its header, split into columns (reasons keep their spaces)."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("INVOCATION"))
    return [re.split(r"\s{2,}", line.strip(), maxsplit=3) for line in lines[start + 1 :]]


def test_runs_show_cache_explains_each_hit_and_miss(cli, target):
    first = _run(cli, target, "--param", "n=3")
    second = _run(cli, target, "--param", "n=4")
    third = _run(cli, target, "--param", "n=4")

    result = cli("runs", "show", second, "--cache")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"Run:   {second} (summed)"
    assert lines[1] == "Cache: 2 misses, 1 with caching off"
    assert _rows(result.stdout) == [
        [
            "load",
            "load",
            "miss",
            f"since run '{first}': argument 'n' changed: 3 → 4 (pipeline parameter 'n' "
            "changed: 3 → 4)",
        ],
        [
            "total",
            "total",
            "miss",
            f"since run '{first}': argument 'values' (the output of 'load') changed",
        ],
        [
            "report",
            "report",
            "off",
            "caching is off for this step (enable_cache=False on it, its pipeline or run)",
        ],
    ]

    result = cli("runs", "show", third, "--cache")
    assert result.stdout.splitlines()[1] == "Cache: 2 hits, 1 with caching off"
    assert _rows(result.stdout)[:2] == [
        ["load", "load", "hit", f"reused invocation 'load' of run '{second}'"],
        ["total", "total", "hit", f"reused invocation 'total' of run '{second}'"],
    ]


def test_runs_show_cache_as_json(cli, cli_json, target):
    _run(cli, target)
    run = _run(cli, target)
    shown = cli_json("runs", "show", run, "--cache")
    assert shown["run"] == run
    assert [(g["step_name"], g["verdict"], g["invocations"]) for g in shown["groups"]] == [
        ("load", "hit", 1),
        ("report", "off", 1),
        ("total", "hit", 1),
    ]
    assert [(s["invocation_id"], s["step_name"], s["verdict"]) for s in shown["steps"]] == [
        ("load", "load", "hit"),
        ("total", "total", "hit"),
        ("report", "report", "off"),
    ]
    plain = cli_json("runs", "show", run)
    assert plain["steps"][0]["cache_verdict"] == "hit"
    assert plain["steps"][0]["cache_reason"] == shown["steps"][0]["reason"]


def test_cache_invalidate_makes_the_step_compute_anew(cli, target):
    _run(cli, target)
    _run(cli, target)
    result = cli("cache", "invalidate", "total", "--pipeline", "summed")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Invalidated 1 cached result of step 'total' in pipeline 'summed'.\n"
    run = Client().get_pipeline_run(_run(cli, target))
    assert {name: s.cache_verdict for name, s in run.steps.items()} == {
        "load": "hit",
        "total": "miss",
        "report": "off",
    }
    assert run.steps["total"].cache_reason.endswith(
        ", whose result was invalidated (branchwork cache invalidate)"
    )

    result = cli("cache", "invalidate", "report")
    assert result.stdout == "Invalidated 3 cached results of step 'report'.\n"
    result = cli("cache", "invalidate", "report")
    assert result.stdout == "Step 'report' has no cached results to invalidate.\n"


SHARED = (
    SOURCE
    + """

@pipeline
def rescored(n: int = 3):
    return report(total(load(n)))
"""
)


def test_cache_invalidate_with_a_pipeline_covers_what_another_pipeline_served_it(
    cli, pipeline_file
):
    """`rescored` was served `summed`'s result: invalidating in 'rescored' said there was
    nothing to invalidate, and its next run was served the same result again."""
    module = pipeline_file("shared_flow", SHARED)
    _run(cli, f"{module}:summed")
    assert cli("run", f"{module}:rescored", "--no-progress").exit_code == 0
    result = cli("cache", "invalidate", "total", "--pipeline", "rescored")
    assert result.stdout == "Invalidated 1 cached result of step 'total' in pipeline 'rescored'.\n"

    assert cli("run", f"{module}:rescored", "--no-progress").exit_code == 0
    run = Client().list_pipeline_runs(pipeline="rescored", limit=1)[0]
    assert {name: s.cache_verdict for name, s in run.steps.items()} == {
        "load": "hit",
        "total": "miss",
        "report": "off",
    }


def test_cache_invalidate_with_a_pipeline_covers_another_pipelines_result_of_its_key(
    cli, pipeline_file
):
    """`rescored` refreshed `total` (its own, newer result of the key `summed` computed
    first): invalidating in 'rescored' left `summed`'s older result, which it was then
    served."""
    module = pipeline_file("refreshed_flow", SHARED)
    _run(cli, f"{module}:summed")
    refreshed = cli("run", f"{module}:rescored", "--refresh-step", "total", "--no-progress")
    assert refreshed.exit_code == 0, refreshed.output
    result = cli("cache", "invalidate", "total", "--pipeline", "rescored")
    assert result.stdout == (
        "Invalidated 2 cached results of step 'total' in pipeline 'rescored'.\n"
    )
    assert cli("run", f"{module}:rescored", "--no-progress").exit_code == 0
    run = Client().list_pipeline_runs(pipeline="rescored", limit=1)[0]
    assert run.steps["total"].cache_verdict == "miss"


def test_cache_invalidate_of_an_unknown_step_or_pipeline_is_one_line(cli, target, assert_error):
    _run(cli, target)
    assert_error(
        cli("cache", "invalidate", "totals"),
        "No step named 'totals' has run in any pipeline; steps that have: load, report, total.",
    )
    assert_error(
        cli("cache", "invalidate", "total", "--pipeline", "sumed"),
        "No pipeline named 'sumed' has run in this store.",
    )


def test_run_refresh_and_refresh_step(cli, target, assert_error):
    _run(cli, target)
    run = Client().get_pipeline_run(_run(cli, target, "--refresh-step", "total"))
    assert {name: s.cache_verdict for name, s in run.steps.items()} == {
        "load": "hit",
        "total": "refresh",
        "report": "off",
    }
    run = Client().get_pipeline_run(_run(cli, target, "--refresh"))
    assert {name: s.cache_verdict for name, s in run.steps.items()} == {
        "load": "refresh",
        "total": "refresh",
        "report": "off",
    }
    assert_error(
        cli("run", target, "--refresh-step", "totl"),
        "refresh: step 'totl': pipeline 'summed' uses no step named 'totl' (the steps it "
        "can reach: load, report, total)",
    )


def test_refresh_step_and_config_reach_steps_the_pipeline_calls_through_a_module(
    cli, pipeline_file, assert_error, tmp_path
):
    """`mysteps.train(x)`: refused as "uses no step named 'train' (its module defines:
    none)" by --refresh-step and a run configuration's `steps:`, though the pipeline uses it."""
    target = pipeline_file(
        "through_module",
        """
        import mysteps
        from branchwork import pipeline

        @pipeline
        def through_module(x: int = 1):
            return mysteps.train(x)
        """,
    )
    (target.parent / "mysteps.py").write_text(
        "from branchwork import step\n\n@step\ndef train(x: int) -> int:\n    return x * 2\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text("steps: {train: {enable_cache: false}}\n")
    for options in ([], ["--refresh-step", "train"], ["-c", str(config)]):
        result = cli("run", f"{target}:through_module", "--no-progress", *options)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[-1] == "Result: 2"
    verdicts = [
        run.steps["train"].cache_verdict
        for run in reversed(Client().list_pipeline_runs(pipeline="through_module"))
    ]
    assert verdicts == ["miss", "refresh", "off"]
    assert_error(
        cli("run", f"{target}:through_module", "--refresh-step", "trian"),
        "refresh: step 'trian': pipeline 'through_module' uses no step named 'trian' (the "
        "steps it can reach: train)",
    )
