"""A run whose orchestration process was killed: every reader tells the same story (failed,
OrchestrationLost) without writing, and the writers record it."""

from __future__ import annotations

import calendar
import json
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from branchwork import Client, pipeline, step
from branchwork.exceptions import OrchestratorError
from branchwork.metadata.lost import reap_lost_runs
from branchwork.metadata.store import get_engine, write_transaction
from branchwork.orchestrators import LocalOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack
from processes import Spawned, python, python_env, wait_until

BRANCHWORK = str(Path(sys.executable).parent / "branchwork")
HEARTBEAT = "0.2"  # lost after six silent heartbeats: 1.2 s
# The readers' store retry window: a run is lost after it too (and two heartbeats more).
RETRY = "0.5"

SCRIPT = """
import time
from branchwork import pipeline, step

@step(enable_cache=False)
def long(seconds: float) -> int:
    time.sleep(seconds)
    return 1

@step(enable_cache=False)
def quick() -> int:
    return 2

@pipeline(enable_cache=False)
def killed(seconds: float = 600.0):
    return [quick(), long(seconds)]

if __name__ == "__main__":
    killed()
"""


def sql(home: Path, query: str) -> list[tuple]:
    with sqlite3.connect(home / "branchwork.db") as conn:
        return conn.execute(query).fetchall()


def long_step_running(home: Path) -> bool:
    """`quick` recorded completed, `long` running."""
    try:
        found = sql(home, "SELECT name, status FROM step_run ORDER BY name")
    except sqlite3.OperationalError:  # the store is not created yet
        return False
    return found == [("long", "running"), ("quick", "completed")]


@pytest.fixture
def lost_run(tmp_path, monkeypatch):
    """A run whose `python script.py` process was SIGKILLed mid-step, silent long enough to
    be lost; returns the home of its store."""
    with long_step_started(tmp_path, monkeypatch) as run:
        run.signal(signal.SIGKILL)
        run.wait(30)
    time.sleep(1.5)
    return tmp_path / "home"


@contextmanager
def long_step_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, heartbeat: str = HEARTBEAT
) -> Iterator[Spawned]:
    """`python script.py` running its long step, on a store in tmp_path/home that this
    process reads too; its loop heartbeats every `heartbeat` seconds."""
    with script_started(tmp_path, monkeypatch, SCRIPT, heartbeat) as run:
        wait_until(lambda: long_step_running(tmp_path / "home"), 60, "the long step to start")
        yield run


@contextmanager
def script_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, heartbeat: str = HEARTBEAT
) -> Iterator[Spawned]:
    """`python script.py` of `source` on a store in tmp_path/home, which this process reads
    with short heartbeats and store retries (a run is lost after 1.2 s of silence)."""
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", HEARTBEAT)
    monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", RETRY)
    home = tmp_path / "home"
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    script = tmp_path / "script.py"
    script.write_text(source)
    env = python_env(home, BRANCHWORK_HEARTBEAT_SECONDS=heartbeat)
    with Spawned(python(str(script)), env=env) as run:
        yield run


def cli(home: Path, *args: str, heartbeat: str | None = HEARTBEAT, retry: str = RETRY) -> str:
    """The real command on the store in `home`, in a process heartbeating every `heartbeat`
    seconds (None: the default 5 s) and retrying the store for `retry` seconds."""
    beats = {"BRANCHWORK_HEARTBEAT_SECONDS": heartbeat} if heartbeat else {}
    env = python_env(
        home, BRANCHWORK_SQLITE_BUSY_TIMEOUT="1", BRANCHWORK_STORE_RETRY_SECONDS=retry, **beats
    )
    with Spawned([BRANCHWORK, *args], env=env) as command:
        code, out, err = command.wait(60)
    assert code == 0, err
    return out


