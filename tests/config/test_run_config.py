"""YAML run configuration: parameters, pipeline options and per-step settings."""

from __future__ import annotations

import pytest

from branchwork import pipeline, step
from branchwork.exceptions import ConfigurationError

CALLS: list[str] = []


@step
def scale(x: int, factor: int) -> int:
    CALLS.append("scale")
    return x * factor


@step
def total(values: list) -> int:
    return sum(values)


@pipeline
def scaled(n: int, factor: int = 1):
    return total([scale(i, factor) for i in range(n)])


def write(tmp_path, text: str):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return str(path)


def test_parameters_options_and_step_settings_come_from_the_file(tmp_path):
    config = write(
        tmp_path,
        """
parameters: {n: 3, factor: 10}
failure_mode: continue_on_failure
retry: {max_retries: 1}
steps:
  scale:
    enable_cache: false
    retry: {max_retries: 2, delay: 0}
    settings:
      resources: {cpu_count: 1, memory: 512MB}
""",
    )
    configured = scaled.with_options(config_path=config)
    assert configured(n=2) == 10  # an argument wins over the file
    run = scaled.last_run
    assert run.parameters == {"n": 2, "factor": 10}
    assert run.snapshot.spec["failure_mode"] == "continue_on_failure"
    scale_config = run.snapshot.step_configurations["scale"].config
    assert scale_config["resources"] == {"cpu_count": 1, "gpu_count": None, "memory": "512MB"}
    assert scale_config["retry"] == {"max_retries": 2, "delay": 0, "backoff": 1.0}
    assert scale_config["enable_cache"] is False
    assert run.snapshot.step_configurations["total"].config["retry"] is None
    CALLS.clear()
    configured(n=2)
    assert CALLS == ["scale", "scale"]  # caching off for `scale` only
    assert {str(s.status) for n, s in scaled.last_run.steps.items() if n == "total"} == {"cached"}


def test_the_file_does_not_change_the_original_pipeline(tmp_path):
    scaled.with_options(config_path=write(tmp_path, "parameters: {n: 1}\n"))
    with pytest.raises(ConfigurationError, match="missing required argument"):
        scaled()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps: {scale: {settings: {resources: {cpu_count: -1}}}}",
            "steps.scale.settings.resources: ResourceSettings.cpu_count must not be negative",
        ),
        (
            "steps: {scale: {settings: {resources: {memory: lots}}}}",
            "steps.scale.settings.resources: ResourceSettings.memory must be a size",
        ),
        (
            "steps: {scale: {retry: {max_retries: -1}}}",
            "steps.scale.retry: StepRetryConfig.max_retries must not be negative",
        ),
        (
            "steps: {scale: {retry: {max_retries: 1, delay: .nan}}}",
            "steps.scale.retry: StepRetryConfig.delay must be a finite number",
        ),
        ("steps: {scale: {cache: false}}", "steps.scale.cache: unknown key"),
        (
            "steps: {scael: {enable_cache: false}}",
            "steps.scael: pipeline 'scaled' uses no step named 'scael'",
        ),
        ("enable_cache: maybe", "enable_cache: must be true or false"),
        ("failure_mode: sometimes", "failure_mode: must be one of"),
        ("paramters: {n: 1}", "paramters: unknown key"),
        ("parameters: [1, 2]", "parameters: must be a mapping"),
        ("steps: {scale: {settings: {resources: {cpus: 2}}}}", "steps.scale.settings.resources: "),
        ("retry: {max_retries: 1, jitter: 2}", "retry: "),
        (": : :", "is not valid YAML"),
    ],
)
def test_invalid_files_name_the_key(tmp_path, text, message):
    config = write(tmp_path, text)
    with pytest.raises(ConfigurationError) as info:
        scaled.with_options(config_path=config)
    assert message in str(info.value)
    assert str(info.value).startswith(config)


def test_a_parameter_the_pipeline_does_not_take_is_an_error(tmp_path):
    configured = scaled.with_options(config_path=write(tmp_path, "parameters: {m: 1}\n"))
    with pytest.raises(ConfigurationError, match="sets parameter 'm'"):
        configured(n=1)


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot be read"):
        scaled.with_options(config_path=str(tmp_path / "nope.yaml"))


@step
def doubled(x: int) -> int:
    return 2 * x


@step
def always_fails(x: int) -> int:
    raise RuntimeError("transient")


@pipeline
def retried(x: int = 1):
    return always_fails(doubled(x))


def test_a_resume_keeps_the_per_step_retries_its_run_configuration_gave(tmp_path):
    """The resumed pipeline is loaded afresh, without the file's options: a static run's
    per-step retries were dropped (3 attempts, then 1 on resume)."""
    from branchwork import Client
    from branchwork.exceptions import PipelineRunFailedError

    config = write(tmp_path, "steps: {always_fails: {retry: {max_retries: 2}}}")
    with pytest.raises(PipelineRunFailedError) as failed:
        retried.with_options(config_path=config)()
    run_id = failed.value.run_id
    assert Client().get_pipeline_run(run_id).steps["always_fails"].attempt == 3
    with pytest.raises(PipelineRunFailedError):
        Client().resume_run(run_id)
    assert Client().get_pipeline_run(run_id).steps["always_fails"].attempt == 6
