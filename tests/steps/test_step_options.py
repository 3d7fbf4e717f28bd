"""Options of `@step` and `Step.with_options` are checked where they are set, both ways
alike: a bad value fails at once naming the step and the option, never later in a run (or,
worse, read as something else: `enable_cache=0` used to leave caching on)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import pytest

from branchwork import step
from branchwork.config.retry import StepRetryConfig
from branchwork.exceptions import ConfigurationError
from branchwork.materializers import BaseMaterializer


def configured() -> int:
    return 1


def pair() -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
    return 1, 2


class IntMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (int,)


def _refused(make: Any, option: str, step_name: str = "configured") -> str:
    """The message of the ConfigurationError (that exact type) `make()` raises, which names
    the step and the option."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert info.type is ConfigurationError
    message = str(info.value)
    assert message.startswith(f"Step '{step_name}': {option} "), message
    return message


@pytest.mark.parametrize("value", [0, 1, "no", "false", []])
def test_enable_cache_takes_only_true_or_false(value):
    assert "True or False" in _refused(lambda: step(enable_cache=value)(configured), "enable_cache")
    assert "True or False" in _refused(
        lambda: step(configured).with_options(enable_cache=value), "enable_cache"
    )


def test_enable_cache_none_inherits_and_with_options_none_keeps_the_steps_own():
    assert step(enable_cache=None)(configured).enable_cache is None
    uncached = step(enable_cache=False)(configured)
    assert uncached.with_options(enable_cache=None).enable_cache is False
    assert uncached.with_options(enable_cache=True).enable_cache is True


@pytest.mark.parametrize("value", [0, -1, 1.5, True])
def test_max_concurrency_below_one_is_refused_by_decorator_and_with_options(value):
    message = _refused(lambda: step(max_concurrency=value)(configured), "max_concurrency")
    assert f"at least 1, got {value!r}" in message
    assert (
        _refused(lambda: step(configured).with_options(max_concurrency=value), "max_concurrency")
        == message
    )
    limited = step(max_concurrency=3)(configured)
    assert _refused(lambda: limited.with_options(max_concurrency=value), "max_concurrency")


def test_with_options_checks_falsy_values_instead_of_keeping_the_steps_own():
    limited = step(concurrency_limit="llm", expire_after=timedelta(hours=1))(configured)
    _refused(lambda: limited.with_options(concurrency_limit=""), "concurrency_limit")
    _refused(lambda: limited.with_options(expire_after=timedelta(0)), "expire_after")
    kept = limited.with_options(max_concurrency=2)
    assert (kept.max_concurrency, kept.concurrency_limit) == (2, "llm")
    assert kept.expire_after == timedelta(hours=1)


@pytest.mark.parametrize("value", ["bogus", "Isolated", 1])
def test_unknown_runtimes_are_refused_naming_the_known_ones(value):
    for make in (
        lambda: step(runtime=value)(configured),
        lambda: step(configured).with_options(runtime=value),
    ):
        message = _refused(make, "runtime")
        assert "'inline' or 'isolated'" in message and repr(value) in message


def test_with_options_runtime_none_keeps_the_steps_own():
    isolated = step(runtime="isolated")(configured)
    assert isolated.with_options(enable_cache=False).runtime == "isolated"
    assert isolated.with_options(runtime="inline").runtime == "inline"


@pytest.mark.parametrize("value", [3, {"max_retries": 3}, "3"])
def test_retry_takes_a_step_retry_config(value):
    for make in (
        lambda: step(retry=value)(configured),
        lambda: step(configured).with_options(retry=value),
    ):
        assert "must be a StepRetryConfig" in _refused(make, "retry")
    retried = step(configured).with_options(retry=StepRetryConfig(max_retries=2))
    assert retried.retry == StepRetryConfig(max_retries=2)


@pytest.mark.parametrize("hook", ["on_failure", "on_success"])
@pytest.mark.parametrize("value", ["x", 1])
def test_hooks_must_be_callable(hook, value):
    message = _refused(lambda: step(**{hook: value})(configured), hook)
    assert f"must be a function, got {value!r}" in message


@pytest.mark.parametrize(
    ("value", "option"),
    [
        (int, "output_materializers"),
        ("IntMaterializer", "output_materializers"),
        ({"a": int}, "output_materializers['a']"),
        ({"a": IntMaterializer, "b": "IntMaterializer"}, "output_materializers['b']"),
    ],
    ids=["a-type", "a-string", "dict-of-a-type", "dict-of-a-string"],
)
def test_output_materializers_must_be_materializer_classes(value, option):
    message = _refused(lambda: step(output_materializers=value)(pair), option, "pair")
    assert "BaseMaterializer subclass" in message


def test_output_materializers_take_a_class_or_one_per_output_name():
    everywhere = step(output_materializers=IntMaterializer)(pair)
    assert [spec.materializer for spec in everywhere.outputs] == [IntMaterializer] * 2
    one = step(output_materializers={"b": IntMaterializer})(pair)
    assert [spec.materializer for spec in one.outputs] == [None, IntMaterializer]
    _refused(
        lambda: step(output_materializers={"c": IntMaterializer})(pair),
        "output_materializers",
        "pair",
    )
