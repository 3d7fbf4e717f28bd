"""Cache keys as users meet them: what makes a step run again, what does not, and the reason
recorded with every step run (docs/caching.md).

Edits to code are made the way users make them: the project's files change on disk and the
pipeline runs again as `python flow.py` in a new process (code hashes are computed once per
process). Everything else runs in this process against the test's store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import deque
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from branchwork import Client, FileInput, pipeline, step
from branchwork.config import CachePolicy
from branchwork.exceptions import BranchworkError, ConfigurationError
from processes import python_env

# ---- a project edited between runs, each run a new process ---------------------------------

HELPERS = '''
FACTOR = 2


def double(x):
    """Twice x."""
    return scale(x) * 1


def scale(x):
    return x * FACTOR
'''

FLOW = """
import json
from branchwork import FileInput, pipeline, step
from helpers import double


@step
def rows(path: FileInput) -> int:
    with open(path) as table:
        return len(table.read().splitlines())


@step
def doubled(x: int) -> int:
    return double(x)


@pipeline
def flow():
    return doubled(rows("data.csv"))


if __name__ == "__main__":
    value = flow()
    steps = flow.last_run.steps
    print(json.dumps({"value": value, "run": flow.last_run.name, "steps": {
        name: [str(s.status), s.cache_verdict, s.cache_reason] for name, s in steps.items()
    }}))
"""


@pytest.fixture
def project(tmp_path: Path):
    """A project folder (flow.py, helpers.py, data.csv) and `run()`: run flow.py in a new
    process with the test's store; returns {"value": ..., "steps": {name: [status, verdict,
    reason]}}."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "flow.py").write_text(FLOW)
    (folder / "helpers.py").write_text(HELPERS)
    (folder / "data.csv").write_text("a,b\n1,2\n")
    env = python_env(tmp_path / "home")

    def run() -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "flow.py"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first = run()
    assert first["value"] == 4
    assert first["steps"]["doubled"] == ["completed", "miss", "first run of this pipeline"]
    return folder, run


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_an_unchanged_project_is_served_from_the_cache_with_the_run_it_reused(project):
    _, run = project
    second = run()
    assert second["value"] == 4
    status, verdict, reason = second["steps"]["doubled"]
    assert (status, verdict) == ("cached", "hit")
    assert reason.startswith("reused invocation 'doubled' of run 'flow-")


def test_editing_a_helper_in_another_module_reruns_the_step_and_names_the_helper(project):
    folder, run = project
    all_hits = run()  # the reason compares with this run, whose steps were all hits
    assert all_hits["steps"]["doubled"][:2] == ["cached", "hit"]
    _edit(folder / "helpers.py", "return x * FACTOR", "return x * FACTOR + 1")
    third = run()
    assert third["value"] == 5
    assert third["steps"]["rows"][:2] == ["cached", "hit"]
    status, verdict, reason = third["steps"]["doubled"]
    assert (status, verdict) == ("completed", "miss")
    assert reason == f"since run '{all_hits['run']}': code changed: helpers:scale"


def test_editing_a_module_constant_a_helper_reads_reruns_the_step(project):
    folder, run = project
    _edit(folder / "helpers.py", "FACTOR = 2", "FACTOR = 5")
    second = run()
    assert second["value"] == 10
    status, verdict, reason = second["steps"]["doubled"]
    assert (status, verdict) == ("completed", "miss")
    assert reason.endswith(": code changed: helpers:FACTOR")


def test_comments_docstrings_and_formatting_are_not_changes(project):
    folder, run = project
    _edit(folder / "helpers.py", '"""Twice x."""', '"""Twice x, as documented."""  # why')
    _edit(folder / "helpers.py", "return x * FACTOR", "return (\n        x * FACTOR\n    )  # ok")
    second = run()
    assert second["value"] == 4
    assert {name: s[:2] for name, s in second["steps"].items()} == {
        "rows": ["cached", "hit"],
        "doubled": ["cached", "hit"],
    }


