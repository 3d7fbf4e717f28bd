"""Each step's stdout, stderr and logging records are captured and attributed to it, also
when steps run side by side in threads or in their own processes."""

from __future__ import annotations

import logging
import sys
import time

import pytest

from branchwork import Client, get_step_context, log_metadata, pipeline, step
from branchwork.exceptions import BranchworkError

log = logging.getLogger("chatty")


@step
def chatty(i: int) -> int:
    for k in range(3):
        print(f"out {i}.{k}")
        print(f"err {i}.{k}", file=sys.stderr)
        log.warning("log %d.%d", i, k)
        time.sleep(0.01)
    return i


@step(runtime="isolated")
def chatty_isolated(i: int) -> int:
    print(f"isolated out {i}")
    log.error("isolated log %d", i)
    return i


@pipeline(enable_cache=False)
def eight_chatty():
    return [chatty(i) for i in range(8)]


def test_logs_of_eight_parallel_steps_are_attributed_to_their_step(capsys):
    assert eight_chatty() == list(range(8))
    logs = Client().get_step_logs(eight_chatty.last_run.id)
    assert len(logs) == 8
    for i in range(8):
        text = logs["chatty" if i == 0 else f"chatty_{i + 1}"]
        lines = text.splitlines()
        expected = {f"out {i}.{k}" for k in range(3)} | {f"err {i}.{k}" for k in range(3)}
        expected |= {f"WARNING chatty: log {i}.{k}" for k in range(3)}
        assert set(lines) == expected, text
    assert "out 3.2" in capsys.readouterr().out  # the console still shows it


def test_logs_of_isolated_steps_are_captured_in_their_process():
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        isolated_chat_module_level()
    logs = Client().get_step_logs(isolated_chat_module_level.last_run.id, "chatty_isolated")
    assert logs == {"chatty_isolated": "isolated out 5\nERROR chatty: isolated log 5\n"}


@pipeline(enable_cache=False)
def isolated_chat_module_level():
    return chatty_isolated(5)


@step
def measured() -> int:
    context = get_step_context()
    log_metadata({"rows": 120, "source": "s3://bucket/x", "attempt": context.attempt})
    return 1


@step
def bad_metadata() -> int:
    log_metadata({"handle": object()})
    return 1


def test_log_metadata_is_recorded_on_the_step_run():
    @pipeline(enable_cache=False)
    def with_metadata():
        return measured()

    with_metadata()
    assert with_metadata.last_run.steps["measured"].run_metadata == {
        "rows": 120,
        "source": "s3://bucket/x",
        "attempt": 1,
    }


def test_log_metadata_refuses_values_that_cannot_be_recorded():
    @pipeline(enable_cache=False)
    def with_bad_metadata():
        return bad_metadata()

    with pytest.raises(Exception) as info:
        with_bad_metadata()
    assert isinstance(info.value.__cause__, BranchworkError)
    assert "'handle'" in str(info.value.__cause__)
    assert "log_metadata" in str(info.value.__cause__)
