"""Naming and tagging an output's artifact in its annotation, and logging metadata for it:
`Annotated[T, "name"]`, `Annotated[T, ArtifactConfig(name=..., tags=[...])]`,
`log_artifact_metadata(...)`, each through real runs on the default (local) orchestrator."""

from __future__ import annotations

import os
from typing import Annotated

import pytest

from branchwork import ArtifactConfig, Client, log_artifact_metadata, log_metadata, pipeline, step
from branchwork.exceptions import BranchworkError, PipelineDefinitionError, PipelineRunFailedError


def output_artifacts(run, invocation):
    """Output name -> (artifact name, tags) of one invocation of a run."""
    outputs = run.steps[invocation].outputs
    return {name: (version.name, version.tags) for name, version in outputs.items()}


# ---- naming --------------------------------------------------------------------------------


@step
def named() -> Annotated[int, "rows"]:
    return 3


@step
def configured() -> Annotated[dict, ArtifactConfig(name="model", tags=["prod", "small"])]:
    return {"w": 1}


@step
def tagged_only() -> Annotated[str, ArtifactConfig(tags=("draft",))]:
    return "x"


@step
def several() -> tuple[
    Annotated[int, "train_set"],
    Annotated[int, ArtifactConfig(name="test_set", tags=["holdout"])],
    int,
]:
    return 1, 2, 3


@step
def plain() -> int:
    return 4


@pipeline(enable_cache=False)
def naming():
    named()
    configured()
    tagged_only()
    several()
    plain()


def test_annotations_name_and_tag_artifacts():
    naming()
    run = Client().get_pipeline_run("latest")
    assert output_artifacts(run, "named") == {"rows": ("rows", ())}
    assert output_artifacts(run, "configured") == {"model": ("model", ("prod", "small"))}
    assert output_artifacts(run, "tagged_only") == {
        "output": ("naming::tagged_only::output", ("draft",))
    }
    assert output_artifacts(run, "several") == {
        "train_set": ("train_set", ()),
        "test_set": ("test_set", ("holdout",)),
        "output_2": ("naming::several::output_2", ()),
    }
    assert output_artifacts(run, "plain") == {"output": ("naming::plain::output", ())}
    assert Client().get_artifact_version("model").load() == {"w": 1}


def test_a_string_names_the_output_and_a_config_the_artifact():
    @step
    def both() -> Annotated[int, "score", ArtifactConfig(name="best_score")]:
        return 9

    @pipeline(enable_cache=False)
    def scored():
        return both()

    scored()
    assert output_artifacts(scored.last_run, "both") == {"score": ("best_score", ())}


# ---- bad declarations ----------------------------------------------------------------------


def declare(annotation):
    def func():
        return None

    func.__annotations__ = {"return": annotation}
    return step(func, name="fit")


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (
            Annotated[int, ArtifactConfig(name="")],
            "Step 'fit': ArtifactConfig(name=...) must be a non-empty string, got ''.",
        ),
        (
            Annotated[int, ArtifactConfig(name=3)],  # type: ignore[arg-type]
            "Step 'fit': ArtifactConfig(name=...) must be a non-empty string, got 3.",
        ),
        (
            Annotated[int, ArtifactConfig(name="model:2")],
            "Step 'fit': ArtifactConfig(name=...) 'model:2' cannot contain ':' or '/' (the CLI "
            "reads NAME:VERSION and RUN/INVOCATION/OUTPUT).",
        ),
        (
            Annotated[int, "a/b"],
            "Step 'fit': an output name 'a/b' cannot contain ':' or '/' (the CLI reads "
            "NAME:VERSION and RUN/INVOCATION/OUTPUT).",
        ),
        (
            Annotated[int, ArtifactConfig(name="m", tags="prod")],  # type: ignore[arg-type]
            "Step 'fit': ArtifactConfig(tags=...) must be a list of strings, got the string "
            "'prod'; write tags=['prod'] for one tag.",
        ),
        (
            Annotated[int, ArtifactConfig(tags=["ok", 7])],  # type: ignore[list-item]
            "Step 'fit': an ArtifactConfig tag must be a non-empty string, got 7.",
        ),
        (
            Annotated[int, ArtifactConfig(tags=None)],  # type: ignore[arg-type]
            "Step 'fit': ArtifactConfig(tags=...) must be a list of strings, got NoneType None.",
        ),
        (
            Annotated[int, ArtifactConfig(name="a"), ArtifactConfig(name="b")],
            "Step 'fit': an output annotation has 2 ArtifactConfigs; give it one.",
        ),
        (
            tuple[Annotated[int, ArtifactConfig(name="m")], Annotated[int, "m"]],
            "Step 'fit' declares the same output name twice in its return annotation; give "
            "each Annotated output a distinct name.",
        ),
        (
            tuple[Annotated[int, "a", ArtifactConfig(name="m")], Annotated[int, "m"]],
            "Step 'fit' declares the same output name twice in its return annotation; give "
            "each Annotated output a distinct name.",
        ),
    ],
)
def test_bad_artifact_declarations_are_refused_naming_the_step(annotation, message):
    with pytest.raises(PipelineDefinitionError) as info:
        declare(annotation)
    assert str(info.value) == message