def test_a_changed_csv_reruns_the_step_that_reads_it_and_says_so(project):
    folder, run = project
    (folder / "data.csv").write_text("a,b\n1,2\n3,4\n")
    second = run()
    assert second["value"] == 6
    status, verdict, reason = second["steps"]["rows"]
    assert (status, verdict) == ("completed", "miss")
    assert reason.endswith(": input file 'data.csv' changed")
    assert second["steps"]["doubled"][:2] == ["completed", "miss"]
    assert second["steps"]["doubled"][2].endswith(": argument 'x' (the output of 'rows') changed")


def test_a_changed_default_argument_of_the_step_is_a_change_to_the_step(project):
    folder, run = project
    _edit(
        folder / "flow.py", "def doubled(x: int) -> int:", "def doubled(x: int, y: int = 0) -> int:"
    )
    _edit(folder / "flow.py", "return double(x)", "return double(x) + y")
    assert run()["steps"]["doubled"][:2] == ["completed", "miss"]
    _edit(folder / "flow.py", "y: int = 0", "y: int = 10")
    third = run()
    assert third["value"] == 14  # never the cached 4: a new run is never refused either
    status, verdict, reason = third["steps"]["doubled"]
    assert (status, verdict) == ("completed", "miss")
    assert "argument 'y' changed: 0 → 10" in reason


# ---- inputs from outside: FileInput, cache_key_fn ------------------------------------------


@step
def line_count(path: FileInput) -> int:
    with open(path) as table:
        return len(table.read().splitlines())


@pipeline
def count_lines(path: str):
    return line_count(path)


@step
def read_as_text(path: str) -> str:
    with open(path) as file:
        return file.read()


@pipeline
def read_marked(path: str):
    return read_as_text(FileInput(path))


def statuses(run) -> dict[str, tuple[str, str | None]]:
    return {name: (str(s.status), s.cache_verdict) for name, s in run.steps.items()}


def test_a_path_passed_as_file_input_is_keyed_by_the_file_contents(tmp_path: Path):
    data = tmp_path / "data.csv"
    data.write_text("x\n")
    assert read_marked(path=str(data)) == "x\n"
    assert read_marked(path=str(data)) == "x\n"
    assert statuses(read_marked.last_run) == {"read_as_text": ("cached", "hit")}
    data.write_text("y\n")
    assert read_marked(path=str(data)) == "y\n"
    step_run = read_marked.last_run.steps["read_as_text"]
    assert step_run.cache_reason.endswith(f": input file '{data}' changed")


def test_a_folder_input_changes_when_any_file_under_it_does(tmp_path: Path):
    folder = tmp_path / "shards"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.txt").write_text("1\n")
    (folder / "deep" / "b.txt").write_text("2\n")

    @step
    def file_count(root: FileInput) -> int:
        return sum(1 for path in Path(root).rglob("*") if path.is_file())

    @pipeline
    def shards():
        return file_count(str(folder))

    assert shards() == 2
    assert shards() == 2
    assert statuses(shards.last_run) == {"file_count": ("cached", "hit")}
    (folder / "deep" / "b.txt").write_text("2 changed\n")
    assert shards() == 2
    assert statuses(shards.last_run) == {"file_count": ("completed", "miss")}


def test_an_input_file_that_cannot_be_read_is_a_miss_with_the_reason_never_a_hit(tmp_path):
    missing = tmp_path / "missing.csv"
    with pytest.raises(BranchworkError, match="No such file"):
        count_lines(path=str(missing))  # the step itself fails to open it
    step_run = count_lines.last_run.steps["line_count"]
    assert (step_run.status, step_run.cache_verdict) == ("failed", "key_failed")
    assert step_run.cache_reason == (
        "its cache key could not be computed: FileNotFoundError: [Errno 2] No such file or "
        f"directory: '{missing}'"
    )
    assert step_run.cache_key is None


MODEL_VERSION = {"value": "v1"}


@step(cache_key_fn=lambda inputs: [MODEL_VERSION["value"], inputs["n"]])
def versioned(n: int) -> str:
    return f"{MODEL_VERSION['value']}:{n}"


@pipeline
def versioned_flow():
    return versioned(3)


