"""The zygote of isolated steps (`branchwork.runtime.zygote`): light step processes, forked
ahead of their requests, whose results travel whole."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import zygote_pipelines as zp

from branchwork import Client
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack


def local_process(**config):
    return active_stack(
        Stack("lp", LocalProcessOrchestrator(**config), get_active_stack().artifact_store)
    )


def test_step_processes_do_not_carry_the_metadata_store():
    """Forking costs in proportion to the process: the zygote imports no store client."""
    with local_process():
        assert zp.light() == []


def test_a_later_step_process_finds_the_materializers_already_imported():
    """The zygote looks up a step's materializers once; children do not import them again."""
    with local_process():
        assert zp.two_in_a_row() is True


def test_results_bigger_than_a_pipe_write_arrive_whole_from_steps_running_together():
    """A child writes its result in pieces of at most PIPE_BUF bytes to the pipe the zygote
    and the other children write to as well: each step still gets its own logs, whole."""
    size = 300_000
    with local_process(max_workers=2):
        assert zp.two_talkers(size) == [size, size]
    logs = Client().get_step_logs(zp.two_talkers.last_run.id)
    assert logs == {"talk": "a" * size + "\n", "talk_2": "b" * size + "\n"}


def children_of(pid: int) -> set[int]:
    """Of a single-threaded process, as the zygote is."""
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_a_spare_step_process_killed_while_it_waits_is_replaced(tmp_path):
    outcome: dict = {}

    def run() -> None:
        with local_process(max_workers=1):
            try:
                outcome["value"] = zp.after_a_wait(str(tmp_path))
            except BaseException as error:  # noqa: BLE001 - inspected below
                outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "first.pid").exists() or not (tmp_path / "first.pid").read_text():
            assert time.monotonic() < deadline, "the first step never started"
            time.sleep(0.02)
        first = int((tmp_path / "first.pid").read_text())
        zygote = parent_of(first)
        spares = set()
        while not spares:
            assert time.monotonic() < deadline, "the zygote forked no spare process"
            spares = children_of(zygote) - {first}
            time.sleep(0.02)
        for spare in spares:
            os.kill(spare, signal.SIGKILL)
    finally:
        (tmp_path / "go").write_text("")
        thread.join(120)
    assert "error" not in outcome, outcome.get("error")
    first_pid, second_pid = outcome["value"]
    assert second_pid not in spares | {first_pid}


def test_a_process_the_step_forks_does_not_hold_the_run(tmp_path):
    """It inherited the channel to the loop and the step's life pipe: the run stayed
    `running` until it exited (for ever, for a daemon)."""
    started = time.monotonic()
    with local_process():
        helper = zp.leaves_a_helper(seconds=60)
    try:
        assert time.monotonic() - started < 30
        assert str(zp.leaves_a_helper.last_run.status) == "completed"
        assert Path(f"/proc/{helper}").exists()  # it lives on, its own business
    finally:
        os.kill(helper, signal.SIGKILL)
