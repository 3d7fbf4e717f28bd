"""`async def` steps: awaited on the launcher's event loop (in an isolated process, on one of
their own), so many wait on I/O at once without a worker thread each; outputs, logs,
retries, caching, failures and code hashes behave as for sync steps."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import sys
import threading
import time
from datetime import timezone
from pathlib import Path
from typing import Annotated, Any, ClassVar

import pytest
from scheduling import ORCHESTRATORS, most_at_once, on, window, windows

from branchwork import Client, get_step_context, pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.exceptions import PipelineRunFailedError
from branchwork.materializers import BaseMaterializer

log = logging.getLogger("async_steps")


@step(enable_cache=False)
async def fetch(i: int, seconds: float) -> dict:
    started = time.time()
    await asyncio.sleep(seconds)
    return window(started)


@step(enable_cache=False, runtime="isolated")
async def fetch_isolated(i: int, seconds: float) -> dict:
    started = time.time()
    await asyncio.sleep(seconds)
    return window(started)


@step
async def split(text: str) -> tuple[Annotated[str, "head"], Annotated[int, "size"]]:
    await asyncio.sleep(0)
    return text[:2], len(text)


@step
def shout(word: str) -> str:
    return word.upper()


@step(enable_cache=False)
async def chatty(i: int) -> int:
    print(f"before {i}")
    await asyncio.sleep(0.05)
    log.warning("between %d", i)
    await asyncio.sleep(0.05)
    print(f"after {i}")
    return i


@step(enable_cache=False, retry=StepRetryConfig(max_retries=2))
async def flaky(fail_times: int) -> int:
    attempt = get_step_context().attempt
    await asyncio.sleep(0)
    if attempt <= fail_times:
        raise ConnectionError(f"attempt {attempt} lost the connection")
    return attempt


@step
async def counted(log_path: str, x: int) -> int:
    with open(log_path, "a") as executions:
        executions.write(f"{x}\n")
    await asyncio.sleep(0)
    return 10 * x


@step(enable_cache=False)
async def refuses(x: int) -> int:
    await asyncio.sleep(0)
    raise ValueError(f"cannot take {x}")


@step(enable_cache=False)
async def sleeps_long() -> int:
    await asyncio.sleep(60)
    return 1


class Report:
    """A value whose materializer takes a second to save: a big artifact, as the event loop
    sees it."""

    def __init__(self, text: str) -> None:
        self.text = text


class SlowMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Report,)
    saving: ClassVar[list[int]] = []  # how many I/O threads each save saw at work

    def save(self, data: Report) -> None:
        SlowMaterializer.saving.append(
            sum(t.name == "branchwork-artifact-io" for t in threading.enumerate())
        )
        time.sleep(1.0 if data.text == "long" else 0.1)
        self._write_bytes("report.txt", data.text.encode())

    def load(self, data_type: type) -> Report:
        return Report(self._read_bytes("report.txt").decode())


@step(enable_cache=False, output_materializers=SlowMaterializer)
async def write_report() -> Report:
    await asyncio.sleep(0)
    return Report("long")


@step(enable_cache=False)
async def wake_up(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return time.time()


@step(enable_cache=False, output_materializers=SlowMaterializer)
async def short_report(i: int) -> Report:
    await asyncio.sleep(0)
    return Report(f"report {i}")


@pipeline(enable_cache=False)
def many_reports(n: int):
    return [short_report(i) for i in range(n)]


@pipeline(enable_cache=False)
def report_and_wake():
    write_report()
    return wake_up(0.2)


@pipeline(enable_cache=False)
def fan_out(n: int, seconds: float):
    return [fetch(i, seconds) for i in range(n)]


@pipeline(enable_cache=False)
def fan_out_isolated(n: int, seconds: float):
    return [fetch_isolated(i, seconds) for i in range(n)]


@pipeline
def async_then_sync(text: str):
    head, size = split(text)
    return shout(head), size


@pipeline(enable_cache=False)
def chatter(n: int):
    return [chatty(i) for i in range(n)]


@pipeline(enable_cache=False)
def retried(fail_times: int):
    return flaky(fail_times)


@pipeline
def cached_twice(log_path: str):
    return [counted(log_path, x) for x in (1, 2)]


@pipeline(enable_cache=False)
def failing():
    return refuses(7)


@pipeline(enable_cache=False, failure_mode="fail_fast")
def fail_fast_with_a_long_async_step():
    long = sleeps_long()
    refuses(1)
    return long


# ---- running them ----------------------------------------------------------------------------


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_async_steps_return_their_awaited_outputs(flavor):
    with on(flavor):
        assert async_then_sync("hello") == ("HE", 5)
    run = async_then_sync.last_run
    assert set(run.steps) == {"split", "shout"}
    assert run.steps["split"].outputs["size"].load() == 5
    assert run.steps["shout"].inputs["word"].id == run.steps["split"].outputs["head"].id
    assert asyncio.run(split("hello")) == ("he", 5)  # outside a pipeline: the coroutine function


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_hundreds_of_async_steps_wait_at_once_without_a_worker_each(flavor):
    # Two worker threads: were each async step to hold one, two would run at a time.
    with on(flavor, max_workers=2):
        records = fan_out(300, 1.0)
    assert len(records) == 300
    assert most_at_once(windows(records)) >= 250
    run = fan_out.last_run
    assert {str(s.status) for s in run.steps.values()} == {"completed"}


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_an_async_step_saving_a_big_output_does_not_hold_the_others(flavor):
    with on(flavor):
        woke_at = report_and_wake()
    report = report_and_wake.last_run.steps["write_report"]
    assert report.outputs["output"].load().text == "long"
    saved_at = report.end_time.replace(tzinfo=timezone.utc).timestamp()
    # wake_up's 0.2 s sleep ended while the report's second-long save still ran
    assert woke_at < saved_at - 0.5


def test_async_steps_saving_at_once_share_a_few_io_threads():
    SlowMaterializer.saving.clear()
    reports = many_reports(40)
    assert [report.text for report in reports] == [f"report {i}" for i in range(40)]
    assert len(SlowMaterializer.saving) == 40 and max(SlowMaterializer.saving) <= 8


def test_isolated_async_steps_run_in_processes_of_their_own():
    with on("local_process"):
        records = fan_out_isolated(3, 1.0)
    assert most_at_once(windows(records)) == 3


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_the_logs_of_interleaved_async_steps_go_to_their_own_step(flavor):
    with on(flavor):
        assert chatter(4) == [0, 1, 2, 3]
    logs = Client().get_step_logs(chatter.last_run.id)
    for i in range(4):
        name = "chatty" if i == 0 else f"chatty_{i + 1}"
        assert logs[name] == f"before {i}\nWARNING async_steps: between {i}\nafter {i}\n"


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_a_failed_async_attempt_is_retried(flavor):
    with on(flavor):
        assert retried(2) == 3
    run = retried.last_run
    assert run.steps["flaky"].attempt == 3
    assert str(run.steps["flaky"].status) == "completed"


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_an_async_step_is_served_from_the_cache(tmp_path, flavor):
    executions = tmp_path / "executions.log"
    with on(flavor):
        assert cached_twice(str(executions)) == [10, 20]
        assert cached_twice(str(executions)) == [10, 20]
    run = cached_twice.last_run
    assert {str(s.status) for s in run.steps.values()} == {"cached"}
    assert executions.read_text().splitlines() == ["1", "2"]


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_a_failing_async_step_fails_the_run_with_its_error(flavor):
    with on(flavor), pytest.raises(PipelineRunFailedError) as info:
        failing()
    assert info.value.invocation_id == "refuses"
    assert type(info.value.__cause__).__name__ == "ValueError"
    assert str(info.value.__cause__) == "cannot take 7"
    failed = failing.last_run.steps["refuses"]
    assert str(failed.status) == "failed"
    assert failed.exception_type == "ValueError"
    assert 'in refuses\n    raise ValueError(f"cannot take {x}")' in (failed.traceback or "")


def test_fail_fast_cancels_running_async_steps():
    started = time.monotonic()
    with on("local"), pytest.raises(PipelineRunFailedError):
        fail_fast_with_a_long_async_step()
    assert time.monotonic() - started < 30  # not the 60 s the long step sleeps
    long = fail_fast_with_a_long_async_step.last_run.steps["sleeps_long"]
    assert str(long.status) == "failed"
    assert long.exception_message == "Step 'sleeps_long' was cancelled: its run is stopping."
    refused = fail_fast_with_a_long_async_step.last_run.steps["refuses"]
    assert long.start_time <= refused.start_time  # from when it began: it read 0 ms
    assert long.end_time >= refused.end_time


# ---- code hash -------------------------------------------------------------------------------


def _load(folder: Path, helper_returns: int) -> Any:
    """An `async def` step that awaits a helper, from a module file of its own."""
    folder.mkdir()
    source = folder / "async_module.py"
    source.write_text(
        "from branchwork import step\n"
        f"async def helper():\n    return {helper_returns}\n"
        "@step\nasync def uses_helper() -> int:\n    return await helper()\n"
    )
    spec = importlib.util.spec_from_file_location("async_module", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["async_module"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["async_module"]
    return module.uses_helper


def test_the_code_hash_of_an_async_step_follows_the_helpers_it_awaits(tmp_path):
    one, again, two = _load(tmp_path / "a", 1), _load(tmp_path / "b", 1), _load(tmp_path / "c", 2)
    assert one.is_async
    assert one.code_hash == again.code_hash
    assert one.code_hash != two.code_hash