def test_every_reader_says_failed_and_none_writes(lost_run):
    home = lost_run
    run = Client().list_pipeline_runs()[0]
    assert (run.status, run.exception_type) == ("failed", "OrchestrationLost")
    assert "stopped heartbeating" in run.exception_message
    again = Client().get_pipeline_run(run.id)
    assert (again.status, again.steps["long"].status) == ("failed", "failed")
    assert again.steps["long"].exception_type == "OrchestrationLost"
    assert again.steps["quick"].status == "completed"
    # A reader never takes the write lock: hold it, and read with a one-second busy timeout.
    writer = sqlite3.connect(home / "branchwork.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        listed = json.loads(cli(home, "runs", "list", "--output", "json"))
        shown = json.loads(cli(home, "runs", "show", "latest", "--output", "json"))
        table = cli(home, "runs", "list")
        failed_only = json.loads(cli(home, "runs", "list", "--status", "failed", "-o", "json"))
    finally:
        writer.rollback()
        writer.close()
    assert [r["status"] for r in listed] == ["failed"]
    assert shown["status"] == "failed" and shown["exception_type"] == "OrchestrationLost"
    assert {s["invocation_id"]: s["status"] for s in shown["steps"]} == {
        "quick": "completed",
        "long": "failed",
    }
    assert "failed" in table and "running" not in table
    assert [r["name"] for r in failed_only] == [run.name]
    # ... and none of them wrote it: the row says what the dead loop left.
    assert sql(home, "SELECT status FROM pipeline_run") == [("running",)]


def test_a_run_is_lost_after_six_of_its_own_loops_heartbeats_whatever_the_readers(lost_run):
    """Its loop heartbeated every 0.2 s: a reader on the default 5 s reads it lost after
    1.2 s of silence (it read running for 30 s)."""
    shown = json.loads(cli(lost_run, "runs", "show", "latest", "-o", "json", heartbeat=None))
    assert (shown["status"], shown["exception_type"]) == ("failed", "OrchestrationLost")
    assert "stopped heartbeating for over 1.2s" in shown["exception_message"]


def test_a_live_run_whose_loop_heartbeats_seldom_is_not_reaped_by_a_faster_reader(
    tmp_path, monkeypatch
):
    """A loop heartbeating every 10 s, silent for more than the 1.2 s after which a reader
    on 0.2 s would call its own loop dead: alive to that reader, and `runs reap` leaves it
    (it was reaped alive, and its run then stopped)."""
    home = tmp_path / "home"
    script = tmp_path / "killed.py"
    script.write_text(SCRIPT)
    with Spawned(python(str(script)), env=python_env(home, BRANCHWORK_HEARTBEAT_SECONDS="10")):
        wait_until(lambda: long_step_running(home), 60, "the long step to start")
        wait_until(
            lambda: time.time() - sql(home, "SELECT heartbeat FROM pipeline_run")[0][0] > 1.5,
            10,
            "a silence longer than six of the reader's heartbeats",
        )
        assert cli(home, "runs", "reap").strip() == "Recorded 0 lost runs as failed."
        listed = json.loads(cli(home, "runs", "list", "-o", "json"))
        assert [run["status"] for run in listed] == ["running"]
        assert sql(home, "SELECT status FROM pipeline_run") == [("running",)]


def test_a_run_silent_for_the_store_retry_window_is_not_lost(lost_run):
    """A loop riding out a store outage writes no heartbeat. At six heartbeats (30 s by
    default, the retry window itself), a run whose PostgreSQL came back within the window
    was reaped by another process the moment it could write, and its loop then stopped it
    ("stopped on request"). Lost now after the window and two heartbeats more: 40 s."""
    home = lost_run
    silent_for = lambda seconds: sql(  # noqa: E731
        home,
        f"UPDATE pipeline_run SET heartbeat_seconds = 5, heartbeat = {time.time() - seconds}",
    )
    silent_for(35)  # past six heartbeats of 5 s, within the window and two heartbeats
    assert cli(home, "runs", "reap", heartbeat=None, retry="30").strip() == (
        "Recorded 0 lost runs as failed."
    )
    silent_for(41)
    assert cli(home, "runs", "reap", heartbeat=None, retry="30").strip() == (
        "Recorded 1 lost run as failed."
    )


def test_runs_reap_records_it(lost_run):
    home = lost_run
    assert cli(home, "runs", "reap").strip() == "Recorded 1 lost run as failed."
    assert sql(home, "SELECT status, exception_type FROM pipeline_run") == [
        ("failed", "OrchestrationLost")
    ]
    assert sql(home, "SELECT name, status FROM step_run ORDER BY name") == [
        ("long", "failed"),
        ("quick", "completed"),
    ]
    assert cli(home, "runs", "reap").strip() == "Recorded 0 lost runs as failed."


def test_a_lost_run_is_deleted_without_force(lost_run):
    """It reads failed everywhere, yet deleting it was refused as running."""
    home = lost_run
    assert cli(home, "runs", "delete", "latest", "-y").startswith("Deleted run 'killed-")
    assert sql(home, "SELECT count(*) FROM pipeline_run") == [(0,)]


def test_the_next_run_records_it(lost_run):
    from branchwork import pipeline, step

    @step
    def one() -> int:
        return 1

    @pipeline
    def next_run():
        return one()

    assert next_run() == 1
    assert sql(lost_run, "SELECT status FROM pipeline_run ORDER BY created") == [
        ("failed",),
        ("completed",),
    ]


def test_a_step_started_after_the_last_heartbeat_never_ends_before_it_started(lost_run):
    """The loop's last heartbeat can predate a step it started just before it died: read
    and reaped, the step ended when the loop was last seen or, if later, when it started
    (its duration read -20 ms)."""
    home = lost_run
    started = sql(home, "SELECT start_time FROM step_run WHERE name = 'long'")[0][0]
    last_seen = calendar.timegm(time.strptime(started[:19], "%Y-%m-%d %H:%M:%S")) - 1.0
    with sqlite3.connect(home / "branchwork.db") as conn:  # a second before it started
        conn.execute("UPDATE pipeline_run SET heartbeat = ?", (last_seen,))
    long = Client().get_pipeline_run(Client().list_pipeline_runs()[0].id).steps["long"]
    assert long.status == "failed" and long.end_time >= long.start_time
    assert cli(home, "runs", "reap").strip() == "Recorded 1 lost run as failed."
    assert sql(home, "SELECT start_time = end_time FROM step_run WHERE name = 'long'") == [(1,)]


def test_a_run_lost_before_its_loops_first_heartbeat_ends_after_the_steps_it_recorded(
    tmp_path, monkeypatch
):
    """Killed before its loop heartbeated again (every 5 s by default), a run read ended
    when it started, before the steps it had recorded ended: the loop heartbeats with every
    write too."""
    with long_step_started(tmp_path, monkeypatch, heartbeat="60") as run:
        run.signal(signal.SIGKILL)
        run.wait(30)
    with sqlite3.connect(tmp_path / "home" / "branchwork.db") as conn:  # lost after 1.2 s
        conn.execute(f"UPDATE pipeline_run SET heartbeat_seconds = {HEARTBEAT}")
    time.sleep(1.5)
    lost = Client().get_pipeline_run(Client().list_pipeline_runs()[0].id)
    quick = lost.steps["quick"]
    assert (lost.status, quick.status) == ("failed", "completed")
    assert lost.end_time >= quick.end_time > lost.start_time


SLOW_IMPORT = """
import time
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

if __name__ != "__main__":  # the orchestration process imports the script: a slow import
    time.sleep(600)

@step
def quick() -> int:
    return 2

@pipeline
def slow_to_start():
    return quick()

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        slow_to_start()
"""


def test_a_run_whose_processes_die_before_its_loop_took_it_over_is_lost(tmp_path, monkeypatch):
    """Killed while its orchestration process was still importing, a run stayed
    `initializing` for good: no reader took it for lost, nor could it be resumed. The
    process that submitted it heartbeats it until a loop takes it over."""
    with script_started(tmp_path, monkeypatch, SLOW_IMPORT) as run:
        wait_until(lambda: run.most_runners == 1, 60, "the orchestration process to start")
        time.sleep(2.0)  # longer than a lost run's silence: its submitter heartbeats it
        assert [r.status for r in Client().list_pipeline_runs()] == ["initializing"]
        run.kill()
    time.sleep(1.5)
    lost = Client().list_pipeline_runs()[0]
    assert (lost.status, lost.exception_type) == ("failed", "OrchestrationLost")
    home = tmp_path / "home"
    assert cli(home, "runs", "reap").strip() == "Recorded 1 lost run as failed."
    assert sql(home, "SELECT status FROM pipeline_run") == [("failed",)]


def test_resuming_a_running_run_says_when_it_can_be(tmp_path, monkeypatch):
    """After a store outage ended its process unrecorded, the run reads running until its
    heartbeat is old: the refusal says so (it only said failed or stopped runs resume), by
    the heartbeats of the run's loop (every 0.2 s), not of the process asking (5 s)."""
    with long_step_started(tmp_path, monkeypatch) as run:
        name = Client().list_pipeline_runs()[0].name
        monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "5")
        with pytest.raises(OrchestratorError) as info:
            Client().resume_run(name)
        run.signal(signal.SIGKILL)
        run.wait(30)
    assert str(info.value) == (
        f"Run '{name}' is running: only failed or stopped runs, and paused ones once answered, "
        "can be resumed. If its process is gone, it reads failed 1.2s after its last "
        "heartbeat; resume it then."
    )


class SlowToConnect(LocalOrchestrator):
    """A loop that takes a while to begin where the run was called (Ray's `ray.init`)."""

    def loop_session(self, request, orchestrator_run_id):
        time.sleep(2.0)  # longer than a silent run lives
        return super().loop_session(request, orchestrator_run_id)


@step(enable_cache=False)
def two() -> int:
    return 2


@pipeline
def slow_to_begin():
    return two()


def test_a_run_whose_loop_is_slow_to_begin_where_it_was_called_is_not_lost(monkeypatch):
    """Called while its orchestrator connected, a run was taken for lost by the next writer
    (here `runs reap`), and its loop then refused to start it."""
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", HEARTBEAT)
    monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", RETRY)
    reaped: list[int] = []

    def reap_meanwhile() -> None:
        time.sleep(1.6)
        with write_transaction(get_engine()) as conn:
            reaped.append(reap_lost_runs(conn))

    reaper = threading.Thread(target=reap_meanwhile)
    reaper.start()
    with active_stack(Stack("slow", SlowToConnect(), get_active_stack().artifact_store)):
        assert slow_to_begin() == 2
    reaper.join(30)
    assert reaped == [0] and slow_to_begin.last_run.status == "completed"
