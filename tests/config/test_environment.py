"""Durations read from environment variables are checked where they are read."""

from __future__ import annotations

import pytest

from branchwork import Client, pipeline, step
from branchwork.config.environment import seconds_from_env
from branchwork.exceptions import ConfigurationError


@step
def one() -> int:
    return 1


@pipeline
def single():
    return one()


@pytest.mark.parametrize("text", ["abc", "nan", "inf", "-1", "0"])
def test_a_heartbeat_that_is_not_a_positive_number_of_seconds_is_refused_by_name(monkeypatch, text):
    """ "abc" failed with "could not convert string to float", naming nothing; "0" made
    every live run read as lost."""
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", text)
    with pytest.raises(ConfigurationError) as info:
        single()
    assert str(info.value) == (
        f"$BRANCHWORK_HEARTBEAT_SECONDS must be a number of seconds, above 0; got {text!r}"
    )
    monkeypatch.delenv("BRANCHWORK_HEARTBEAT_SECONDS")
    assert Client().list_pipeline_runs() == []  # refused before a run was recorded


def test_durations_are_read_with_their_defaults(monkeypatch):
    monkeypatch.setenv("SOME_SECONDS", " 2.5 ")
    assert seconds_from_env("SOME_SECONDS", 30.0) == 2.5
    monkeypatch.setenv("SOME_SECONDS", "0")
    assert seconds_from_env("SOME_SECONDS", 30.0) == 0.0
    monkeypatch.setenv("SOME_SECONDS", "")
    assert seconds_from_env("SOME_SECONDS", 30.0) == 30.0
    with pytest.raises(ConfigurationError, match=r"\$SOME_SECONDS must be .* 0 or more"):
        monkeypatch.setenv("SOME_SECONDS", "-3")
        seconds_from_env("SOME_SECONDS", 30.0)