def test_cache_key_fn_adds_what_the_arguments_do_not_say():
    MODEL_VERSION["value"] = "v1"
    assert versioned_flow() == "v1:3"
    assert versioned_flow() == "v1:3"
    assert statuses(versioned_flow.last_run) == {"versioned": ("cached", "hit")}
    MODEL_VERSION["value"] = "v2"
    assert versioned_flow() == "v2:3"
    step_run = versioned_flow.last_run.steps["versioned"]
    assert (step_run.status, step_run.cache_verdict) == ("completed", "miss")
    # the step reads the version too: its code's value changed as well
    assert step_run.cache_reason.endswith(
        ": code changed: test_cache_keys:MODEL_VERSION; its cache_key_fn gave another value"
    )


def _broken_key(inputs: dict[str, Any]) -> Any:
    raise KeyError("no version")


@step(cache_key_fn=_broken_key)
def broken_keyed(n: int) -> int:
    return n + 1


@step(cache_key_fn=lambda inputs: object())
def unhashable_keyed(n: int) -> int:
    return n + 2


@pipeline
def broken_keys():
    return broken_keyed(1), unhashable_keyed(1)


def test_a_key_that_cannot_be_computed_runs_the_step_every_time_and_says_why():
    for _ in range(2):
        assert broken_keys() == (2, 3)
        run = broken_keys.last_run
        assert statuses(run) == {
            "broken_keyed": ("completed", "key_failed"),
            "unhashable_keyed": ("completed", "key_failed"),
        }
    assert run.steps["broken_keyed"].cache_reason == (
        "its cache key could not be computed: KeyError: 'no version'"
    )
    assert run.steps["unhashable_keyed"].cache_reason.startswith(
        "its cache key could not be computed: "
    )


# ---- expiry, refresh, cache off, invalidation ----------------------------------------------


# A deque, which enters keys by its type: a module-level list the steps append to would be
# hashed by its items, and change their keys at every run (docs/caching.md).
CALLS: deque[str] = deque()


@step(expire_after=timedelta(minutes=5))
def fresh_for_five_minutes(n: int) -> int:
    CALLS.append("fresh")
    return n * 10


@pipeline
def expiring():
    return fresh_for_five_minutes(2)


def _age_step_runs(step_name: str, minutes: int) -> None:
    """Make the step's recorded runs finish `minutes` earlier, as if time had passed."""
    from branchwork.metadata.schema import step_run
    from branchwork.metadata.store import get_engine

    with get_engine().begin() as conn:
        rows = conn.execute(
            sa.select(step_run.c.id, step_run.c.end_time).where(step_run.c.step_name == step_name)
        ).all()
        for row in rows:
            conn.execute(
                sa.update(step_run)
                .where(step_run.c.id == row.id)
                .values(end_time=row.end_time - timedelta(minutes=minutes))
            )


def test_a_result_older_than_expire_after_is_computed_anew():
    CALLS.clear()
    assert expiring() == 20
    assert expiring() == 20
    assert statuses(expiring.last_run) == {"fresh_for_five_minutes": ("cached", "hit")}
    _age_step_runs("fresh_for_five_minutes", minutes=6)
    assert expiring() == 20
    step_run = expiring.last_run.steps["fresh_for_five_minutes"]
    assert (step_run.status, step_run.cache_verdict) == ("completed", "expired")
    assert "older than expire_after (0:05:00)" in step_run.cache_reason
    assert step_run.cache_reason.startswith("the cached result of run 'expiring-")
    assert list(CALLS) == ["fresh", "fresh"]
    assert expiring() == 20  # the new result is fresh again
    assert statuses(expiring.last_run) == {"fresh_for_five_minutes": ("cached", "hit")}


@step
def first_half(n: int) -> int:
    CALLS.append("first_half")
    return n + 1


@step
def second_half(n: int) -> int:
    CALLS.append("second_half")
    return n * 2


@pipeline
def halves(n: int):
    return second_half(first_half(n))


