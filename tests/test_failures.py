"""Bad input and failing steps: clear errors, and a FAILED run with every finished step kept."""

from __future__ import annotations

import os
import threading
import time
from typing import Annotated

import pytest

from branchwork import Client, pipeline, step
from branchwork.config import ResourceSettings, StepRetryConfig
from branchwork.exceptions import (
    ArtifactError,
    OrchestratorError,
    PipelineRunFailedError,
    PipelineRunStoppedError,
    StepNotRunError,
)
from branchwork.orchestrators import BaseOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack


class Boom(ValueError):
    pass


@step
def ok(x: int) -> int:
    return x


@step
def explode(x: int) -> int:
    raise Boom(f"bad value {x}")


@step
def slow(x: int) -> int:
    time.sleep(0.3)
    return x


@step
def lock() -> object:
    return threading.Lock()


def failed_run(pipeline_obj, **params):
    with pytest.raises(PipelineRunFailedError) as info:
        pipeline_obj(**params)
    return info.value, Client().get_pipeline_run(info.value.run_id)


def test_a_failing_step_fails_the_run_naming_the_invocation_with_the_original_cause():
    @pipeline
    def failing():
        a = ok(1)
        explode(a)

    error, run = failed_run(failing)
    assert isinstance(error.__cause__, Boom)
    assert "explode" in str(error) and "Boom" in str(error) and "bad value 1" in str(error)
    assert error.invocation_id == "explode"
    assert run.status == "failed" and run.failed_step == "explode"
    assert run.exception_type == "Boom" and "bad value 1" in run.exception_message
    assert "raise Boom" in run.traceback
    assert run.steps["ok"].status == "completed"
    assert run.steps["explode"].status == "failed"
    assert "raise Boom" in run.steps["explode"].traceback


class QuotaError(Exception):
    """A user's exception whose `__str__` reads an attribute its `__init__` never set."""

    def __str__(self) -> str:
        return f"quota exceeded for {self.resource}"  # type: ignore[attr-defined]


@step
def over_quota(x: int) -> int:
    raise QuotaError("api")


@pipeline
def quota():
    return ok(over_quota(ok(1)))


def test_an_exception_whose_str_raises_fails_its_step_not_the_loop(local_flavor):
    """Its message was written with str(): the loop crashed there, and steps that had
    finished stayed recorded `running` for good."""
    error, run = failed_run(quota)
    unprintable = "<str() of this QuotaError raised AttributeError>"
    assert f"step 'over_quota' raised QuotaError: {unprintable}" in str(error)
    assert type(error.__cause__).__name__ in ("QuotaError", "RemoteStepError")
    assert (run.exception_type, run.exception_message) == ("QuotaError", unprintable)
    statuses = {name: str(step_run.status) for name, step_run in run.steps.items()}
    assert statuses == {"ok": "completed", "over_quota": "failed"}


@step
def lists_a_folder() -> int:
    print("found caf\udce9.csv")  # a file name os.fsdecode could not decode
    return 1


@step
def opens_a_file(count: int) -> int:
    raise FileNotFoundError("missing: " + os.fsdecode(b"caf\xe9.csv"))


@pipeline(enable_cache=False)
def undecodable_names():
    return opens_a_file(lists_a_folder())


def test_a_lone_surrogate_in_a_log_or_an_error_is_recorded_escaped(local_flavor):
    """UTF-8 cannot encode one: the loop crashed writing its batch of records, and the run
    failed as an orchestrator error with none of its steps recorded."""
    error, run = failed_run(undecodable_names)
    assert "step 'opens_a_file' raised FileNotFoundError: missing: caf\\udce9.csv" in str(error)
    assert (run.failed_step, run.exception_type, run.exception_message) == (
        "opens_a_file",
        "FileNotFoundError",
        "missing: caf\\udce9.csv",
    )
    statuses = {name: str(step_run.status) for name, step_run in run.steps.items()}
    assert statuses == {"lists_a_folder": "completed", "opens_a_file": "failed"}
    failed = run.steps["opens_a_file"]
    assert failed.exception_message == "missing: caf\\udce9.csv"
    assert "FileNotFoundError: missing: caf\\udce9.csv" in (failed.traceback or "")
    logs = Client().get_step_logs(run.id, "lists_a_folder")
    assert logs == {"lists_a_folder": "found caf\\udce9.csv\n"}


