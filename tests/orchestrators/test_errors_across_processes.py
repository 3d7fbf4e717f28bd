"""The caller of a failed run gets the step's own exception as `__cause__`, on every
orchestrator: rebuilt from the store when the loop ran in another process, with the remote
traceback attached; or, when it cannot be rebuilt, an error that says why."""

from __future__ import annotations

import sys
from pathlib import Path

import failing_pipelines as fp
import pytest

from branchwork.exceptions import PipelineRunFailedError
from branchwork.metadata.error_records import RemoteStepError, RemoteTraceback
from branchwork.orchestrators import LocalOrchestrator, LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_orchestrator"
sys.path.insert(0, str(EXAMPLE))

from my_orchestrator import MyOrchestrator  # noqa: E402

ORCHESTRATORS = {
    "local": LocalOrchestrator,
    "local_process": LocalProcessOrchestrator,
    "custom": MyOrchestrator,
}


def failure(flavor: str, pipeline, kind: str) -> PipelineRunFailedError:
    stack = Stack("s", ORCHESTRATORS[flavor](), get_active_stack().artifact_store)
    with active_stack(stack), pytest.raises(PipelineRunFailedError) as info:
        pipeline(kind=kind)
    return info.value


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
@pytest.mark.parametrize("pipeline", [fp.failing, fp.failing_isolated], ids=["inline", "isolated"])
def test_the_step_exception_is_the_cause_on_every_orchestrator(flavor, pipeline):
    error = failure(flavor, pipeline, "value")
    cause = error.__cause__
    assert type(cause) is ValueError and str(cause) == "bad value 3"
    assert error.invocation_id == "raises"
    if flavor != "local":  # rebuilt here: the other process's traceback comes with it
        assert isinstance(cause.__cause__, RemoteTraceback)
        remote = str(cause.__cause__)
        assert ", in raises\n" in remote and remote.endswith("\nValueError: bad value 3")


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
@pytest.mark.parametrize("pipeline", [fp.failing, fp.failing_isolated], ids=["inline", "isolated"])
def test_a_step_calling_sys_exit_fails_with_its_message_on_every_orchestrator(flavor, pipeline):
    """A step process that exited with the step: the SystemExit is its failure, as in a
    thread (it was "exited with code 1 without a result", its message lost)."""
    error = failure(flavor, pipeline, "exit")
    cause = error.__cause__
    assert type(cause) is SystemExit
    assert str(cause) == "schema check failed: column 'id' missing"
    assert str(error).endswith(
        "failed: step 'raises' raised SystemExit: schema check failed: column 'id' missing"
    )


def test_a_step_failed_error_unpickles_and_is_rebuilt_as_itself():
    import pickle

    from branchwork.exceptions import StepFailedError
    from branchwork.metadata.error_records import encode, rebuild

    error = StepFailedError("The process of step 'a' exited with code 1.", "a")
    for copy in (
        pickle.loads(pickle.dumps(error)),
        rebuild(encode(error), "StepFailedError", str(error), None),
    ):
        assert type(copy) is StepFailedError
        assert (str(copy), copy.invocation_id) == (str(error), "a")


@pytest.mark.parametrize(
    ("flavor", "pipeline"),
    [
        ("local_process", fp.failing),
        ("custom", fp.failing),
        # Raised in a step process: it cannot be unpickled in the loop's process either (it
        # was recorded as a StepFailedError there, its class lost).
        ("local_process", fp.failing_isolated),
    ],
    ids=["local_process", "custom", "isolated"],
)
def test_an_exception_that_cannot_be_rebuilt_says_why(flavor, pipeline):
    cause = failure(flavor, pipeline, "keywords").__cause__
    assert isinstance(cause, RemoteStepError)
    assert cause.type_name == "NeedsKeywords"
    assert cause.remote_message == "failed with code 7"
    assert ", in raises\n" in cause.remote_traceback  # its source line: not for isolated steps
    assert cause.remote_traceback.endswith("failing_pipelines.NeedsKeywords: failed with code 7\n")
    assert str(cause) == (
        "NeedsKeywords: failed with code 7 (raised in another process; not rebuilt here: "
        "NeedsKeywords.__init__() takes 1 positional argument but 2 were given)"
    )
    unjsonable = failure(flavor, pipeline, "set").__cause__
    assert isinstance(unjsonable, RemoteStepError) and unjsonable.type_name == "KeyError"
    assert str(unjsonable).endswith("not rebuilt here: its arguments are not JSON-serializable)")