def test_refresh_recomputes_and_its_results_are_the_ones_served_next():
    CALLS.clear()
    halves(n=1)
    halves.with_options(refresh=True)(n=1)
    refreshed = halves.last_run
    assert statuses(refreshed) == {
        "first_half": ("completed", "refresh"),
        "second_half": ("completed", "refresh"),
    }
    assert refreshed.steps["first_half"].cache_reason == (
        "refreshed: recomputed on request, replacing the cached result"
    )
    assert halves(n=1) == 4
    again = halves.last_run
    assert again.steps["second_half"].original_step_run_id == refreshed.steps["second_half"].id
    assert list(CALLS) == ["first_half", "second_half"] * 2


def test_refresh_of_one_step_recomputes_only_that_step():
    CALLS.clear()
    halves(n=5)
    halves.with_options(refresh=["second_half"])(n=5)
    assert statuses(halves.last_run) == {
        "first_half": ("cached", "hit"),
        "second_half": ("completed", "refresh"),
    }
    assert list(CALLS) == ["first_half", "second_half", "second_half"]


def test_refresh_of_a_step_the_pipeline_does_not_have_names_it():
    with pytest.raises(ConfigurationError) as raised:
        halves.with_options(refresh=["third_half"])
    message = str(raised.value)
    assert message.startswith(
        "refresh: step 'third_half': pipeline 'halves' uses no step named 'third_half' (the "
        "steps it can reach: broken_keyed, first_half, "
    )
    assert ", second_half, " in message


def test_a_miss_on_an_invalidated_key_says_so_not_what_changed_since_the_last_run():
    """The previous run had other arguments, but this key's result was cached before and
    invalidated since: that is why it computes (it used to name the argument change)."""
    halves(n=9)
    halves(n=11)
    assert Client().invalidate_cache("second_half", pipeline_name="halves") == 2
    halves(n=9)
    run = halves.last_run
    assert statuses(run)["second_half"] == ("completed", "miss")
    assert run.steps["second_half"].cache_reason == (
        "a result with this key was cached, then invalidated (branchwork cache invalidate)"
    )
    halves(n=11)  # its key was invalidated too, but had no cached result left to serve
    assert halves.last_run.steps["second_half"].cache_reason == (
        "a result with this key was cached, then invalidated (branchwork cache invalidate)"
    )


def test_cache_off_is_recorded_as_the_reason():
    halves(n=7)
    halves.with_options(enable_cache=False)(n=7)
    step_run = halves.last_run.steps["first_half"]
    assert (step_run.status, step_run.cache_verdict) == ("completed", "off")
    assert step_run.cache_reason == (
        "caching is off for this step (enable_cache=False on it, its pipeline or run)"
    )


def test_an_invalidated_step_computes_anew_and_the_rest_stays_cached():
    CALLS.clear()
    halves(n=9)
    halves(n=9)
    assert Client().invalidate_cache("second_half", pipeline_name="halves") == 1
    assert halves(n=9) == 20
    run = halves.last_run
    assert statuses(run) == {"first_half": ("cached", "hit"), "second_half": ("completed", "miss")}
    reason = run.steps["second_half"].cache_reason
    assert reason.startswith("same key as in run 'halves-")
    assert reason.endswith("', whose result was invalidated (branchwork cache invalidate)")
    assert list(CALLS) == ["first_half", "second_half", "second_half"]
    decisions = Client().get_cache_decisions(run.name)
    assert [(d.invocation_id, d.verdict) for d in decisions.values()] == [
        ("first_half", "hit"),
        ("second_half", "miss"),
    ]
    assert decisions["second_half"].reason == run.steps["second_half"].cache_reason


def test_invalidating_a_step_that_never_ran_names_what_did():
    halves(n=11)
    with pytest.raises(BranchworkError) as raised:
        Client().invalidate_cache("second_halve", pipeline_name="halves")
    assert str(raised.value) == (
        "No step named 'second_halve' has run in pipeline 'halves'; steps that have: "
        "first_half, second_half."
    )
    with pytest.raises(BranchworkError, match="No pipeline named 'halfs' has run"):
        Client().invalidate_cache("second_half", pipeline_name="halfs")


# ---- what a miss says about arguments and parameters ---------------------------------------


