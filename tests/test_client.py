"""`Client` finds runs by id, name, `latest`, `latest:PIPELINE` or a unique prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from branchwork import pipeline, step
from branchwork.exceptions import BranchworkError, PipelineRunFailedError


@step
def numbers(n: int) -> list:
    print(f"made {n} numbers")
    return list(range(n))


@step
def total(values: list) -> int:
    return sum(values)


@step
def checked_total(folder: str, values: list) -> int:
    if Path(folder, "fail").exists():
        raise RuntimeError("told to fail by the flag file")
    return sum(values)


@pipeline
def client_sum(n: int = 3):
    return total(numbers(n))


@pipeline
def client_other(n: int = 2):
    return total(numbers(n))


@pipeline
def client_flaky(folder: str, n: int = 4):
    return checked_total(folder, numbers(n))


def test_latest_and_latest_of_a_pipeline(client):
    client_sum()
    summed = client.list_pipeline_runs(limit=1)[0]
    client_other()
    other = client.list_pipeline_runs(limit=1)[0]
    assert client.get_pipeline_run("latest").id == other.id
    assert client.get_pipeline_run("latest:client_sum").id == summed.id
    assert client.get_pipeline_run("latest:client_other").name == other.name
    with pytest.raises(BranchworkError) as error:
        client.get_pipeline_run("latest:client_nothing")
    assert str(error.value) == (
        "No runs of pipeline 'client_nothing'; `branchwork runs list` shows the runs."
    )


def test_a_unique_prefix_and_an_ambiguous_one(client):
    client_sum()
    client_other()
    summed, other = client.list_pipeline_runs(limit=2)[::-1]
    assert client.get_pipeline_run("client_s").id == summed.id
    assert client.get_pipeline_run(other.name[: len("client_other-")]).id == other.id
    with pytest.raises(BranchworkError) as error:
        client.get_pipeline_run("client_")
    assert str(error.value) == (
        "Run reference 'client_' is ambiguous: 2 runs start with it, newest first: "
        f"{other.name} (client_other, completed), {summed.name} (client_sum, completed). "
        "Give more of the name or id."
    )
    with pytest.raises(BranchworkError, match="`branchwork runs list` shows the runs"):
        client.get_pipeline_run("client_x")


def test_step_logs_by_reference(client):
    client_sum(n=5)
    assert client.get_step_logs("latest", "numbers") == {"numbers": "made 5 numbers\n"}
    assert client.get_step_logs("latest:client_sum")["numbers"] == "made 5 numbers\n"


def test_resume_by_reference(client, tmp_path):
    (tmp_path / "fail").touch()
    with pytest.raises(PipelineRunFailedError):
        client_flaky(folder=str(tmp_path))
    (tmp_path / "fail").unlink()
    assert client.resume_run("latest:client_flaky") == 6
    run = client.get_pipeline_run("client_flaky")
    assert run.status == "completed" and run.steps["checked_total"].attempt == 2


def test_a_run_object_is_a_reference_too(client, tmp_path):
    """The README's `Client().get_step_logs(run)` with `run = pipeline.last_run` raised
    AttributeError: 'PipelineRunResponse' object has no attribute 'strip'."""
    client_sum(n=4)
    run = client_sum.last_run
    assert client.get_step_logs(run) == {"numbers": "made 4 numbers\n", "total": ""}
    assert client.get_pipeline_run(run).id == run.id
    assert list(client.get_cache_decisions(run)) == ["numbers", "total"]
    assert client.list_child_runs(run) == [] and client.get_run_waits(run) == []
    (tmp_path / "fail").touch()
    with pytest.raises(PipelineRunFailedError):
        client_flaky(folder=str(tmp_path))
    (tmp_path / "fail").unlink()
    assert client.resume_run(client_flaky.last_run) == 6
    with pytest.raises(TypeError) as error:
        client.get_step_logs(42)
    assert str(error.value) == (
        "A run is its id or name (a str) or a PipelineRunResponse; got int 42."
    )
