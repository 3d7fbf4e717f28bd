"""The custom-orchestrator example: the seed page's MyOrchestrator pattern, with subprocess
"jobs" launched with nothing but the environment branchwork hands over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from branchwork import Client, pipeline, step
from branchwork.exceptions import OrchestratorError
from branchwork.stack import Stack, active_stack, get_active_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_orchestrator"
sys.path.insert(0, str(EXAMPLE))

from my_orchestrator import MyOrchestrator, StaticOnlyOrchestrator  # noqa: E402
from run_dynamic import partitioned  # noqa: E402


@step
def one() -> int:
    return 1


@step
def plus(x: int) -> int:
    return x + 1


@pipeline
def static_chain():
    return plus(one())


@pipeline
def dynamic_chain():
    return plus(1) if one() > 0 else one()


def on(orchestrator):
    return active_stack(Stack("custom", orchestrator, get_active_stack().artifact_store))


def test_my_orchestrator_runs_a_dynamic_pipeline_in_a_job():
    orchestrator = MyOrchestrator()
    assert orchestrator.supports_dynamic_pipelines is True
    with on(orchestrator):
        assert partitioned() == 30
    run = partitioned.last_run
    assert run.status == "completed" and run.snapshot.is_dynamic
    assert run.orchestrator == "my_orchestrator"
    assert len(run.steps) == 5


def test_a_subclass_without_submit_dynamic_pipeline_runs_static_but_refuses_dynamic():
    orchestrator = StaticOnlyOrchestrator()
    assert orchestrator.supports_dynamic_pipelines is False
    with on(orchestrator):
        assert static_chain() == 2
        run = static_chain.last_run
        assert run.orchestrator_run_id == f"static_only-{run.id}"
        with pytest.raises(OrchestratorError) as info:
            dynamic_chain()
    assert "dynamic_chain" in str(info.value)
    assert "does not support dynamic pipelines" in str(info.value)
    assert [r.pipeline_name for r in Client().list_pipeline_runs()] == ["static_chain"]


def test_the_example_script_runs(branchwork_home):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "run_dynamic.py")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "supports dynamic pipelines: True" in done.stdout
    assert "result: 30" in done.stdout


class MissingPythonOrchestrator(MyOrchestrator):
    """Its "image" names an interpreter that is not there: the job cannot start."""

    def get_image(self, snapshot):
        return "/nonexistent/bin/python"


def test_a_submit_that_raises_fails_the_run_naming_the_orchestrator():
    stack = Stack("broken", MissingPythonOrchestrator("broken"), get_active_stack().artifact_store)
    with active_stack(stack), pytest.raises(OrchestratorError) as info:
        dynamic_chain()
    message = str(info.value)
    assert message.startswith("Orchestrator 'broken' (MissingPythonOrchestrator) failed to run '")
    assert "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/bin/python'" in (
        message
    )
    assert isinstance(info.value.__cause__, FileNotFoundError)
    (run,) = Client().list_pipeline_runs()
    assert run.status == "failed"  # not `initializing` for ever
    assert (run.exception_type, run.exception_message) == ("OrchestratorError", message)