def test_a_new_parameter_value_is_named_in_the_reason():
    halves(n=20)
    halves(n=21)
    reason = halves.last_run.steps["first_half"].cache_reason
    assert reason.endswith(
        ": argument 'n' changed: 20 → 21 (pipeline parameter 'n' changed: 20 → 21)"
    )


@step
def kind(x: Any) -> str:
    return type(x).__name__


@pipeline
def kind_of_pair(as_tuple: bool):
    return kind((1, 2) if as_tuple else [1, 2])


def test_a_tuple_then_a_list_is_a_miss_on_that_argument():
    assert kind_of_pair(as_tuple=True) == "tuple"
    assert kind_of_pair(as_tuple=False) == "list"
    step_run = kind_of_pair.last_run.steps["kind"]
    assert (step_run.status, step_run.cache_verdict) == ("completed", "miss")
    assert "argument 'x' changed" in step_run.cache_reason


def test_the_reason_is_recorded_in_the_store_as_the_run_happened():
    halves(n=30)
    from branchwork.metadata.schema import step_run
    from branchwork.metadata.store import get_engine

    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.select(step_run.c.name, step_run.c.cache_verdict, step_run.c.cache_parts).where(
                step_run.c.run_id == halves.last_run.id
            )
        ).all()
    assert {row.name: row.cache_verdict for row in rows} == {
        "first_half": "miss",
        "second_half": "miss",
    }
    parts = {row.name: json.loads(row.cache_parts) for row in rows}
    assert parts["first_half"]["arguments"] == {"n": "int:30"}
    assert set(parts["first_half"]) == {
        "code",
        "arguments",
        "files",
        "libraries",
        "extra",
        "outputs",
    }


@step(cache_policy=CachePolicy(libraries=("pytest", "no-such-distribution")))
def pinned(n: int) -> int:
    return n


@pipeline
def pinned_flow():
    return pinned(1)


def test_cache_policy_libraries_enter_the_key_with_their_installed_versions():
    pinned_flow()
    from branchwork.metadata.schema import step_run
    from branchwork.metadata.store import get_engine

    with get_engine().connect() as conn:
        recorded = conn.execute(
            sa.select(step_run.c.cache_parts).where(step_run.c.run_id == pinned_flow.last_run.id)
        ).scalar_one()
    assert json.loads(recorded)["libraries"] == {
        "pytest": pytest.__version__,
        "no-such-distribution": "not installed",
    }


@step
def flaky(n: int) -> int:
    if os.environ.get("FLAKY_FAILS"):  # outside the key, as a flaky service is
        raise RuntimeError("not today")
    return n


@pipeline
def flaky_flow():
    return flaky(1)


def test_a_step_that_failed_last_time_says_so_when_it_runs_again(monkeypatch):
    monkeypatch.setenv("FLAKY_FAILS", "1")
    with pytest.raises(BranchworkError, match="not today"):
        flaky_flow()
    failed = flaky_flow.last_run.name
    monkeypatch.delenv("FLAKY_FAILS")
    assert flaky_flow() == 1
    step_run = flaky_flow.last_run.steps["flaky"]
    assert (step_run.status, step_run.cache_verdict) == ("completed", "miss")
    assert step_run.cache_reason == f"same key as in run '{failed}', where it failed"


def test_a_step_whose_key_failed_last_time_says_there_was_no_key_to_compare():
    MODEL_VERSION["value"] = "v1"
    assert versioned_flow() == "v1:3"
    MODEL_VERSION["value"] = object()  # the key function's value has no JSON form
    versioned_flow()
    failed = versioned_flow.last_run
    assert failed.steps["versioned"].cache_verdict == "key_failed"
    MODEL_VERSION["value"] = "v1"
    assert versioned_flow() == "v1:3"
    step_run = versioned_flow.last_run.steps["versioned"]
    assert (step_run.status, step_run.cache_verdict) == ("cached", "hit")
    MODEL_VERSION["value"] = "v3"
    versioned_flow()
    assert versioned_flow.last_run.steps["versioned"].cache_reason.endswith(
        ": code changed: test_cache_keys:MODEL_VERSION; its cache_key_fn gave another value"
    )
