"""`ExternalArtifact`: a pipeline consumes an artifact version made by another run — by name
(latest or a version) or by id — recorded as the step's input, keyed by its content."""

from __future__ import annotations

from typing import Annotated

import pytest

from branchwork import Client, ExternalArtifact, pipeline, step
from branchwork.exceptions import BranchworkError, StepInvocationError
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack


@step
def train(weight: int) -> Annotated[dict, "model"]:
    return {"weight": weight}


@pipeline(enable_cache=False)
def training(weight: int):
    return train(weight)


@step
def score(model: dict, x: int) -> int:
    return model["weight"] * x


@pipeline
def scoring(x: int, version: int | None = None):
    return score(ExternalArtifact("model", version=version), x)


def test_the_latest_or_a_chosen_version_is_the_steps_input():
    training(weight=2)
    training(weight=3)
    assert scoring(x=10) == 30
    run = scoring.last_run
    used = run.steps["score"].inputs["model"]
    assert (used.name, used.version) == ("model", 2)
    assert run.snapshot.is_dynamic is False
    recorded = run.snapshot.step_configurations["score"].config["inputs"]["model"]
    assert recorded == {"$external": "model", "version": 2, "id": used.id}

    assert scoring(x=10, version=1) == 20
    assert scoring.last_run.steps["score"].inputs["model"].version == 1


def test_its_content_not_its_number_keys_the_cache():
    training(weight=4)
    assert scoring(x=1) == 4
    training(weight=4)  # a new version, same contents: still a hit
    assert scoring(x=1) == 4
    cached = scoring.last_run.steps["score"]
    assert cached.status == "cached"
    training(weight=5)  # other contents: a miss that says which argument changed
    assert scoring(x=1) == 5
    decision = Client().get_cache_decisions(scoring.last_run.id)["score"]
    assert decision.verdict == "miss"
    assert "argument 'model'" in decision.reason


@pipeline(enable_cache=False)
def by_id(version_id: str):
    return score(ExternalArtifact(id=version_id), 3)


def test_by_id_on_an_orchestrator_whose_loop_and_steps_run_in_other_processes():
    training(weight=7)
    version_id = Client().get_artifact_version("model").id
    stack = Stack("isolated", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        assert by_id(version_id=version_id) == 21
    assert by_id.last_run.steps["score"].inputs["model"].id == version_id


def test_bad_references_are_clear_errors():
    training(weight=1)
    with pytest.raises(StepInvocationError, match="needs an artifact name .* not neither"):
        ExternalArtifact()
    with pytest.raises(StepInvocationError, match="not both"):
        ExternalArtifact("model", id="abc")
    with pytest.raises(BranchworkError, match="No artifact named 'nope'"):
        ExternalArtifact("nope")
    with pytest.raises(BranchworkError, match="Artifact 'model' has no version 9; its versions: 1"):
        ExternalArtifact("model", version=9)
