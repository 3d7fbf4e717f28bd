"""Names of steps and pipelines are checked where they are given: a name the CLI could not
address, or that the store's columns could not hold, is refused at the decorator."""

from __future__ import annotations

import pytest

from branchwork import pipeline, step
from branchwork.exceptions import ConfigurationError
from branchwork.steps.command import command_step


def make(x: int) -> int:
    return x


def test_a_name_with_a_slash_is_refused_at_the_decorator(tmp_path, monkeypatch):
    monkeypatch.setenv("BRANCHWORK_HOME", str(tmp_path / "home"))
    with pytest.raises(ConfigurationError) as info:
        step(name="team/make")(make)
    assert str(info.value) == (
        "@step of 'make': name='team/make' cannot contain '/' (the CLI reads "
        "RUN/INVOCATION/OUTPUT, so its runs, steps and outputs could not be addressed)"
    )
    with pytest.raises(ConfigurationError, match="^@pipeline of 'make': name='team/p' cannot"):
        pipeline(name="team/p")(make)
    with pytest.raises(ConfigurationError, match="^@step of 'a/b': name='a/b' cannot"):
        command_step(name="a/b", command=["true"])
    assert not (tmp_path / "home").exists()  # nothing was recorded


@pytest.mark.parametrize("name", ["", "   ", 5, b"make"])
def test_a_name_that_is_not_a_non_empty_string_is_refused(name):
    for decorator, text in ((step, "@step"), (pipeline, "@pipeline")):
        with pytest.raises(ConfigurationError) as info:
            decorator(name=name)(make)
        assert str(info.value) == (
            f"{text} of 'make': name= must be a non-empty string, got {name!r}"
        )


def test_a_name_too_long_for_the_stores_columns_is_refused():
    assert step(name="m" * 100)(make).name == "m" * 100
    with pytest.raises(ConfigurationError) as info:
        pipeline(name="p" * 101)(make)
    assert str(info.value) == ("@pipeline of 'make': name= is longer than 100 characters (101)")


def test_names_may_hold_dots_dashes_spaces_and_colons():
    for name in ("train.v2", "train-v2", "train v2", "ns:train"):
        assert step(name=name)(make).name == name
        assert pipeline(name=name)(make).name == name
    assert step(make).name == "make"