@step
def interrupts_itself() -> int:
    raise KeyboardInterrupt


@pipeline
def self_interrupted():
    return interrupts_itself()


def test_a_step_raising_keyboard_interrupt_fails_the_run_without_blaming_a_ctrl_c():
    error, run = failed_run(self_interrupted)
    assert (run.status, run.failed_step, run.exception_type) == (
        "failed",
        "interrupts_itself",
        "KeyboardInterrupt",
    )
    assert "Ctrl-C" not in str(error) and "Ctrl-C" not in (run.exception_message or "")


def test_stop_on_failure_lets_running_steps_finish_and_starts_nothing_new():
    @pipeline(dynamic=True)
    def mixed():
        s = slow(1)
        e = explode(2)
        e.wait()
        ok(s)  # never starts: the run is stopping
        return s

    error, run = failed_run(mixed)
    assert isinstance(error.__cause__, Boom)
    assert run.steps["slow"].status == "completed"
    assert "ok" not in run.steps


@step(enable_cache=False, retry=StepRetryConfig(max_retries=2, delay=30))
def flaky_then_waits() -> int:
    raise RuntimeError("flaky")


@step(enable_cache=False)
def fails_later(x: int) -> int:
    time.sleep(0.3)
    raise ValueError("for good")


@pipeline(enable_cache=False)
def retry_cut_short():
    return [flaky_then_waits(), fails_later(1)]


@pytest.mark.parametrize("mode", ["stop_on_failure", "fail_fast"])
def test_an_attempt_whose_retry_a_failure_cancels_is_recorded_failed(mode):
    """It read `retried` for good, with no later attempt, after the run had stopped."""
    error, run = failed_run(retry_cut_short.with_options(failure_mode=mode))
    assert run.failed_step == "fails_later"
    flaky = run.steps["flaky_then_waits"]
    assert (str(flaky.status), flaky.attempt, flaky.exception_message) == ("failed", 1, "flaky")


def test_using_a_future_that_will_never_run_raises_step_not_run():
    seen = {}

    @pipeline(dynamic=True)
    def downstream():
        e = explode(1)
        child = ok(e)
        try:
            child.load()
        except StepNotRunError as err:
            seen["error"] = err
            raise

    error, run = failed_run(downstream)
    assert "did not run because 'explode' failed" in str(seen["error"])
    assert run.failed_step == "explode"
    assert isinstance(error.__cause__, Boom)


def test_the_pipeline_body_raising_after_steps_ran_fails_the_run_and_keeps_them():
    @pipeline
    def discovery_fails():
        n = ok(3)
        if n > 2:
            raise RuntimeError("cannot decide what to run")

    error, run = failed_run(discovery_fails)
    assert isinstance(error.__cause__, RuntimeError)
    assert "the pipeline function raised RuntimeError" in str(error)
    assert run.failed_step is None and run.exception_type == "RuntimeError"
    assert "cannot decide what to run" in run.traceback
    assert run.steps["ok"].status == "completed"


def test_an_unserializable_output_fails_the_step_with_an_artifact_error():
    @pipeline
    def unstorable():
        lock()

    error, run = failed_run(unstorable)
    assert isinstance(error.__cause__, ArtifactError)
    assert "lock" in str(error.__cause__) and "output" in str(error.__cause__)
    assert run.steps["lock"].status == "failed"


def test_wrong_number_of_outputs_is_a_clear_step_failure():

    @step
    def pair() -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
        return 1  # type: ignore[return-value]

    @pipeline
    def bad_pair():
        pair()

    error, run = failed_run(bad_pair)
    assert "declares 2 outputs (a, b) but returned int" in str(error.__cause__)
    assert run.steps["pair"].status == "failed"


