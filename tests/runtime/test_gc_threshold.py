"""Fewer garbage collections while a run's loop runs, and the process's own setting back after."""

from __future__ import annotations

import gc
import threading

import pytest

from branchwork import pipeline, step
from branchwork.runtime.gc_threshold import YOUNG_THRESHOLD


@step
def threshold_now() -> int:
    return gc.get_threshold()[0]


@step
def sets_threshold(young: int) -> int:
    gc.set_threshold(young, *gc.get_threshold()[1:])
    return young


@pipeline
def reads_threshold() -> int:
    return threshold_now()


@pytest.fixture(autouse=True)
def default_thresholds():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_a_run_raises_the_young_threshold_and_puts_it_back():
    assert reads_threshold() == YOUNG_THRESHOLD
    assert gc.get_threshold() == (700, 10, 10)


def test_it_is_put_back_when_the_last_of_overlapping_runs_ends():
    started, release = threading.Event(), threading.Event()

    @step
    def waits() -> int:
        started.set()
        assert release.wait(30)
        return gc.get_threshold()[0]

    @pipeline
    def waiting() -> int:
        return waits()

    results: list[int] = []
    other = threading.Thread(target=lambda: results.append(waiting()))
    other.start()
    try:
        assert started.wait(30)
        assert reads_threshold() == YOUNG_THRESHOLD  # ends while `waiting` still runs
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    finally:
        release.set()
        other.join(60)
    assert results == [YOUNG_THRESHOLD]
    assert gc.get_threshold() == (700, 10, 10)


def test_a_threshold_set_during_the_run_is_kept():
    @pipeline
    def sets_its_own() -> int:
        return sets_threshold(1234)

    assert sets_its_own() == 1234
    assert gc.get_threshold() == (1234, 10, 10)


def test_a_higher_threshold_of_the_process_is_left_alone():
    gc.set_threshold(100_000, 10, 10)
    assert reads_threshold() == 100_000
    assert gc.get_threshold() == (100_000, 10, 10)
