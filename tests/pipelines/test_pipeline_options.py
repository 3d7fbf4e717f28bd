"""Options of `@pipeline` and `Pipeline.with_options` are checked where they are set, both
ways alike, with a ConfigurationError naming the pipeline and the option."""

from __future__ import annotations

from typing import Any

import pytest

from branchwork import pipeline, step
from branchwork.config.retry import StepRetryConfig
from branchwork.exceptions import ConfigurationError
from branchwork.runtime.events import FailureMode


@step
def one() -> int:
    return 1


def body() -> int:
    return one()


def _refused(make: Any, option: str) -> str:
    """The message of the ConfigurationError (that exact type) `make()` raises, which names
    the pipeline and the option."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert info.type is ConfigurationError
    message = str(info.value)
    assert message.startswith(f"Pipeline 'body': {option} "), message
    return message


@pytest.mark.parametrize("option", ["enable_cache", "dynamic"])
@pytest.mark.parametrize("value", [0, 1, "no", "false"])
def test_flags_take_only_true_or_false(option, value):
    for make in (
        lambda: pipeline(**{option: value})(body),
        lambda: pipeline(body).with_options(**{option: value}),
    ):
        assert f"must be True or False, got {value!r}" in _refused(make, option)


def test_with_options_flags_none_keep_the_pipelines_own():
    uncached = pipeline(enable_cache=False, dynamic=True)(body)
    kept = uncached.with_options(enable_cache=None, dynamic=None)
    assert (kept.enable_cache, kept.dynamic) == (False, True)


def test_with_options_refuses_an_unknown_failure_mode_as_the_decorator_does():
    decorated = _refused(lambda: pipeline(failure_mode="bogus")(body), "failure_mode")
    assert "stop_on_failure, fail_fast, continue_on_failure, got 'bogus'" in decorated
    assert _refused(lambda: pipeline(body).with_options(failure_mode="bogus"), "failure_mode") == (
        decorated
    )
    chosen = pipeline(body).with_options(failure_mode="continue_on_failure")
    assert chosen.failure_mode is FailureMode.CONTINUE_ON_FAILURE


@pytest.mark.parametrize("value", [5, 1.0, ["one", 2], object()])
def test_refresh_takes_true_false_or_step_names(value):
    message = _refused(lambda: pipeline(body).with_options(refresh=value), "refresh")
    assert "True, False, a step name or a list of step names" in message


def test_refresh_forms_that_are_taken():
    assert pipeline(body).with_options(refresh=True).refresh is True
    assert pipeline(body).with_options(refresh="one").refresh == ("one",)
    assert pipeline(body).with_options(refresh=(name for name in ["one"])).refresh == ("one",)


@pytest.mark.parametrize("value", [3, {"max_retries": 3}])
def test_retry_takes_a_step_retry_config(value):
    assert "must be a StepRetryConfig" in _refused(lambda: pipeline(retry=value)(body), "retry")
    assert pipeline(retry=StepRetryConfig(max_retries=1))(body).retry == StepRetryConfig(1)


@pytest.mark.parametrize("hook", ["on_start", "on_success", "on_failure", "on_end"])
def test_hooks_must_be_callable(hook):
    assert "must be a function, got 1" in _refused(lambda: pipeline(**{hook: 1})(body), hook)


def test_a_pipeline_decorated_again_is_refused():
    decorated = pipeline(body)
    with pytest.raises(ConfigurationError) as info:
        pipeline(name="again", enable_cache=False)(decorated)
    assert str(info.value) == (
        "@pipeline of 'body': it is a pipeline already; change its options with "
        "body.with_options(...), or make another pipeline of its function with "
        "pipeline(...)(body.func)"
    )