def test_a_value_returned_by_a_step_annotated_none_fails_it():
    """It was dropped without a word."""

    @step
    def train() -> None:
        return 5  # type: ignore[return-value]

    @pipeline
    def discarding():
        train()

    error, run = failed_run(discarding)
    assert str(error.__cause__) == (
        "Step 'train' (invocation 'train') is annotated `-> None` but returned int: annotate "
        "what it returns to keep it as an output, or return nothing."
    )
    assert run.steps["train"].status == "failed"


def test_retries_rerun_the_step_and_record_each_attempt():
    attempts = []

    @step(retry=StepRetryConfig(max_retries=2, delay=0.05, backoff=2))
    def flaky() -> int:
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise Boom("not yet")
        return len(attempts)

    @pipeline
    def retrying():
        return flaky()

    assert retrying() == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1
    run = retrying.last_run
    assert [(a.attempt, str(a.status)) for a in run.attempts] == [
        (1, "retried"),
        (2, "retried"),
        (3, "completed"),
    ]
    assert run.steps["flaky"].attempt == 3


def test_an_orchestrator_without_dynamic_support_is_refused_before_anything_runs():
    class StaticOnly(BaseOrchestrator):
        flavor = "static_only"

        def submit_pipeline(self, snapshot, stack, environment, placeholder_run=None):
            raise AssertionError("not called")

        def get_orchestrator_run_id(self) -> str:
            return "x"

    @pipeline
    def dynamic_one():
        if ok(1) > 0:
            ok(2)

    orchestrator = StaticOnly()
    assert orchestrator.supports_dynamic_pipelines is False
    stack = Stack("static", orchestrator, get_active_stack().artifact_store)
    with active_stack(stack), pytest.raises(OrchestratorError) as info:
        dynamic_one()
    assert "dynamic_one" in str(info.value) and "static_only" in str(info.value)
    assert "uses the output of step 'ok'" in str(info.value)
    assert Client().list_pipeline_runs() == []


def test_invalid_resource_and_retry_settings_are_refused_with_the_field_named():
    from branchwork.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError, match="cpu_count must not be negative"):
        ResourceSettings(cpu_count=-1)
    with pytest.raises(ConfigurationError, match="memory must be a size like '4GB'"):
        ResourceSettings(memory="lots")
    with pytest.raises(ConfigurationError, match="gpu_count must be a whole number"):
        ResourceSettings(gpu_count=0.5)
    with pytest.raises(ConfigurationError, match="max_retries must not be negative"):
        StepRetryConfig(max_retries=-1)
    for delay in (float("nan"), float("inf"), -1, "1"):  # a NaN delay waited forever
        with pytest.raises(ConfigurationError, match="delay must be a finite number"):
            StepRetryConfig(max_retries=1, delay=delay)
    for backoff in (float("nan"), float("inf"), 0.5, None):
        with pytest.raises(ConfigurationError, match="backoff must be a finite number"):
            StepRetryConfig(max_retries=1, backoff=backoff)
    assert ResourceSettings(memory="512MB").memory_bytes == 512_000_000
    assert ResourceSettings(memory="2GiB").memory_bytes == 2 * 1024**3


@step
def asks_to_stop(seconds: float) -> int:
    """Asks its own run to stop, as the dashboard's stop does, and finishes after the loop
    has seen it (it looks five times a second)."""
    from branchwork import get_step_context
    from branchwork.metadata.runs import request_stop
    from branchwork.metadata.store import get_engine

    request_stop(get_engine(), get_step_context().run_id, "graceful")
    time.sleep(seconds)
    return 1


@pipeline(enable_cache=False)
def stopped_from_outside():
    return ok(asks_to_stop(1.0))


def test_a_run_stopped_on_request_raises_a_stopped_error():
    with pytest.raises(PipelineRunStoppedError, match="stopped") as raised:
        stopped_from_outside()
    assert isinstance(raised.value, PipelineRunFailedError)  # what catches failures catches it
    run = Client().get_pipeline_run(raised.value.run_id)
    assert (run.status, run.failed_step) == ("stopped", None)
    assert [(s.name, s.status) for s in run.attempts] == [("asks_to_stop", "completed")]