def test_an_artifact_config_is_frozen_and_keeps_tags_as_a_tuple():
    config = ArtifactConfig(name="model", tags=["a", "b"])
    assert config.tags == ("a", "b")
    with pytest.raises(AttributeError):
        config.name = "other"  # type: ignore[misc]


# ---- log_artifact_metadata -----------------------------------------------------------------


@step
def scored_model() -> Annotated[dict, "scored_model"]:
    log_artifact_metadata({"accuracy": 0.91, "classes": ["a", "b"]})
    log_artifact_metadata({"accuracy": 0.93}, output="scored_model")  # replaces the value
    return {"w": 2}


@step
def split() -> tuple[Annotated[list, "train_rows"], Annotated[list, "test_rows"]]:
    log_artifact_metadata({"rows": 3}, output="train_rows")
    log_artifact_metadata({"rows": 1}, output="test_rows")
    return [1, 2, 3], [4]


@pipeline(enable_cache=False)
def with_metadata():
    scored_model()
    split()


def test_logged_metadata_is_stored_with_the_new_version():
    with_metadata()
    run = with_metadata.last_run
    assert run.steps["scored_model"].output.metadata == {"accuracy": 0.93, "classes": ["a", "b"]}
    outputs = run.steps["split"].outputs
    assert outputs["train_rows"].metadata == {"rows": 3}
    assert outputs["test_rows"].metadata == {"rows": 1}
    assert Client().get_artifact_version("train_rows").metadata == {"rows": 3}


def test_a_step_that_logs_metadata_is_a_plain_function_outside_a_pipeline():
    """A unit test calls it directly: what it logs is checked and dropped (it raised that
    it was called outside a running step)."""
    assert scored_model() == {"w": 2}
    assert split(id="split", after="nothing") == ([1, 2, 3], [4])  # steer nothing here
    with pytest.raises(BranchworkError) as info:
        log_artifact_metadata({"model": object()})
    assert str(info.value) == (
        "log_artifact_metadata outside a running step: the value of 'model' (object) is not "
        "JSON-serializable."
    )
    with pytest.raises(BranchworkError) as info:
        log_metadata(["accuracy", 0.9])  # type: ignore[arg-type]
    assert (
        str(info.value) == "log_metadata outside a running step: metadata must be a dict, got list."
    )


@step
def two_outputs_unnamed_metadata() -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
    log_artifact_metadata({"k": 1})
    return 1, 2


@step
def unknown_output() -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
    log_artifact_metadata({"k": 1}, output="c")
    return 1, 2


@step
def no_outputs() -> None:
    log_artifact_metadata({"k": 1})


@step
def not_json() -> int:
    log_artifact_metadata({"handle": object()})
    return 1


@step
def bad_key() -> int:
    log_artifact_metadata({"": 1})
    return 1


@pytest.mark.parametrize(
    ("bad_step", "message"),
    [
        (
            two_outputs_unnamed_metadata,
            "log_artifact_metadata in step 'two_outputs_unnamed_metadata': the step has 2 "
            "outputs ('a', 'b'); name one with output=.",
        ),
        (
            unknown_output,
            "log_artifact_metadata in step 'unknown_output': the step has no output 'c'; its "
            "outputs: 'a', 'b'.",
        ),
        (
            no_outputs,
            "log_artifact_metadata in step 'no_outputs': the step has no outputs to attach "
            "metadata to.",
        ),
        (
            not_json,
            "log_artifact_metadata in step 'not_json': the value of 'handle' (object) is not "
            "JSON-serializable.",
        ),
        (
            bad_key,
            "log_artifact_metadata in step 'bad_key': the key '' is not a string of 1 to 255 "
            "characters.",
        ),
    ],
)
def test_bad_log_artifact_metadata_fails_the_step_with_a_clear_error(bad_step, message):
    @pipeline(enable_cache=False)
    def misusing():
        bad_step()

    with pytest.raises(PipelineRunFailedError) as info:
        misusing()
    cause = info.value.__cause__
    assert isinstance(cause, BranchworkError)
    assert str(cause) == message


@step(runtime="isolated")
def isolated_model() -> Annotated[dict, ArtifactConfig(name="isolated_model", tags=["iso"])]:
    log_artifact_metadata({"pid": os.getpid()})
    return {"w": 3}


@pipeline(enable_cache=False)
def isolated():
    return isolated_model()


def test_metadata_logged_in_an_isolated_step_travels_back():
    """On local_process, an isolated step runs in a process of its own: what it logs comes
    back in its result envelope."""
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        isolated()
    version = Client().get_artifact_version("isolated_model")
    assert version.tags == ("iso",)
    assert version.metadata["pid"] != os.getpid()  # logged in another process
